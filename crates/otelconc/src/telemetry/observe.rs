//! Observable instruments shared by every live instance of the same name.
//!
//! The SDK keeps the *last* value observed for an attribute set, and it never
//! unregisters a callback. With one callback per primitive instance, two live instances
//! named alike overwrote each other's counts, and every instance ever built left a
//! callback behind that each collection still ran. So a [`Telemetry`] handle and its
//! clones (and every [`Telemetry::global`] handle on the same global provider) share
//! one [`Observatory`]: one instrument and one callback per instrument name and
//! attribute set, registered the first time an instance asks for it. Each instance adds
//! a *source* to it, and its [`Observation`] takes the source out again when the
//! instance drops. The callback combines the live sources:
//! - counters add up, and stay monotonic while any instance of the name lives: a
//!   source that leaves hands its last observed count to the ones that stay. Once the
//!   last one leaves, the counter stops reporting (as a single instance did), and a
//!   later instance of that name starts from zero;
//! - gauges are kept for values that do not add up (ages): the callback takes the
//!   largest value ([`Combine`]);
//! - up-down counters (additive levels) add up, and a source that leaves takes its part
//!   of the level with it.
//!
//! No crate does this: the SDK's own aggregation of observable instruments is the
//! "last value wins" this module works around.
//!
//! The same per-handle registry keeps the bound *synchronous* instruments too, one per
//! name and attribute set, so a primitive built per request clones them instead of
//! building and binding them again.
//!
//! [`Telemetry`]: super::Telemetry
//! [`Telemetry::global`]: super::Telemetry::global

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    AsyncInstrument, AsyncInstrumentBuilder, Meter, MeterProvider, ObservableCounter,
    ObservableGauge, ObservableUpDownCounter,
};

use super::instruments::{Counter, Histogram, UpDownCounter};
use super::names::{InstrumentKind, InstrumentSpec};
use crate::util::sync::lock;

/// How the live sources of one observable instrument combine into the value exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Combine {
    /// Their sum (additive levels: waiters, queue sizes, permits).
    Sum,
    /// The largest (maxima, such as the age of the oldest running job).
    Max,
}

/// A value an observable instrument reports.
pub(crate) trait Value: Copy + Send + Sync + 'static {
    const ZERO: Self;
    fn add(self, other: Self) -> Self;
    fn max(self, other: Self) -> Self;
}

impl Value for u64 {
    const ZERO: Self = 0;
    fn add(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn max(self, other: Self) -> Self {
        Ord::max(self, other)
    }
}

impl Value for i64 {
    const ZERO: Self = 0;
    fn add(self, other: Self) -> Self {
        self.saturating_add(other)
    }
    fn max(self, other: Self) -> Self {
        Ord::max(self, other)
    }
}

impl Value for f64 {
    const ZERO: Self = 0.0;
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
}

/// What a source reads: `None` once its instance is gone.
type Read<V> = Arc<dyn Fn() -> Option<V> + Send + Sync>;

struct Source<V> {
    id: u64,
    read: Read<V>,
    /// The value of the last collection, handed on when the source leaves.
    last: Option<V>,
}

struct SlotState<V> {
    next_id: u64,
    sources: Vec<Source<V>>,
    /// Counters: the last counts of sources that left while others stayed.
    retired: V,
}

/// One instrument and attribute set: its live sources.
pub(super) struct Slot<V> {
    /// `None` for a counter (its sources summed, with what the departed ones counted);
    /// else how the live sources of a level combine: summed for an up-down counter, the
    /// largest for a gauge.
    combine: Option<Combine>,
    /// Whether the meter kept the callback, i.e. an SDK will read this slot.
    kept: AtomicBool,
    state: Mutex<SlotState<V>>,
}

impl<V: Value> Slot<V> {
    /// The value to export: the live sources combined, `None` when there are none.
    ///
    /// The sources are read without the slot's lock: a read upgrades a weak reference
    /// to its instance, and if the instance's last handle goes meanwhile, the instance
    /// is dropped right here, and with it its observation, which takes the lock. A
    /// source that leaves while it is read keeps its earlier value (now in `retired`),
    /// so the counter still never goes back.
    fn observe(&self) -> Option<V> {
        let reads: Vec<(u64, Read<V>)> = lock(&self.state)
            .sources
            .iter()
            .map(|s| (s.id, s.read.clone()))
            .collect();
        let values: Vec<(u64, Option<V>)> = reads.into_iter().map(|(id, r)| (id, r())).collect();
        let mut st = lock(&self.state);
        for (id, v) in values {
            if let (Some(v), Some(s)) = (v, st.sources.iter_mut().find(|s| s.id == id)) {
                s.last = Some(v);
            }
        }
        let mut acc: Option<V> = None;
        for s in &st.sources {
            let Some(v) = s.last else { continue };
            acc = Some(match (acc, self.combine) {
                (None, _) => v,
                (Some(a), Some(Combine::Max)) => a.max(v),
                (Some(a), _) => a.add(v),
            });
        }
        match self.combine {
            None if st.sources.is_empty() => None,
            None => Some(acc.unwrap_or(V::ZERO).add(st.retired)),
            Some(_) => acc,
        }
    }

    fn add(&self, read: Read<V>) -> u64 {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        st.sources.push(Source {
            id,
            read,
            last: None,
        });
        id
    }
}

/// A slot as its [`Observation`] sees it, whatever its value type.
trait Leave: Send + Sync {
    fn leave(&self, id: u64);
}

impl<V: Value> Leave for Slot<V> {
    fn leave(&self, id: u64) {
        let mut st = lock(&self.state);
        let Some(i) = st.sources.iter().position(|s| s.id == id) else {
            return;
        };
        let gone = st.sources.swap_remove(i);
        if st.sources.is_empty() {
            st.retired = V::ZERO;
        } else if self.combine.is_none() {
            st.retired = st.retired.add(gone.last.unwrap_or(V::ZERO));
        }
    }
}

/// One instance's part in a shared observable instrument: dropping it takes the
/// instance's source out (keep it as long as the instance lives).
#[must_use = "dropping it takes the instance out of the instrument"]
pub(crate) struct Observation {
    slot: Arc<dyn Leave>,
    id: u64,
    observed: bool,
}

impl Observation {
    /// Whether an SDK reads the instrument (a no-op meter drops the callback at once);
    /// when it does not, the instance can skip measuring what only it would report.
    pub(crate) fn observed(&self) -> bool {
        self.observed
    }
}

impl std::fmt::Debug for Observation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observation")
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.slot.leave(self.id);
    }
}

/// The key of a slot: the instrument's name and the attributes, rendered.
pub(super) type Key = (&'static str, String);

pub(super) fn key(spec: &InstrumentSpec, attrs: &[KeyValue]) -> Key {
    let mut parts: Vec<String> = attrs
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    parts.sort_unstable();
    (spec.name, parts.join("\u{1f}"))
}

/// The slots of one meter provider (see the module docs), and its synchronous
/// instruments, bound once per name and attribute set.
#[derive(Default)]
pub(crate) struct Observatory {
    counters: Mutex<HashMap<Key, Weak<Slot<u64>>>>,
    counters_f64: Mutex<HashMap<Key, Weak<Slot<f64>>>>,
    gauges_f64: Mutex<HashMap<Key, Weak<Slot<f64>>>>,
    up_down: Mutex<HashMap<Key, Weak<Slot<i64>>>>,
    up_down_f64: Mutex<HashMap<Key, Weak<Slot<f64>>>>,
    /// Bound synchronous instruments. Building and binding one costs the SDK a few
    /// microseconds (an instrument lookup and an attribute-set lookup, each under a
    /// lock); primitives built per request (task groups, `fan_out` runs) would pay that
    /// for every instrument of every instance, where a clone of the bound handle does.
    /// Keyed by whether the handle binds too, so a bound and an unbound handle on one
    /// provider never hand each other their instruments.
    pub(super) sync_counters: Mutex<HashMap<(Key, bool), Counter>>,
    pub(super) sync_up_down: Mutex<HashMap<(Key, bool), UpDownCounter>>,
    pub(super) sync_histograms: Mutex<HashMap<(Key, bool), Histogram>>,
    /// For the global provider's observatory: set by
    /// [`Telemetry::bind_global_instruments`](super::Telemetry::bind_global_instruments),
    /// read by [`Telemetry::global`](super::Telemetry::global). It goes with this
    /// observatory when another global provider is installed.
    pub(super) global_binds: AtomicBool,
}

impl std::fmt::Debug for Observatory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observatory").finish_non_exhaustive()
    }
}

/// What a slot's instrument callback runs: the slot's combined value.
type Callback<V> = Box<dyn Fn() -> Option<V> + Send + Sync>;

/// The instrument callback reporting `observe()` with `attrs`, holding `probe`: after
/// the instrument is built, a second reference to `probe` means the meter kept it.
fn callback<V: Value>(
    attrs: Vec<KeyValue>,
    observe: Callback<V>,
    probe: &Arc<()>,
) -> impl Fn(&dyn AsyncInstrument<V>) + Send + Sync + 'static {
    let held = probe.clone();
    move |o| {
        let _ = &held;
        if let Some(v) = observe() {
            o.observe(v, &attrs);
        }
    }
}

/// An observable instrument the observatory registers: the kind the catalogue gives it,
/// how the sources of one slot combine (`None`: a counter), where its slots are kept,
/// and how the meter builds it.
pub(super) trait Observable: Sized {
    type Value: Value;
    const KIND: InstrumentKind;
    const COMBINE: Option<Combine>;
    fn slots(o: &Observatory) -> &Mutex<HashMap<Key, Weak<Slot<Self::Value>>>>;
    fn builder<'m>(
        meter: &'m Meter,
        name: &'static str,
    ) -> AsyncInstrumentBuilder<'m, Self, Self::Value>;
    fn build(builder: AsyncInstrumentBuilder<'_, Self, Self::Value>) -> Self;
}

/// Implements [`Observable`], one instrument a row: the instrument (its name is its
/// catalogue kind too) and value type, how its sources combine, the observatory's
/// field that keeps its slots, and the meter's builder method.
macro_rules! observable {
    ($($inst:ident<$value:ty>: $combine:expr, $slots:ident, $builder:ident;)*) => {$(
        impl Observable for $inst<$value> {
            type Value = $value;
            const KIND: InstrumentKind = InstrumentKind::$inst;
            const COMBINE: Option<Combine> = $combine;
            fn slots(o: &Observatory) -> &Mutex<HashMap<Key, Weak<Slot<$value>>>> {
                &o.$slots
            }
            fn builder<'m>(
                meter: &'m Meter,
                name: &'static str,
            ) -> AsyncInstrumentBuilder<'m, Self, $value> {
                meter.$builder(name)
            }
            fn build(builder: AsyncInstrumentBuilder<'_, Self, $value>) -> Self {
                builder.build()
            }
        }
    )*};
}

observable! {
    ObservableCounter<u64>: None, counters, u64_observable_counter;
    ObservableCounter<f64>: None, counters_f64, f64_observable_counter;
    ObservableUpDownCounter<i64>: Some(Combine::Sum), up_down, i64_observable_up_down_counter;
    ObservableUpDownCounter<f64>: Some(Combine::Sum), up_down_f64, f64_observable_up_down_counter;
    ObservableGauge<f64>: Some(Combine::Max), gauges_f64, f64_observable_gauge;
}

/// Builds the `I` instrument for `spec` (with its unit and description) whose callback
/// reports the slot's value `cb` with `attrs`; returns whether the meter kept the
/// callback (an SDK does; a no-op meter drops it at once).
fn register<I: Observable>(
    meter: &Meter,
    spec: &'static InstrumentSpec,
    attrs: Vec<KeyValue>,
    cb: Callback<I::Value>,
) -> bool {
    let probe = Arc::new(());
    let builder = I::builder(meter, spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(callback(attrs, cb, &probe));
    let _ = I::build(builder);
    Arc::strong_count(&probe) > 1
}

/// The instrument under `key` in `map`, made by `make` the first time.
pub(super) fn bound<T: Clone>(
    map: &Mutex<HashMap<(Key, bool), T>>,
    key: (Key, bool),
    make: impl FnOnce() -> T,
) -> T {
    lock(map).entry(key).or_insert_with(make).clone()
}

impl Observatory {
    /// The observatory shared by every [`Telemetry::global`](super::Telemetry::global)
    /// handle on the global meter provider `provider`.
    ///
    /// It outlives the handles (until another global provider is installed), so a
    /// name whose instances all went and came back finds its instruments again. The
    /// provider is held weakly: its address cannot be reused while this compares it.
    pub(crate) fn global(provider: &Arc<dyn MeterProvider + Send + Sync>) -> Arc<Self> {
        type Current = Option<(Weak<dyn MeterProvider + Send + Sync>, Arc<Observatory>)>;
        static GLOBAL: Mutex<Current> = Mutex::new(None);
        let mut g = lock(&GLOBAL);
        if let Some((p, o)) = &*g
            && std::ptr::addr_eq(p.as_ptr(), Arc::as_ptr(provider))
        {
            return o.clone();
        }
        let o = Arc::new(Self::default());
        *g = Some((Arc::downgrade(provider), o.clone()));
        o
    }

    /// This instance's source `read` in the `I` instrument for `spec` and `attrs` on
    /// `meter` (see the module docs for how the sources of one instrument combine).
    ///
    /// The instrument is registered the first time an instance asks for it. Its slot
    /// lives as long as the meter keeps its callback (an SDK keeps it for good) or an
    /// observation holds it; the map only points at it, so with a no-op meter a slot goes
    /// once its last instance does.
    pub(super) fn observe<I: Observable>(
        &self,
        meter: &Meter,
        spec: &'static InstrumentSpec,
        attrs: Vec<KeyValue>,
        read: impl Fn() -> Option<I::Value> + Send + Sync + 'static,
    ) -> Observation {
        debug_assert_eq!(spec.kind, I::KIND, "{}", spec.name);
        let k = key(spec, &attrs);
        let mut map = lock(I::slots(self));
        let slot = match map.get(&k).and_then(Weak::upgrade) {
            Some(slot) => slot,
            None => {
                let slot = Arc::new(Slot {
                    combine: I::COMBINE,
                    kept: AtomicBool::new(false),
                    state: Mutex::new(SlotState {
                        next_id: 0,
                        sources: Vec::new(),
                        retired: I::Value::ZERO,
                    }),
                });
                let held = slot.clone();
                let kept = register::<I>(meter, spec, attrs, Box::new(move || held.observe()));
                slot.kept.store(kept, Ordering::Relaxed);
                map.retain(|_, w| w.strong_count() > 0);
                map.insert(k, Arc::downgrade(&slot));
                slot
            }
        };
        drop(map);
        let observed = slot.kept.load(Ordering::Relaxed);
        // Nobody reads an unkept slot: keep no source in it.
        let id = if observed {
            slot.add(Arc::new(read))
        } else {
            u64::MAX
        };
        Observation { slot, id, observed }
    }
}
