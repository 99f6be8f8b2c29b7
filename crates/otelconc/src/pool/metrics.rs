//! The pool's telemetry: one [`Metrics`] struct with the histograms, the counters the
//! observable instruments read, the 1-in-N timing sample, and the observable callbacks.

use std::cell::Cell as StdCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry::{KeyValue, StringValue};
use tokio::time::Instant;

use super::stats::Stats;
use crate::telemetry::names::pool as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
use crate::telemetry::{Combine, Histogram, Observation, Telemetry};
use crate::util::counts::Striped;
use crate::util::sync::lock;

/// Outcome indexes of the histograms and of each worker's job counters, in the order of
/// `names::OUTCOMES`.
pub(crate) const OK: usize = 0;
pub(crate) const PANIC: usize = 1;
pub(crate) const TIMEOUT: usize = 2;
pub(crate) const CANCELLED: usize = 3;
/// A worker's counter of the jobs it started: its current job's sequence number.
pub(crate) const STARTED: usize = 4;
/// How many counters a worker keeps (`util::counts::Owned`, one writer: the worker).
pub(crate) const COUNTERS: usize = 5;

/// Indexes of the counters any submitter (or a shutdown) may bump ([`Striped`]).
const SUBMITTED: usize = 0;
const REJECTED_FULL: usize = 1;
const REJECTED_CLOSED: usize = 2;
/// Jobs accepted but never started (dropped from the queue at abort or deadline).
const NOT_STARTED: usize = 3;
const OUTCOMES_DROPPED: usize = 4;

/// Every instrument of one pool, and the counts only telemetry and [`Stats`] read. The
/// per-job counts live in each worker's slot (see `state::WorkerSlot`), written by that
/// worker alone.
pub(crate) struct Metrics {
    /// Run time by outcome (a 1-in-`sample_every` sample of jobs).
    duration: [Histogram; 4],
    /// Queue wait by outcome (same sample).
    wait: [Histogram; 4],
    sample_every: u32,
    /// `SUBMITTED`, `REJECTED_FULL`, `REJECTED_CLOSED`, `NOT_STARTED`, `OUTCOMES_DROPPED`.
    counters: Striped<5>,
    /// For the max-age gauge: per worker, the job sequence number last seen running and
    /// when it was first seen.
    seen_running: Mutex<HashMap<u64, (u64, Instant)>>,
    /// The observable instruments' registrations, kept alive with the pool.
    observables: Mutex<Vec<Observation>>,
}

thread_local! {
    static TICK: StdCell<u32> = const { StdCell::new(0) };
}

impl Metrics {
    pub(crate) fn new(t: &Telemetry, name: &Arc<str>, sample_every: u32) -> Self {
        let attrs = |outcome: &'static str| {
            [
                KeyValue::new(ATTR_NAME, StringValue::from(name.clone())),
                KeyValue::new(ATTR_OUTCOME, outcome),
            ]
        };
        let hists = |spec| -> [Histogram; 4] {
            std::array::from_fn(|i| t.histogram(spec, &attrs(names::OUTCOMES[i])))
        };
        Self {
            duration: hists(&names::JOB_DURATION),
            wait: hists(&names::QUEUE_WAIT),
            sample_every,
            counters: Striped::default(),
            seen_running: Mutex::new(HashMap::new()),
            observables: Mutex::new(Vec::new()),
        }
    }

    /// True for one submit in `sample_every` on this thread: that job is timed for the
    /// histograms.
    #[inline]
    pub(crate) fn tick(&self) -> bool {
        let n = self.sample_every;
        if n == 1 {
            return true;
        }
        TICK.with(|t| {
            let v = t.get();
            if v == 0 {
                t.set(n - 1);
                true
            } else {
                t.set(v - 1);
                false
            }
        })
    }

    /// Records a timed job's run time and queue wait under outcome `idx`.
    #[inline]
    pub(crate) fn record_times(&self, idx: usize, queued: Instant, started: Instant) {
        let now = Instant::now();
        self.duration[idx].record((now - started).as_secs_f64());
        self.wait[idx].record((started - queued).as_secs_f64());
    }

    #[inline]
    pub(crate) fn accepted(&self) {
        self.counters.add(SUBMITTED, 1);
    }

    pub(crate) fn refused(&self, full: bool) {
        let k = if full { REJECTED_FULL } else { REJECTED_CLOSED };
        self.counters.add(k, 1);
    }

    pub(crate) fn not_started(&self) {
        self.counters.add(NOT_STARTED, 1);
    }

    pub(crate) fn outcome_dropped(&self) {
        self.counters.add(OUTCOMES_DROPPED, 1);
    }

    /// Fills the counts this struct keeps into `stats`.
    pub(crate) fn fill(&self, stats: &mut Stats) {
        stats.submitted = self.counters.get(SUBMITTED);
        stats.not_started = self.counters.get(NOT_STARTED);
        stats.rejected = self.counters.get(REJECTED_FULL) + self.counters.get(REJECTED_CLOSED);
        stats.outcomes_dropped = self.counters.get(OUTCOMES_DROPPED);
    }

    /// Seconds the longest-running job has run, as seen by calls to this function: a job
    /// counts from the first call that saw it running (no timestamp per job). `running`
    /// is `(worker id, job sequence number)` for every busy worker.
    pub(crate) fn max_age(&self, running: impl Iterator<Item = (u64, u64)>) -> f64 {
        let now = Instant::now();
        let mut seen = lock(&self.seen_running);
        let mut next = HashMap::with_capacity(seen.len());
        let mut max = Duration::ZERO;
        for (id, seq) in running {
            let first = match seen.get(&id) {
                Some(&(s, t)) if s == seq => t,
                _ => now,
            };
            next.insert(id, (seq, first));
            max = max.max(now - first);
        }
        *seen = next;
        max.as_secs_f64()
    }
}

/// The pool as its observable instruments read it at collection time.
pub(crate) trait Observed: Send + Sync + 'static {
    fn metrics(&self) -> &Metrics;
    fn stats(&self) -> Stats;
    fn max_age(&self) -> f64;
}

/// An observable callback reading `f` of the pool while it lives; it holds only a `Weak`,
/// so a dropped pool reports nothing.
fn reader<S: Observed, T>(
    shared: &Arc<S>,
    f: impl Fn(&S) -> T + Send + Sync + 'static,
) -> impl Fn() -> Option<T> + Send + Sync + 'static {
    let w: Weak<S> = Arc::downgrade(shared);
    move || w.upgrade().map(|s| f(&s))
}

type StatFn = fn(&Stats) -> u64;
type CounterFn = fn(&Metrics) -> u64;

/// Registers the pool's observable instruments and keeps them alive in its [`Metrics`].
pub(crate) fn register_observables<S: Observed>(shared: &Arc<S>, t: &Telemetry, pool: &Arc<str>) {
    let name = || KeyValue::new(ATTR_NAME, StringValue::from(pool.clone()));
    let mut out: Vec<Observation> = Vec::new();
    let stat = |f: StatFn| reader(shared, move |s| f(&s.stats()));
    // In the order of `names::OUTCOMES`.
    let jobs: [StatFn; 5] = [
        |s| s.completed,
        |s| s.panicked,
        |s| s.timed_out,
        |s| s.cancelled,
        |s| s.not_started,
    ];
    for (&outcome, f) in names::OUTCOMES.iter().zip(jobs) {
        out.push(t.observable_counter(
            &names::JOBS,
            vec![name(), KeyValue::new(ATTR_OUTCOME, outcome)],
            stat(f),
        ));
    }
    out.push(t.observable_counter(&names::SUBMITTED, vec![name()], stat(|s| s.submitted)));
    // In the order of `names::REJECT_REASONS`.
    let reasons: [CounterFn; 2] = [
        |m| m.counters.get(REJECTED_FULL),
        |m| m.counters.get(REJECTED_CLOSED),
    ];
    for (&reason, f) in names::REJECT_REASONS.iter().zip(reasons) {
        out.push(t.observable_counter(
            &names::REJECTED,
            vec![name(), KeyValue::new(ATTR_REASON, reason)],
            reader(shared, move |s| f(s.metrics())),
        ));
    }
    out.push(t.observable_counter(
        &names::OUTCOMES_DROPPED,
        vec![name()],
        stat(|s| s.outcomes_dropped),
    ));
    let gauge = |f: fn(&Stats) -> usize| {
        reader(shared, move |s| {
            i64::try_from(f(&s.stats())).unwrap_or(i64::MAX)
        })
    };
    out.push(t.observable_gauge(&names::QUEUE_DEPTH, vec![name()], gauge(|s| s.queued)));
    out.push(t.observable_gauge(&names::WORKERS, vec![name()], gauge(|s| s.workers)));
    out.push(t.observable_gauge(&names::BUSY, vec![name()], gauge(|s| s.busy)));
    out.push(t.observable_gauge_f64(
        &names::UTILIZATION,
        vec![name()],
        Combine::Mean,
        reader(shared, |s| {
            let st = s.stats();
            if st.workers == 0 {
                0.0
            } else {
                st.busy as f64 / st.workers as f64
            }
        }),
    ));
    out.push(t.observable_gauge_f64(
        &names::MAX_JOB_AGE,
        vec![name()],
        Combine::Max,
        reader(shared, S::max_age),
    ));
    *lock(&shared.metrics().observables) = out;
}
