//! A stage's instruments: its counters, its duration histogram, its workers' busy time
//! and the probes of its runs' buffers, and the observable instruments that read them.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use async_channel::{Receiver, WeakReceiver};
use opentelemetry::KeyValue;

use crate::telemetry::names::pipeline::{
    BUFFER_CAPACITY, BUFFER_OLDEST_AGE, BUFFER_SIZE, BUSY_TIME, DURATION, PROCESSED, RECEIVED,
    WORKER_COUNT, WORKER_LIMIT,
};
use crate::telemetry::names::pool::{STATE_BUSY, STATE_IDLE};
use crate::telemetry::names::{ATTR_OUTCOME, ATTR_WORKER_STATE};
use crate::telemetry::{Histogram, Observation, Telemetry};
use crate::util::backlog::Backlog;
use crate::util::busy::{Shift, Workers as BusyWorkers};
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

/// What the buffer instruments read of one run's stage buffer: how many items wait in
/// it and how many it holds at most, and the age of the oldest one; `None` once the
/// channel is closed.
pub(crate) trait BufferProbe: Send + Sync {
    fn level(&self) -> Option<(usize, usize)>;
    fn oldest_age(&self) -> Option<f64>;
}

/// One run's output buffer of a stage: a weak end of it, and the items the stage's
/// workers put in it (each worker its own counter, [`Owned`]), for the oldest item's
/// age ([`Backlog`]).
pub(crate) struct RunBuffer<T> {
    rx: WeakReceiver<T>,
    capacity: usize,
    pub(crate) entered: Arc<Roster<1>>,
    backlog: Backlog,
}

impl<T: Send> BufferProbe for RunBuffer<T> {
    fn level(&self) -> Option<(usize, usize)> {
        self.rx.upgrade().map(|r| (r.len(), self.capacity))
    }

    fn oldest_age(&self) -> Option<f64> {
        let queued = self.rx.upgrade()?.len() as u64;
        Some(self.backlog.oldest_age(self.entered.total(0), queued))
    }
}

/// The strong end of a run's buffer probe, held by the run only: a `WeakReceiver`
/// keeps its channel, and every item in it, alive, so nothing else may hold one past
/// its run.
pub(crate) type ProbeHandle = Arc<dyn BufferProbe>;

/// A run's buffer as its stage sees it (see [`ProbeHandle`]).
type Probe = Weak<dyn BufferProbe>;

/// One stage's instruments, shared by every run of its pipeline (or every call of its
/// chain): the counts its observable instruments read, its duration histogram, the
/// probes of its runs' output buffers, and its part in the observable instruments.
pub(crate) struct Metrics {
    pub(crate) counts: Counts,
    pub(crate) duration: Histogram,
    /// The busy time of the stage's workers, in every run.
    pub(crate) busy: Arc<BusyWorkers>,
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
            let mut depth_observer = None;
            if kind == StageKind::Pipeline {
                let levels = |r: &Weak<Self>, capacity: bool| {
                    let r = r.clone();
                    move || {
                        let s = r.upgrade()?;
                        let total: usize = s
                            .live_probes()
                            .iter()
                            .filter_map(|p| p.level())
                            .map(|(len, cap)| if capacity { cap } else { len })
                            .sum();
                        Some(i64::try_from(total).unwrap_or(i64::MAX))
                    }
                };
                let attrs = attrs.to_vec();
                depth_observer = Some(telemetry.observable_up_down_counter(
                    &BUFFER_SIZE,
                    attrs.clone(),
                    levels(w, false),
                ));
                observers.push(telemetry.observable_up_down_counter(
                    &BUFFER_CAPACITY,
                    attrs.clone(),
                    levels(w, true),
                ));
                let r = w.clone();
                observers.push(telemetry.observable_gauge_f64(
                    &BUFFER_OLDEST_AGE,
                    attrs.clone(),
                    move || {
                        let s = r.upgrade()?;
                        let oldest = s
                            .live_probes()
                            .iter()
                            .filter_map(|p| p.oldest_age())
                            .fold(0.0, f64::max);
                        Some(oldest)
                    },
                ));
                let r = w.clone();
                observers.push(telemetry.observable_counter_f64(
                    &BUSY_TIME,
                    attrs.clone(),
                    move || Some(r.upgrade()?.busy.busy_time()),
                ));
                let r = w.clone();
                observers.push(telemetry.observable_up_down_counter(
                    &WORKER_LIMIT,
                    attrs.clone(),
                    move || Some(i64::try_from(r.upgrade()?.busy.counts().0).unwrap_or(i64::MAX)),
                ));
                for (state, busy) in [(STATE_BUSY, true), (STATE_IDLE, false)] {
                    let r = w.clone();
                    let mut a = attrs.clone();
                    a.push(KeyValue::new(ATTR_WORKER_STATE, state));
                    observers.push(telemetry.observable_up_down_counter(
                        &WORKER_COUNT,
                        a,
                        move || {
                            let (live, n) = r.upgrade()?.busy.counts();
                            let v = if busy { n } else { live - n };
                            Some(i64::try_from(v).unwrap_or(i64::MAX))
                        },
                    ));
                }
            }
            Self {
                counts: match kind {
                    StageKind::Pipeline => Counts::Workers(Roster::default()),
                    StageKind::Chain => Counts::Calls(Box::default()),
                },
                duration: telemetry.histogram(&DURATION, attrs),
                busy: Arc::default(),
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

    /// Whether an SDK reads the stage's buffer size.
    pub(crate) fn depth_observed(&self) -> bool {
        self.depth_observer
            .as_ref()
            .is_some_and(Observation::observed)
    }

    /// A probe of the buffer `rx` reads, of `capacity` items, reported by this stage
    /// while the returned handle lives; the stage's workers of the run count the items
    /// they put in the buffer in its `entered`. The probes of runs that let go of theirs
    /// are pruned here and at every reading, so the list never holds more probes than
    /// there were runs alive at once.
    pub(crate) fn probe<T: Send + 'static>(
        &self,
        rx: &Receiver<T>,
        capacity: usize,
    ) -> Arc<RunBuffer<T>> {
        let buffer = Arc::new(RunBuffer {
            rx: rx.downgrade(),
            capacity,
            entered: Arc::default(),
            backlog: Backlog::default(),
        });
        let handle: ProbeHandle = buffer.clone();
        let mut probes = lock(&self.probes);
        probes.retain(|p| p.strong_count() > 0);
        probes.push(Arc::downgrade(&handle));
        buffer
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
/// worker task is dropped, and this with it). With them, the worker's busy-time clock
/// ([`Shift`]) and its count of the items it put in its run's output buffer (when an
/// SDK reads the buffer's instruments).
pub(crate) struct WorkerCounts {
    metrics: Arc<Metrics>,
    own: Arc<Owned<COUNTS>>,
    pub(crate) shift: Shift,
    /// The run's output buffer and this worker's count of the items it put there.
    entered: Option<(Arc<Roster<1>>, Arc<Owned<1>>)>,
}

impl WorkerCounts {
    /// Counts for a new worker of the stage of `metrics`, writing into the run buffer
    /// `buffer` (when it is probed).
    pub(crate) fn join(metrics: Arc<Metrics>, buffer: Option<Arc<Roster<1>>>) -> Self {
        let read = metrics.observed();
        let own = match &metrics.counts {
            Counts::Workers(r) => r.join(),
            // A chain stage has no workers; its counts are never read from here.
            Counts::Calls(_) => Arc::default(),
        };
        let entered = buffer.map(|b| {
            let mine = b.join();
            (b, mine)
        });
        Self {
            shift: Shift::begin(&metrics.busy, read),
            metrics,
            own,
            entered,
        }
    }

    /// Adds one to count `k`.
    #[inline]
    pub(crate) fn one(&self, k: usize) {
        self.own.add(k, 1);
    }

    /// The worker put one item (or a skipped item's marker) in its output buffer.
    #[inline]
    pub(crate) fn entered(&self) {
        if let Some((_, mine)) = &self.entered {
            mine.add(0, 1);
        }
    }
}

impl Drop for WorkerCounts {
    fn drop(&mut self) {
        if let Counts::Workers(r) = &self.metrics.counts {
            r.leave(&self.own);
        }
        if let Some((b, mine)) = &self.entered {
            b.leave(mine);
        }
    }
}
