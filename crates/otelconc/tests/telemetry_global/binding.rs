//! Bound instruments are used only when the code that installed the SDK says they work.
//!
//! An `opentelemetry_sdk` built without `experimental_metrics_bound_instruments` keeps
//! the API's default `SyncInstrument::bind`, which returns a no-op: every measurement
//! made through the binding is dropped, without an error. That SDK cannot be built in
//! this workspace (Cargo unifies the feature on for every crate, and the test kit needs
//! it), so [`Recorder`] stands in for it: a meter provider whose synchronous instruments
//! record what `measure` receives and, like that SDK, do not override `bind`. With
//! `binds: true` it overrides `bind` as the SDK with the feature does, so the tests also
//! see which path a measurement took.
//!
//! The global provider is process state: the test that touches the globals holds
//! [`crate::GLOBALS`] while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::{
    BoundSyncInstrument, Counter, Histogram, HistogramBuilder, InstrumentBuilder,
    InstrumentProvider, Meter, MeterProvider, SyncInstrument, UpDownCounter,
};
use opentelemetry::trace::noop::NoopTracerProvider;
use opentelemetry::{InstrumentationScope, KeyValue};
use otelconc::group::TaskGroup;
use otelconc::pool::WorkerPool;
use otelconc::telemetry::Telemetry;

/// What reached a [`Recorder`]: measurements with attributes, and through bindings.
#[derive(Default, Debug)]
struct Seen {
    unbound: AtomicU64,
    bound: AtomicU64,
    /// Instrument names that received anything.
    names: Mutex<Vec<String>>,
}

/// A meter provider standing in for an SDK (see the file docs).
#[derive(Clone)]
struct Recorder {
    binds: bool,
    seen: Arc<Seen>,
}

impl Recorder {
    fn new(binds: bool) -> Self {
        Self {
            binds,
            seen: Arc::default(),
        }
    }
    fn unbound(&self) -> u64 {
        self.seen.unbound.load(Ordering::Relaxed)
    }
    fn bound(&self) -> u64 {
        self.seen.bound.load(Ordering::Relaxed)
    }
    fn names(&self) -> Vec<String> {
        let mut n = self.seen.names.lock().unwrap().clone();
        n.sort();
        n.dedup();
        n
    }
    fn instrument(&self, name: &str) -> Arc<Instrument> {
        Arc::new(Instrument {
            name: name.to_owned(),
            binds: self.binds,
            seen: self.seen.clone(),
        })
    }
}

impl MeterProvider for Recorder {
    fn meter_with_scope(&self, _scope: InstrumentationScope) -> Meter {
        Meter::new(Arc::new(self.clone()))
    }
}

impl InstrumentProvider for Recorder {
    fn u64_counter(&self, b: InstrumentBuilder<'_, Counter<u64>>) -> Counter<u64> {
        Counter::new(self.instrument(&b.name))
    }
    fn i64_up_down_counter(
        &self,
        b: InstrumentBuilder<'_, UpDownCounter<i64>>,
    ) -> UpDownCounter<i64> {
        UpDownCounter::new(self.instrument(&b.name))
    }
    fn f64_histogram(&self, b: HistogramBuilder<'_, Histogram<f64>>) -> Histogram<f64> {
        Histogram::new(self.instrument(&b.name))
    }
}

struct Instrument {
    name: String,
    binds: bool,
    seen: Arc<Seen>,
}

impl Instrument {
    fn note(&self) {
        self.seen.names.lock().unwrap().push(self.name.clone());
    }
}

impl<T> SyncInstrument<T> for Instrument {
    fn measure(&self, _value: T, _attributes: &[KeyValue]) {
        self.seen.unbound.fetch_add(1, Ordering::Relaxed);
        self.note();
    }

    fn bind(&self, attributes: &[KeyValue]) -> Box<dyn BoundSyncInstrument<T> + Send + Sync> {
        if !self.binds {
            // What an SDK without `experimental_metrics_bound_instruments` does: the
            // trait's default, a binding that drops everything.
            return NoBind.bind(attributes);
        }
        Box::new(Bound(Instrument {
            name: self.name.clone(),
            binds: true,
            seen: self.seen.clone(),
        }))
    }
}

/// A `SyncInstrument` with the trait's default `bind`.
struct NoBind;

impl<T> SyncInstrument<T> for NoBind {
    fn measure(&self, _value: T, _attributes: &[KeyValue]) {}
}

struct Bound(Instrument);

impl<T> BoundSyncInstrument<T> for Bound {
    fn measure(&self, _value: T) {
        self.0.seen.bound.fetch_add(1, Ordering::Relaxed);
        self.0.note();
    }
}

/// Runs a task group (counters, an up-down counter) and a worker pool (histograms, every
/// job timed) on `t`.
async fn workload(t: &Telemetry) {
    let mut group: TaskGroup<(), String> = TaskGroup::builder()
        .name("binding")
        .telemetry(t.clone())
        .build()
        .unwrap();
    group.spawn(async { Ok(()) }).await.unwrap();
    group.spawn(async { Err("no".to_owned()) }).await.unwrap();
    let _ = group.wait().await;

    let pool = WorkerPool::builder("binding")
        .workers(1)
        .timing_sample(1)
        .telemetry(t.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        pool.submit(|| async {}).await.unwrap();
    }
    pool.shutdown(std::time::Duration::from_secs(5)).await;
}

const SYNC_NAMES: &[&str] = &[
    "otelconc.group.task.active",
    "otelconc.group.task.finished",
    "otelconc.group.task.started",
    "otelconc.pool.job.duration",
    "otelconc.pool.queue.wait.duration",
];

fn assert_all_synchronous_instruments_recorded(r: &Recorder) {
    let names = r.names();
    for n in SYNC_NAMES {
        assert!(
            names.iter().any(|x| x == n),
            "{n} recorded nothing: {names:?}"
        );
    }
}

/// The silent-drop case: a meter provider whose `bind` is the no-op default (an SDK built
/// without its bound-instruments feature). A handle nobody vouched for must not bind, so
/// every measurement arrives.
#[tokio::test]
async fn a_handle_on_an_sdk_that_cannot_bind_loses_no_measurement() {
    let sdk = Recorder::new(false);
    let t = Telemetry::new(&sdk, &NoopTracerProvider::new());
    assert!(!t.bound_instruments());
    workload(&t).await;
    assert_all_synchronous_instruments_recorded(&sdk);
    assert!(sdk.unbound() > 0);
    assert_eq!(sdk.bound(), 0);
}

/// With the opt-in, measurements go through the bindings (and only there), and a bound
/// and an unbound handle on one provider do not share their synchronous instruments.
#[tokio::test]
async fn with_bound_instruments_records_through_bindings_only() {
    let sdk = Recorder::new(true);
    let unbound = Telemetry::new(&sdk, &NoopTracerProvider::new());
    let bound = unbound.clone().with_bound_instruments();
    assert!(bound.bound_instruments());
    workload(&bound).await;
    assert_all_synchronous_instruments_recorded(&sdk);
    assert_eq!(sdk.unbound(), 0);
    let through_bindings = sdk.bound();
    assert!(through_bindings > 0);

    // The unbound clone shares the bound one's observable instruments, not its
    // synchronous ones.
    workload(&unbound).await;
    assert!(sdk.unbound() > 0);
    assert_eq!(sdk.bound(), through_bindings);
}

/// `Telemetry::global` binds only on the global provider it was told about: not before
/// `bind_global_instruments`, and not on a provider installed after it.
#[tokio::test]
async fn global_handles_bind_only_on_the_provider_vouched_for() {
    let _globals = crate::GLOBALS.lock().await;
    let first = Recorder::new(true);
    opentelemetry::global::set_meter_provider(first.clone());
    let before = Telemetry::global();
    assert!(!before.bound_instruments());
    workload(&before).await;
    assert!(first.unbound() > 0);
    assert_eq!(first.bound(), 0);

    Telemetry::bind_global_instruments();
    let after = Telemetry::global();
    assert!(after.bound_instruments());
    assert!(!before.bound_instruments(), "a handle keeps what it had");
    let unbound_so_far = first.unbound();
    workload(&after).await;
    assert!(first.bound() > 0);
    assert_eq!(first.unbound(), unbound_so_far);

    // Another provider, one that cannot bind, replaces it: nobody vouched for this one.
    let second = Recorder::new(false);
    opentelemetry::global::set_meter_provider(second.clone());
    let replaced = Telemetry::global();
    assert!(!replaced.bound_instruments());
    workload(&replaced).await;
    assert_all_synchronous_instruments_recorded(&second);
}
