//! A stage's instruments: its counters, its duration histogram and the probes of its
//! runs' buffers, and the observable instruments that read them.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use async_channel::{Receiver, WeakReceiver};
use opentelemetry::KeyValue;

use crate::telemetry::names::ATTR_OUTCOME;
use crate::telemetry::names::pipeline::{BUFFER_DEPTH, DURATION, PROCESSED, RECEIVED};
use crate::telemetry::{Histogram, Observation, Telemetry};
use crate::util::counts::{Owned, Roster, Striped};
use crate::util::sync::lock;

/// The index of each count of a stage: items taken in, then finished by outcome.
pub(crate) const TAKEN: usize = 0;
pub(crate) const OK: usize = 1;
pub(crate) const ERROR: usize = 2;
pub(crate) const PANIC: usize = 3;
/// How many counts a stage keeps.
const COUNTS: usize = 4;

/// Who writes a stage's counts: the workers of its pipeline's runs, each its own
/// counters ([`Owned`], joined from the roster), or the callers of a [`Chain`], any
/// thread through the shared handle ([`Striped`]).
///
/// [`Chain`]: super::Chain
pub(crate) enum Counts {
    Workers(Roster<COUNTS>),
    /// Boxed: one cache line per thread stripe is large beside the roster.
    Calls(Box<Striped<COUNTS>>),
}

impl Counts {
    fn total(&self, k: usize) -> u64 {
        match self {
            Self::Workers(r) => r.total(k),
            Self::Calls(s) => s.get(k),
        }
    }
}

/// Which kind of stage the instruments are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StageKind {
    /// A pipeline stage: worker tasks and an output buffer (with its depth gauge).
    Pipeline,
    /// A chain stage: called on the caller's task, no buffer.
    Chain,
}

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

/// One stage's instruments, shared by every run of its pipeline (or every call of its
/// chain): the counts its observable instruments read, its duration histogram, the
/// probes of its runs' output buffers, and its part in the observable instruments.
pub(crate) struct Metrics {
    pub(crate) counts: Counts,
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
    /// A stage's instruments, with `attrs` (the pipeline's name and the stage's); a
    /// pipeline stage also registers the buffer depth gauge.
    pub(crate) fn new(telemetry: &Telemetry, attrs: &[KeyValue], kind: StageKind) -> Arc<Self> {
        Arc::new_cyclic(|w: &Weak<Self>| {
            let mut observers = Vec::with_capacity(4);
            let outcomes = [
                (TAKEN, None),
                (OK, Some("ok")),
                (ERROR, Some("error")),
                (PANIC, Some("panic")),
            ];
            for (k, outcome) in outcomes {
                let r = w.clone();
                let read = move || r.upgrade().map(|s| s.counts.total(k));
                observers.push(match outcome {
                    None => telemetry.observable_counter(&RECEIVED, attrs.to_vec(), read),
                    Some(outcome) => {
                        let mut a = attrs.to_vec();
                        a.push(KeyValue::new(ATTR_OUTCOME, outcome));
                        telemetry.observable_counter(&PROCESSED, a, read)
                    }
                });
            }
            let depth_observer = (kind == StageKind::Pipeline).then(|| {
                let r = w.clone();
                telemetry.observable_gauge(&BUFFER_DEPTH, attrs.to_vec(), move || {
                    let s = r.upgrade()?;
                    let live = s.live_probes();
                    let total: usize = live.iter().filter_map(|p| p.depth()).sum();
                    Some(i64::try_from(total).unwrap_or(i64::MAX))
                })
            });
            Self {
                counts: match kind {
                    StageKind::Pipeline => Counts::Workers(Roster::default()),
                    StageKind::Chain => Counts::Calls(Box::default()),
                },
                duration: telemetry.histogram(&DURATION, attrs),
                probes: Mutex::new(Vec::new()),
                observers,
                depth_observer,
            }
        })
    }

    /// Adds one to count `k` of a chain stage, from any thread (a pipeline stage's
    /// workers count through their [`WorkerCounts`]).
    #[inline]
    pub(crate) fn count_call(&self, k: usize) {
        if let Counts::Calls(c) = &self.counts {
            c.add(k, 1);
        }
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

/// A stage worker's own counts, joined to its stage's roster for as long as the worker
/// runs: the worker adds to them with plain stores, and they leave the roster (their
/// counts going into its totals) when the worker ends, however it ends (an aborted
/// worker task is dropped, and this with it).
pub(crate) struct WorkerCounts {
    metrics: Arc<Metrics>,
    own: Arc<Owned<COUNTS>>,
}

impl WorkerCounts {
    /// Counts for a new worker of the stage of `metrics`.
    pub(crate) fn join(metrics: Arc<Metrics>) -> Self {
        let own = match &metrics.counts {
            Counts::Workers(r) => r.join(),
            // A chain stage has no workers; its counts are never read from here.
            Counts::Calls(_) => Arc::default(),
        };
        Self { metrics, own }
    }

    /// Adds one to count `k`.
    #[inline]
    pub(crate) fn one(&self, k: usize) {
        self.own.add(k, 1);
    }
}

impl Drop for WorkerCounts {
    fn drop(&mut self) {
        if let Counts::Workers(r) = &self.metrics.counts {
            r.leave(&self.own);
        }
    }
}
