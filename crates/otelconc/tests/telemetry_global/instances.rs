//! Instances built on the global providers (the default of every builder) share their
//! observable instruments by name too, across separate `Telemetry::global()` calls.
//! (It installs a global meter provider, holding [`crate::GLOBALS`].)

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
    assert_eq!(m.value("otelconc.semaphore.limit", &db), Some(7.0));
    assert_eq!(m.value("otelconc.semaphore.admitted", &db), Some(3.0));
    assert_eq!(m.attribute_sets("otelconc.semaphore.limit").len(), 1);
}
