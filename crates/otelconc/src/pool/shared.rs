//! The state workers and handles share, the worker loop, and the pool's telemetry.

use std::cell::Cell as StdCell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue, StringValue};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::JobError;
use super::job::{ErasedJob, Meta};
use super::outcome::Outcome;
use super::stats::{ShutdownReport, Stats};
use crate::group::Guarded;
use crate::sync::lock;
use crate::telemetry::names::pool as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, ATTR_REASON};
use crate::telemetry::{Combine, Histogram, Observation, Telemetry, record_error};

/// A queued job: the erased job, the submitter's context when it was sampled, and the
/// time it was queued when that is recorded (for the span's queue wait, or because the
/// job is in the histograms' 1-in-N sample: `timed`).
pub(crate) struct Envelope {
    pub(crate) cell: Pin<Box<dyn ErasedJob>>,
    pub(crate) parent: Option<Context>,
    pub(crate) enqueued: Option<Instant>,
    pub(crate) timed: bool,
}

/// Adds one to a counter only its worker writes (no read-modify-write needed).
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

/// One worker's counters, on a cache line of its own: only that worker writes them, so
/// counting a job costs no contended atomic operation.
#[repr(align(128))]
pub(crate) struct WorkerSlot {
    id: u64,
    /// The pool's name for span attributes, in an `Arc` of this worker's own: cloning a
    /// shared one per span would bounce its reference count between workers.
    name_attr: KeyValue,
    retire: AtomicBool,
    wake: Notify,
    busy: AtomicBool,
    started: AtomicU64,
    ok: AtomicU64,
    panicked: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
}

impl WorkerSlot {
    fn new(id: u64, name: &str) -> Self {
        Self {
            id,
            name_attr: KeyValue::new(ATTR_NAME, StringValue::from(Arc::<str>::from(name))),
            retire: AtomicBool::new(false),
            wake: Notify::new(),
            busy: AtomicBool::new(false),
            started: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }
}

/// Counts of workers that have exited.
#[derive(Default, Clone, Copy)]
struct Totals {
    ok: u64,
    panicked: u64,
    timed_out: u64,
    cancelled: u64,
}

impl Totals {
    fn add(&mut self, s: &WorkerSlot) {
        self.ok += s.ok.load(Relaxed);
        self.panicked += s.panicked.load(Relaxed);
        self.timed_out += s.timed_out.load(Relaxed);
        self.cancelled += s.cancelled.load(Relaxed);
    }
}

pub(crate) struct Workers {
    closed: bool,
    /// Workers not told to retire.
    active: usize,
    next_id: u64,
    /// Every worker task not yet exited (including retiring ones).
    live: Vec<(Arc<WorkerSlot>, AbortHandle)>,
    retired: Totals,
}

/// Counters submitters write, on a cache line of their own.
#[repr(align(128))]
#[derive(Default)]
struct SubmitCounters {
    submitted: AtomicU64,
    rejected_full: AtomicU64,
    rejected_closed: AtomicU64,
}

/// Outcome indexes of the histograms, in the order of `names::OUTCOMES`.
const OK: usize = 0;
const PANICKED: usize = 1;
const TIMED_OUT: usize = 2;
const CANCELLED: usize = 3;

pub(crate) struct Config {
    pub(crate) name: Arc<str>,
    pub(crate) capacity: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Duration,
    pub(crate) outcomes: Option<usize>,
    pub(crate) sample_every: u32,
    pub(crate) telemetry: Telemetry,
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) tx: async_channel::Sender<Envelope>,
    rx: async_channel::Receiver<Envelope>,
    timeout: Option<Duration>,
    pub(crate) deadline: Duration,
    sample_every: u32,
    pub(crate) telemetry: Telemetry,
    duration: [Histogram; 4],
    wait: [Histogram; 4],
    pub(crate) outcomes: Option<(
        async_channel::Sender<Outcome>,
        async_channel::Receiver<Outcome>,
    )>,
    root: CancellationToken,
    tracker: TaskTracker,
    rt: tokio::runtime::Handle,
    workers: Mutex<Workers>,
    counters: SubmitCounters,
    not_started: AtomicU64,
    outcomes_dropped: AtomicU64,
    aborted: AtomicBool,
    /// Held while a shutdown drains the queue and reads the final counts, so concurrent
    /// shutdowns report the same numbers.
    finishing: Mutex<()>,
    /// For the max-age gauge: per worker, the job sequence number last seen running and
    /// when it was first seen.
    seen_running: Mutex<HashMap<u64, (u64, Instant)>>,
    observables: Mutex<Vec<Observation>>,
}

thread_local! {
    static TICK: StdCell<u32> = const { StdCell::new(0) };
}

impl Shared {
    pub(crate) fn new(cfg: Config, rt: tokio::runtime::Handle) -> Arc<Self> {
        let (tx, rx) = async_channel::bounded(cfg.capacity);
        let t = &cfg.telemetry;
        let attrs = |outcome: &'static str| {
            [
                KeyValue::new(ATTR_NAME, StringValue::from(cfg.name.clone())),
                KeyValue::new(ATTR_OUTCOME, outcome),
            ]
        };
        let hists = |spec| -> [Histogram; 4] {
            std::array::from_fn(|i| t.histogram(spec, &attrs(names::OUTCOMES[i])))
        };
        let shared = Arc::new(Self {
            name: cfg.name.clone(),
            tx,
            rx,
            timeout: cfg.timeout,
            deadline: cfg.deadline,
            sample_every: cfg.sample_every,
            duration: hists(&names::JOB_DURATION),
            wait: hists(&names::QUEUE_WAIT),
            telemetry: cfg.telemetry.clone(),
            outcomes: cfg.outcomes.map(async_channel::bounded),
            root: CancellationToken::new(),
            tracker: TaskTracker::new(),
            rt,
            workers: Mutex::new(Workers {
                closed: false,
                active: 0,
                next_id: 0,
                live: Vec::new(),
                retired: Totals::default(),
            }),
            counters: SubmitCounters::default(),
            not_started: AtomicU64::new(0),
            outcomes_dropped: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            finishing: Mutex::new(()),
            seen_running: Mutex::new(HashMap::new()),
            observables: Mutex::new(Vec::new()),
        });
        let obs = register_observables(&shared);
        *lock(&shared.observables) = obs;
        shared
    }

    /// Wraps a job for the queue: the submitter's context when sampled, and a timestamp
    /// when one is recorded (the span's queue wait, or the 1-in-N histogram sample).
    #[inline]
    pub(crate) fn envelope(&self, cell: Pin<Box<dyn ErasedJob>>) -> Envelope {
        let parent = self.telemetry.span_parent();
        let timed = self.tick();
        let enqueued = if timed || parent.is_some() {
            Some(Instant::now())
        } else {
            None
        };
        Envelope {
            cell,
            parent,
            enqueued,
            timed,
        }
    }

    /// True for one submit in `sample_every` on this thread.
    #[inline]
    fn tick(&self) -> bool {
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

    pub(crate) fn accepted(&self) {
        self.counters.submitted.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self, full: bool) {
        let c = if full {
            &self.counters.rejected_full
        } else {
            &self.counters.rejected_closed
        };
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub(crate) fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Starts `n` more workers. Call with the workers lock held.
    fn spawn_workers(self: &Arc<Self>, w: &mut Workers, n: usize) {
        for _ in 0..n {
            let slot = Arc::new(WorkerSlot::new(w.next_id, &self.name));
            w.next_id += 1;
            let task = self
                .tracker
                .spawn_on(worker(self.clone(), slot.clone()), &self.rt);
            w.live.push((slot, task.abort_handle()));
            w.active += 1;
        }
    }

    pub(crate) fn start(self: &Arc<Self>, n: usize) {
        let mut w = lock(&self.workers);
        self.spawn_workers(&mut w, n);
    }

    /// Grows or shrinks the worker count; `false` when the pool is closed.
    pub(crate) fn resize(self: &Arc<Self>, n: usize) -> bool {
        let mut w = lock(&self.workers);
        if w.closed {
            return false;
        }
        if n > w.active {
            let more = n - w.active;
            self.spawn_workers(&mut w, more);
        } else {
            let mut fewer = w.active - n;
            for (slot, _) in &w.live {
                if fewer == 0 {
                    break;
                }
                if !slot.retire.swap(true, Relaxed) {
                    // Finishes its current job, if any, then exits without taking another.
                    slot.wake.notify_one();
                    fewer -= 1;
                }
            }
            w.active = n;
        }
        true
    }

    /// A worker exits: fold its counts into the totals.
    fn exited(&self, slot: &Arc<WorkerSlot>) {
        let mut w = lock(&self.workers);
        if let Some(i) = w.live.iter().position(|(s, _)| Arc::ptr_eq(s, slot)) {
            let (s, _) = w.live.swap_remove(i);
            w.retired.add(&s);
            if !s.retire.load(Relaxed) {
                w.active = w.active.saturating_sub(1);
            }
        }
    }

    /// Stops intake; `true` if this call closed the pool.
    pub(crate) fn close(&self) -> bool {
        let first = {
            let mut w = lock(&self.workers);
            !std::mem::replace(&mut w.closed, true)
        };
        self.tx.close();
        self.tracker.close();
        first
    }

    /// Cancels every job's token and aborts every worker; running jobs' futures are
    /// dropped at their next await and count as cancelled.
    fn abort_now(&self) {
        self.aborted.store(true, Relaxed);
        self.root.cancel();
        let mut w = lock(&self.workers);
        for (_, task) in &w.live {
            task.abort();
        }
        w.active = 0;
    }

    pub(crate) async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.close();
        let drained = tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok();
        if !drained {
            self.abort_now();
            self.tracker.wait().await;
        }
        // Workers exit only once the queue is empty, unless aborted: what is left never
        // started.
        let _finishing = lock(&self.finishing);
        while let Ok(env) = self.rx.try_recv() {
            self.not_started.fetch_add(1, Relaxed);
            let meta = self.outcomes.as_ref().map(|_| meta_of(&*env.cell));
            self.settle(env.cell, meta, Err(JobError::Rejected));
        }
        if let Some((tx, _)) = &self.outcomes {
            tx.close();
        }
        let s = self.stats();
        ShutdownReport {
            completed: s.completed,
            failed: s.failed,
            cancelled: s.cancelled,
            never_started: s.not_started,
            deadline_passed: self.aborted.load(Relaxed),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let w = lock(&self.workers);
        let mut t = w.retired;
        let mut busy = 0;
        for (slot, _) in &w.live {
            t.add(slot);
            busy += usize::from(slot.busy.load(Relaxed));
        }
        let workers = w.active;
        drop(w);
        let rejected =
            self.counters.rejected_full.load(Relaxed) + self.counters.rejected_closed.load(Relaxed);
        Stats {
            workers,
            busy,
            queued: self.rx.len(),
            submitted: self.counters.submitted.load(Relaxed),
            completed: t.ok,
            failed: t.panicked + t.timed_out,
            panicked: t.panicked,
            timed_out: t.timed_out,
            cancelled: t.cancelled,
            not_started: self.not_started.load(Relaxed),
            rejected,
            outcomes_dropped: self.outcomes_dropped.load(Relaxed),
        }
    }

    /// Seconds the longest-running job has run, as seen by calls to this function: a job
    /// counts from the first call that saw it running (no timestamp per job).
    fn max_age(&self) -> f64 {
        let now = Instant::now();
        let w = lock(&self.workers);
        let mut seen = lock(&self.seen_running);
        let mut next = HashMap::with_capacity(w.live.len());
        let mut max = Duration::ZERO;
        for (slot, _) in &w.live {
            if !slot.busy.load(Relaxed) {
                continue;
            }
            let seq = slot.started.load(Relaxed);
            let first = match seen.get(&slot.id) {
                Some(&(s, t)) if s == seq => t,
                _ => now,
            };
            next.insert(slot.id, (seq, first));
            max = max.max(now - first);
        }
        *seen = next;
        max.as_secs_f64()
    }

    /// The end of every job, run or not: its handle gets `result`, then the outcomes
    /// stream (when `meta` was taken for it), then the job is dropped.
    fn settle(
        &self,
        mut cell: Pin<Box<dyn ErasedJob>>,
        meta: Option<Meta>,
        result: Result<(), JobError>,
    ) {
        cell.as_mut().deliver(result.clone());
        self.push_outcome(meta, result);
        drop_quietly(cell);
    }

    fn push_outcome(&self, meta: Option<Meta>, result: Result<(), JobError>) {
        let (Some((tx, _)), Some((name, id))) = (&self.outcomes, meta) else {
            return;
        };
        if tx.try_send(Outcome { name, id, result }).is_err() {
            self.outcomes_dropped.fetch_add(1, Relaxed);
        }
    }

    fn start_span(
        &self,
        slot: &WorkerSlot,
        parent: &Context,
        meta: &Meta,
        wait: Option<Duration>,
    ) -> Context {
        let mut attrs = Vec::with_capacity(4);
        attrs.push(slot.name_attr.clone());
        if let Some(n) = &meta.0 {
            attrs.push(KeyValue::new(names::ATTR_JOB_NAME, n.clone()));
        }
        if let Some(id) = &meta.1 {
            attrs.push(KeyValue::new(names::ATTR_JOB_ID, id.clone()));
        }
        if let Some(w) = wait {
            attrs.push(KeyValue::new(ATTR_QUEUE_WAIT, w.as_secs_f64()));
        }
        self.telemetry.start_span(&names::JOB_SPAN, parent, attrs)
    }
}

/// A job's name and id; a panic in the job's `name` or `id` leaves them out.
fn meta_of(cell: &dyn ErasedJob) -> Meta {
    std::panic::catch_unwind(AssertUnwindSafe(|| cell.meta())).unwrap_or((None, None))
}

/// Drops a job's cell; a panic in the job's destructor is caught so the worker survives.
fn drop_quietly(cell: Pin<Box<dyn ErasedJob>>) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(cell)));
}

/// Polls a job's cell (under its span and with panics caught by [`Guarded`]).
struct Run<'a> {
    cell: Pin<&'a mut dyn ErasedJob>,
    token: &'a CancellationToken,
}

impl Future for Run<'_> {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.cell.as_mut().poll_run(this.token, cx)
    }
}

/// A job a worker has taken. Whatever ends it (its output, a panic, the timeout, or the
/// worker being aborted, which drops this guard), [`InFlight::finish`] counts it exactly
/// once, ends its span and tells its handle.
struct InFlight<'a> {
    shared: &'a Shared,
    slot: &'a WorkerSlot,
    cell: Option<Pin<Box<dyn ErasedJob>>>,
    cx: Option<Context>,
    meta: Option<Meta>,
    /// (queued at, started at) for timed jobs.
    times: Option<(Instant, Instant)>,
}

impl InFlight<'_> {
    fn finish(&mut self, result: Result<(), JobError>) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        let (idx, counter) = match &result {
            Ok(()) => (OK, &self.slot.ok),
            Err(JobError::Panicked(_)) => (PANICKED, &self.slot.panicked),
            Err(JobError::TimedOut) => (TIMED_OUT, &self.slot.timed_out),
            Err(_) => (CANCELLED, &self.slot.cancelled),
        };
        bump(counter);
        if let Some((queued, started)) = self.times {
            let now = Instant::now();
            self.shared.duration[idx].record((now - started).as_secs_f64());
            self.shared.wait[idx].record((started - queued).as_secs_f64());
        }
        if let Some(cx) = self.cx.take() {
            match &result {
                Ok(()) => {}
                Err(JobError::Panicked(m)) => record_error(&cx, "panic", m.clone()),
                Err(JobError::TimedOut) => record_error(&cx, "timeout", "job timed out"),
                Err(e) => record_error(&cx, "cancelled", e.to_string()),
            }
            cx.span().end();
        }
        self.shared.settle(cell, self.meta.take(), result);
        self.slot.busy.store(false, Relaxed);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Reached with the cell still here only when the worker was aborted mid-job.
        self.finish(Err(JobError::Cancelled));
    }
}

async fn run_job(shared: &Shared, slot: &WorkerSlot, token: &mut CancellationToken, env: Envelope) {
    let Envelope {
        cell,
        parent,
        enqueued,
        timed,
    } = env;
    slot.busy.store(true, Relaxed);
    bump(&slot.started);
    let started = enqueued.map(|q| (q, Instant::now()));
    let meta = (parent.is_some() || shared.outcomes.is_some()).then(|| meta_of(&*cell));
    let cx = match (&parent, &meta) {
        (Some(p), Some(m)) => Some(shared.start_span(slot, p, m, started.map(|(q, s)| s - q))),
        _ => None,
    };
    // Traced jobs outside the sample skip the histograms: their span has the times.
    let times = started.filter(|_| timed);
    let mut job = InFlight {
        shared,
        slot,
        cell: Some(cell),
        cx,
        meta,
        times,
    };
    let result = {
        let Some(cell) = job.cell.as_mut() else {
            return;
        };
        let run = Guarded::new(
            Run {
                cell: cell.as_mut(),
                token,
            },
            job.cx.as_ref(),
        );
        let caught = match shared.timeout {
            None => Ok(run.await),
            Some(limit) => tokio::time::timeout(limit, run).await,
        };
        match caught {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(JobError::Panicked(message)),
            Err(_elapsed) => Err(JobError::TimedOut),
        }
    };
    if matches!(result, Err(JobError::TimedOut)) {
        // The job's token fires; later jobs on this worker get a fresh one.
        token.cancel();
        *token = shared.root.child_token();
    }
    job.finish(result);
}

/// One worker: takes jobs until the queue is closed and empty, or it is told to retire.
async fn worker(shared: Arc<Shared>, slot: Arc<WorkerSlot>) {
    let mut token = shared.root.child_token();
    loop {
        if slot.retire.load(Relaxed) {
            break;
        }
        let env = match shared.rx.try_recv() {
            Ok(env) => env,
            Err(async_channel::TryRecvError::Closed) => break,
            Err(async_channel::TryRecvError::Empty) => {
                let wake = slot.wake.notified();
                tokio::select! {
                    biased;
                    r = shared.rx.recv() => match r {
                        Ok(env) => env,
                        Err(_) => break,
                    },
                    () = wake => continue,
                }
            }
        };
        run_job(&shared, &slot, &mut token, env).await;
        // Jobs that never wait would otherwise keep this worker from yielding.
        tokio::task::consume_budget().await;
    }
    shared.exited(&slot);
}

type StatFn = fn(&Stats) -> u64;
type CounterFn = fn(&SubmitCounters) -> u64;

/// An observable callback reading `f` of the pool while it lives; it holds only a `Weak`,
/// so a dropped pool reports nothing.
fn reader<T>(
    shared: &Arc<Shared>,
    f: impl Fn(&Shared) -> T + Send + Sync + 'static,
) -> impl Fn() -> Option<T> + Send + Sync + 'static {
    let w: Weak<Shared> = Arc::downgrade(shared);
    move || w.upgrade().map(|s| f(&s))
}

fn register_observables(shared: &Arc<Shared>) -> Vec<Observation> {
    let t = &shared.telemetry;
    let name = || KeyValue::new(ATTR_NAME, StringValue::from(shared.name.clone()));
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
        |c| c.rejected_full.load(Relaxed),
        |c| c.rejected_closed.load(Relaxed),
    ];
    for (&reason, f) in names::REJECT_REASONS.iter().zip(reasons) {
        out.push(t.observable_counter(
            &names::REJECTED,
            vec![name(), KeyValue::new(ATTR_REASON, reason)],
            reader(shared, move |s| f(&s.counters)),
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
        reader(shared, Shared::max_age),
    ));
    out
}
