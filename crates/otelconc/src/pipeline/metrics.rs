//! A stage's instruments: its counters, its duration histogram and the probes of its
//! runs' buffers, the observable instruments that read them, and the counts a worker
//! keeps on its stack and adds to them in batches.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_channel::{Receiver, WeakReceiver};
use opentelemetry::KeyValue;

use crate::telemetry::names::ATTR_OUTCOME;
use crate::telemetry::names::pipeline::{BUFFER_DEPTH, DURATION, PROCESSED, RECEIVED};
use crate::telemetry::{Histogram, Observation, Telemetry};
use crate::util::sync::lock;

/// How many items a worker counts locally before it adds them to the stage's atomics
/// (it also adds them whenever it is about to wait for input, and when it stops).
pub(crate) const FLUSH_EVERY: u64 = 64;

/// What the buffer depth gauge reads of one run's stage buffer: how many items wait
/// in it, `None` once the channel is closed.
pub(crate) trait BufferDepth: Send + Sync {
    fn depth(&self) -> Option<usize>;
}

impl<T: Send> BufferDepth for WeakReceiver<T> {
    fn depth(&self) -> Option<usize> {
        self.upgrade().map(|r| r.len())
    }
}

/// The strong end of a run's buffer probe, held by the run only: a `WeakReceiver`
/// keeps its channel, and every item in it, alive, so nothing else may hold one past
/// its run.
pub(crate) type ProbeHandle = Arc<dyn BufferDepth>;

/// A run's buffer as its stage sees it (see [`ProbeHandle`]).
type Probe = Weak<dyn BufferDepth>;

/// Reads one outcome's counter of a stage.
type OutcomeField = fn(&Metrics) -> &AtomicU64;

/// One stage's instruments, shared by every run of its pipeline (or every call of its
/// chain): the counters its observable instruments read, its duration histogram, the
/// probes of its runs' output buffers, and its part in the observable instruments.
pub(crate) struct Metrics {
    pub(crate) received: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) error: AtomicU64,
    pub(crate) panic: AtomicU64,
    pub(crate) duration: Histogram,
    probes: Mutex<Vec<Probe>>,
    /// The stage's part in its observable instruments, whose sources hold only a
    /// `Weak` of these metrics: once the last run and the pipeline let go of them,
    /// dropping them takes the stage out of its instruments.
    observers: Vec<Observation>,
    depth_observer: Option<Observation>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A stage's instruments, with `attrs` (the pipeline's name and the stage's);
    /// `depth` registers the buffer depth gauge (pipelines have buffers, chains do not).
    pub(crate) fn new(telemetry: &Telemetry, attrs: &[KeyValue], depth: bool) -> Arc<Self> {
        Arc::new_cyclic(|w: &Weak<Self>| {
            let mut observers = Vec::with_capacity(4);
            let r = w.clone();
            observers.push(
                telemetry.observable_counter(&RECEIVED, attrs.to_vec(), move || {
                    r.upgrade().map(|s| s.received.load(Ordering::Relaxed))
                }),
            );
            let outcomes: [(&'static str, OutcomeField); 3] = [
                ("ok", |s| &s.ok),
                ("error", |s| &s.error),
                ("panic", |s| &s.panic),
            ];
            for (outcome, field) in outcomes {
                let r = w.clone();
                let mut a = attrs.to_vec();
                a.push(KeyValue::new(ATTR_OUTCOME, outcome));
                observers.push(telemetry.observable_counter(&PROCESSED, a, move || {
                    r.upgrade().map(|s| field(&s).load(Ordering::Relaxed))
                }));
            }
            let depth_observer = depth.then(|| {
                let r = w.clone();
                telemetry.observable_gauge(&BUFFER_DEPTH, attrs.to_vec(), move || {
                    let s = r.upgrade()?;
                    let live = s.live_probes();
                    let total: usize = live.iter().filter_map(|p| p.depth()).sum();
                    Some(i64::try_from(total).unwrap_or(i64::MAX))
                })
            });
            Self {
                received: AtomicU64::new(0),
                ok: AtomicU64::new(0),
                error: AtomicU64::new(0),
                panic: AtomicU64::new(0),
                duration: telemetry.histogram(&DURATION, attrs),
                probes: Mutex::new(Vec::new()),
                observers,
                depth_observer,
            }
        })
    }

    /// Whether an SDK reads the stage's metrics (a no-op meter drops them at once).
    pub(crate) fn observed(&self) -> bool {
        self.observers.iter().any(Observation::observed)
    }

    /// Whether an SDK reads the stage's buffer depth gauge.
    pub(crate) fn depth_observed(&self) -> bool {
        self.depth_observer
            .as_ref()
            .is_some_and(Observation::observed)
    }

    /// A probe of the buffer `rx` reads, reported by this stage while the returned
    /// handle lives. The probes of runs that let go of theirs are pruned here and at
    /// every reading, so the list never holds more probes than there were runs alive
    /// at once.
    pub(crate) fn probe<T: Send + 'static>(&self, rx: &Receiver<T>) -> ProbeHandle {
        let handle: ProbeHandle = Arc::new(rx.downgrade());
        let mut probes = lock(&self.probes);
        probes.retain(|p| p.strong_count() > 0);
        probes.push(Arc::downgrade(&handle));
        handle
    }

    /// The probes of the runs still alive (the others are pruned). They are read, and
    /// dropped, after the lock is released: if a run ended meanwhile, the last
    /// reference to its buffer goes here, and with it the items still in it.
    fn live_probes(&self) -> Vec<ProbeHandle> {
        let mut live = Vec::new();
        lock(&self.probes).retain(|p| match p.upgrade() {
            Some(p) => {
                live.push(p);
                true
            }
            None => false,
        });
        live
    }

    /// How many buffer probes the stage holds, live or not yet pruned.
    #[cfg(test)]
    pub(crate) fn probes_held(&self) -> usize {
        lock(&self.probes).len()
    }
}

/// Counts kept on the worker's stack and added to the stage's atomics in batches, so
/// the per-item cost is a few plain additions instead of contended atomic operations.
pub(crate) struct LocalCounts {
    metrics: Arc<Metrics>,
    pub(crate) received: u64,
    pub(crate) ok: u64,
    pub(crate) error: u64,
    pub(crate) panic: u64,
}

impl LocalCounts {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            received: 0,
            ok: 0,
            error: 0,
            panic: 0,
        }
    }

    /// Adds the counts to the stage's atomics and zeroes them.
    pub(crate) fn flush(&mut self) {
        for (n, a) in [
            (&mut self.received, &self.metrics.received),
            (&mut self.ok, &self.metrics.ok),
            (&mut self.error, &self.metrics.error),
            (&mut self.panic, &self.metrics.panic),
        ] {
            if *n > 0 {
                a.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
    }
}

impl Drop for LocalCounts {
    fn drop(&mut self) {
        self.flush();
    }
}
