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
use crate::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_WORKER_STATE};
use crate::telemetry::{Histogram, Observation, Telemetry};
use crate::util::backlog::Backlog;
use crate::util::busy::Workers as BusyWorkers;
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
    /// The workers' busy time.
    pub(crate) busy: Arc<BusyWorkers>,
    /// For the oldest queued job's age.
    backlog: Backlog,
    /// The queue's capacity.
    capacity: usize,
    /// For the max-age gauge: per worker, the job sequence number last seen running and
    /// when it was first seen.
    seen_running: Mutex<HashMap<u64, (u64, Instant)>>,
    /// The observable instruments' registrations, kept alive with the pool.
    observables: Mutex<Vec<Observation>>,
    /// Whether an SDK reads them (set at registration): if not, workers keep no clock.
    pub(crate) observed: std::sync::atomic::AtomicBool,
}

thread_local! {
    /// Submits left on this thread before the next timed one, over every pool.
    static TICK: StdCell<u32> = const { StdCell::new(0) };
}

impl Metrics {
    pub(crate) fn new(t: &Telemetry, name: &Arc<str>, sample_every: u32, capacity: usize) -> Self {
        let attrs = |i: usize| {
            let mut a = vec![
                KeyValue::new(ATTR_NAME, StringValue::from(name.clone())),
                KeyValue::new(ATTR_OUTCOME, names::OUTCOMES[i]),
            ];
            if let Some(e) = names::ERRORS[i] {
                a.push(KeyValue::new(ATTR_ERROR_TYPE, e));
            }
            a
        };
        let hists =
            |spec| -> [Histogram; 4] { std::array::from_fn(|i| t.histogram(spec, &attrs(i))) };
        Self {
            duration: hists(&names::JOB_DURATION),
            wait: hists(&names::QUEUE_WAIT_DURATION),
            sample_every,
            counters: Striped::default(),
            busy: Arc::default(),
            backlog: Backlog::default(),
            capacity,
            seen_running: Mutex::new(HashMap::new()),
            observables: Mutex::new(Vec::new()),
            observed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True for one submit in `sample_every` on this thread: that job is timed for the
    /// histograms: a fixed stride of the thread's submits over every pool, so a pool
    /// built per request does not have its first job always timed.
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

    /// Records a timed job's run time and queue wait under outcome `idx`, under the
    /// job's context `cx` when it has one (its span's, or the submitter's), so that an
    /// SDK that collects exemplars links the points to the job's trace.
    #[inline]
    pub(crate) fn record_times(
        &self,
        idx: usize,
        queued: Instant,
        started: Instant,
        cx: Option<opentelemetry::Context>,
    ) {
        let _current = cx.map(opentelemetry::Context::attach);
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

    /// Seconds the oldest job still queued has waited, at least (see [`Backlog`]), with
    /// `queued` jobs in the queue: the jobs that entered it are the ones accepted.
    pub(crate) fn oldest_queued_age(&self, queued: usize) -> f64 {
        let entered = self.counters.get(SUBMITTED);
        self.backlog.oldest_age(entered, queued as u64)
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
    fn queued(&self) -> usize;
    /// Workers of the configured count waiting for a job (a worker retiring after a
    /// shrink is not one of them, even while it finishes its job).
    fn idle_workers(&self) -> usize;
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
    let outcomes = names::OUTCOMES.iter().zip(names::ERRORS);
    for ((&outcome, error), f) in outcomes.zip(jobs) {
        let mut attrs = vec![name(), KeyValue::new(ATTR_OUTCOME, outcome)];
        if let Some(e) = error {
            attrs.push(KeyValue::new(ATTR_ERROR_TYPE, *e));
        }
        out.push(t.observable_counter(&names::JOBS, attrs, stat(f)));
    }
    // In the order of `names::SUBMIT_RESULTS`.
    let submits: [CounterFn; 3] = [
        |m| m.counters.get(SUBMITTED),
        |m| m.counters.get(REJECTED_FULL),
        |m| m.counters.get(REJECTED_CLOSED),
    ];
    for (&(outcome, error), f) in names::SUBMIT_RESULTS.iter().zip(submits) {
        let mut attrs = vec![name(), KeyValue::new(ATTR_OUTCOME, outcome)];
        if let Some(e) = error {
            attrs.push(KeyValue::new(ATTR_ERROR_TYPE, e));
        }
        out.push(t.observable_counter(
            &names::SUBMISSIONS,
            attrs,
            reader(shared, move |s| f(s.metrics())),
        ));
    }
    out.push(t.observable_counter(
        &names::OUTCOMES_DROPPED,
        vec![name()],
        stat(|s| s.outcomes_dropped),
    ));
    let level = |f: fn(&Stats) -> usize| {
        reader(shared, move |s| {
            i64::try_from(f(&s.stats())).unwrap_or(i64::MAX)
        })
    };
    out.push(t.observable_up_down_counter(&names::QUEUE_SIZE, vec![name()], level(|s| s.queued)));
    out.push(t.observable_up_down_counter(
        &names::QUEUE_CAPACITY,
        vec![name()],
        reader(shared, |s| {
            i64::try_from(s.metrics().capacity).unwrap_or(i64::MAX)
        }),
    ));
    out.push(t.observable_gauge_f64(
        &names::QUEUE_OLDEST_AGE,
        vec![name()],
        reader(shared, |s| s.metrics().oldest_queued_age(s.queued())),
    ));
    out.push(t.observable_up_down_counter(
        &names::WORKER_LIMIT,
        vec![name()],
        level(|s| s.workers),
    ));
    let state = |v: &'static str| vec![name(), KeyValue::new(ATTR_WORKER_STATE, v)];
    out.push(t.observable_up_down_counter(
        &names::WORKER_COUNT,
        state(names::STATE_BUSY),
        level(|s| s.busy),
    ));
    out.push(t.observable_up_down_counter(
        &names::WORKER_COUNT,
        state(names::STATE_IDLE),
        reader(shared, |s| {
            i64::try_from(s.idle_workers()).unwrap_or(i64::MAX)
        }),
    ));
    out.push(t.observable_counter_f64(
        &names::WORKER_BUSY_TIME,
        vec![name()],
        reader(shared, |s| s.metrics().busy.busy_time()),
    ));
    out.push(t.observable_gauge_f64(
        &names::MAX_JOB_AGE,
        vec![name()],
        reader(shared, S::max_age),
    ));
    let observed = out.iter().any(Observation::observed);
    shared
        .metrics()
        .observed
        .store(observed, std::sync::atomic::Ordering::Relaxed);
    *lock(&shared.metrics().observables) = out;
}
