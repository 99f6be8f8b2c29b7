//! Instances built on the global providers (the default of every builder) share their
//! observable instruments by name too, across separate `Telemetry::global()` calls.
//! (It installs a global meter provider, holding [`crate::GLOBALS`].)

use futures::StreamExt;
use otelconc::fan::fan_in;
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::names::ATTR_NAME;
use otelconc_testkit::{TestTelemetry, attr};

#[test]
fn semaphores_on_the_global_provider_add_up_by_name() {
    let _globals = crate::GLOBALS.blocking_lock();
    let tt = TestTelemetry::new();
    opentelemetry::global::set_meter_provider(tt.meter_provider().clone());
    // Each `new` takes its own `Telemetry::global()`.
    let a = Semaphore::new("db", 3).expect("valid");
    let b = Semaphore::new("db", 4).expect("valid");
    let _held = (
        a.try_acquire().expect("free"),
        b.try_acquire_many(2).expect("free"),
    );

    let m = tt.metrics();
    let db = [attr(ATTR_NAME, "db")];
    assert_eq!(m.value("otelconc.semaphore.permit.limit", &db), Some(7.0));
    assert_eq!(m.value("otelconc.semaphore.permits", &db), Some(3.0));
    assert_eq!(m.attribute_sets("otelconc.semaphore.permit.limit").len(), 1);
}

/// `fan_in` (which builds on the global providers) labels no input: however many
/// inputs it merges, its counter has one series, named `fan_in`.
#[test]
fn fan_in_counts_without_a_per_input_attribute() {
    let _globals = crate::GLOBALS.blocking_lock();
    let tt = TestTelemetry::new();
    opentelemetry::global::set_meter_provider(tt.meter_provider().clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let n = rt.block_on(async {
        let inputs = (0..50).map(|i| futures::stream::iter([i, i + 50]));
        fan_in(inputs).count().await
    });
    assert_eq!(n, 100);
    let m = tt.metrics();
    assert_eq!(
        m.attribute_sets("otelconc.fan_in.items"),
        [vec![attr(ATTR_NAME, "fan_in")]]
    );
    assert_eq!(
        m.value("otelconc.fan_in.items", &[attr(ATTR_NAME, "fan_in")]),
        Some(100.0)
    );
}
