//! The state workers and handles share ([`Shared`]): the queue, the worker roster, and
//! shutdown and stats, which read both. The worker loop and starting or retiring workers
//! are in `worker.rs`; the instruments in `metrics.rs`.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::{Context, KeyValue, StringValue};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::JobError;
use super::job::{ErasedJob, Meta};
use super::metrics::{
    CANCELLED, COUNTERS, Metrics, OK, Observed, PANIC, STARTED, TIMEOUT, register_observables,
};
use super::outcome::Outcome;
use super::stats::{ShutdownReport, Stats};
use crate::telemetry::names::ATTR_NAME;
use crate::telemetry::{Carried, Telemetry};
use crate::util::counts::{Owned, Roster};
use crate::util::sync::lock;

/// A queued job: the erased job, plus (boxed, only when there is something to carry)
/// the submitter's context and the time it was queued. `Trace::timed` says the job is in
/// the histograms' 1-in-N sample; a traced job outside it skips the histograms.
pub(crate) type Queued = Carried<Pin<Box<dyn ErasedJob>>>;

/// One worker's state and counters. Only that worker writes the counters (on a cache
/// line of their own), so counting a job costs no contended atomic operation; the
/// roster ([`Shared::counts`]) sums them for stats. The worker list tells the worker to
/// retire. On a cache line of its own, as `busy` is written per job.
#[repr(align(128))]
pub(crate) struct WorkerSlot {
    pub(crate) id: u64,
    /// The pool's name for span attributes, in an `Arc` of this worker's own: cloning a
    /// shared one per span would bounce its reference count between workers.
    pub(crate) name_attr: KeyValue,
    pub(crate) retire: AtomicBool,
    pub(crate) wake: Notify,
    pub(crate) busy: AtomicBool,
    /// `OK`, `PANIC`, `TIMEOUT`, `CANCELLED` and `STARTED`.
    pub(crate) counts: Arc<Owned<COUNTERS>>,
}

impl WorkerSlot {
    pub(crate) fn new(id: u64, name: &str, counts: Arc<Owned<COUNTERS>>) -> Self {
        Self {
            id,
            name_attr: KeyValue::new(ATTR_NAME, StringValue::from(Arc::<str>::from(name))),
            retire: AtomicBool::new(false),
            wake: Notify::new(),
            busy: AtomicBool::new(false),
            counts,
        }
    }
}

/// The worker list.
pub(crate) struct Workers {
    pub(crate) closed: bool,
    /// Workers not told to retire.
    pub(crate) active: usize,
    pub(crate) next_id: u64,
    /// Every worker task not yet exited (including retiring ones).
    pub(crate) live: Vec<(Arc<WorkerSlot>, AbortHandle)>,
}

impl Workers {
    /// Takes `slot` off the list; `false` if it was not on it.
    fn unlist(&mut self, slot: &Arc<WorkerSlot>) -> bool {
        match self.live.iter().position(|(s, _)| Arc::ptr_eq(s, slot)) {
            Some(i) => {
                self.live.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

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
    pub(crate) tx: async_channel::Sender<Queued>,
    pub(crate) rx: async_channel::Receiver<Queued>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Duration,
    pub(crate) telemetry: Telemetry,
    pub(crate) metrics: Metrics,
    pub(crate) outcomes: Option<(
        async_channel::Sender<Outcome>,
        async_channel::Receiver<Outcome>,
    )>,
    /// Parent of every worker's job token; cancelled on abort.
    pub(crate) root: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) workers: Mutex<Workers>,
    /// Every worker's job counters, live or exited.
    pub(crate) counts: Roster<COUNTERS>,
    aborted: AtomicBool,
    /// Held while a shutdown drains the queue and reads the final counts, so concurrent
    /// shutdowns report the same numbers.
    finishing: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(cfg: Config, rt: tokio::runtime::Handle) -> Arc<Self> {
        let (tx, rx) = async_channel::bounded(cfg.capacity);
        let shared = Arc::new(Self {
            name: cfg.name.clone(),
            tx,
            rx,
            timeout: cfg.timeout,
            deadline: cfg.deadline,
            metrics: Metrics::new(&cfg.telemetry, &cfg.name, cfg.sample_every, cfg.capacity),
            telemetry: cfg.telemetry,
            outcomes: cfg.outcomes.map(async_channel::bounded),
            root: CancellationToken::new(),
            tracker: TaskTracker::new(),
            rt,
            workers: Mutex::new(Workers {
                closed: false,
                active: 0,
                next_id: 0,
                live: Vec::new(),
            }),
            counts: Roster::default(),
            aborted: AtomicBool::new(false),
            finishing: Mutex::new(()),
        });
        register_observables(&shared, &shared.telemetry, &shared.name);
        shared
    }

    /// Wraps a job for the queue: the submitter's context whenever it is worth carrying
    /// (any valid span context, sampled or not, or baggage: `Telemetry::capture`), and
    /// the time it was queued: on tokio's clock when the job is in the 1-in-N histogram
    /// sample, on the span clock when the job will get a span (its queue wait goes on
    /// it). Neither a context nor the sample: the job travels bare, with no allocation.
    #[inline]
    pub(crate) fn carry(&self, cell: Pin<Box<dyn ErasedJob>>) -> Queued {
        self.stamp(cell, self.telemetry.capture())
    }

    /// As [`carry`](Self::carry), with the context `cx` handed in by the submitter
    /// instead of the current one.
    pub(crate) fn carry_with(&self, cell: Pin<Box<dyn ErasedJob>>, cx: &Context) -> Queued {
        self.stamp(cell, self.telemetry.carried(cx))
    }

    /// The job and `cx`, stamped on the span clock exactly when the job will get a span
    /// (the worker reads that from the stamp) and on tokio's clock when it is in the
    /// sample.
    #[inline]
    fn stamp(&self, cell: Pin<Box<dyn ErasedJob>>, cx: Option<Context>) -> Queued {
        let timed = self.metrics.tick();
        let spanned = cx.as_ref().is_some_and(|c| self.telemetry.spans_under(c));
        Carried::stamped(cell, cx, timed, spanned)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub(crate) fn queued(&self) -> usize {
        self.rx.len()
    }

    /// A worker told to retire leaves the list, unless a `resize` that grew the pool
    /// took it back since; `true` if it left. Decided under the list's lock, so a
    /// worker never exits after `resize` counted it back in.
    pub(crate) fn retire(&self, slot: &Arc<WorkerSlot>) -> bool {
        let mut w = lock(&self.workers);
        if !slot.retire.load(Relaxed) {
            return false;
        }
        w.unlist(slot);
        true
    }

    /// A worker exits: it leaves the list, and its counts are folded into the totals.
    /// The last worker of a closed pool to exit (they exit only once the queue is empty,
    /// unless aborted) ends the outcomes stream: no job is left to report.
    pub(crate) fn exited(&self, slot: &Arc<WorkerSlot>) {
        let mut w = lock(&self.workers);
        // A retiring worker left the list (and the active count) when it retired.
        if w.unlist(slot) && !slot.retire.load(Relaxed) {
            w.active = w.active.saturating_sub(1);
        }
        let last = w.closed && w.live.is_empty();
        drop(w);
        self.counts.leave(&slot.counts);
        // After an abort, the shutdown ends the stream once it has reported the jobs
        // left in the queue.
        if last
            && self.rx.is_empty()
            && !self.aborted.load(Relaxed)
            && let Some((tx, _)) = &self.outcomes
        {
            tx.close();
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
            // The queued jobs end now, not once the workers are gone: the abort has
            // happened even if this call is cancelled while it waits for them.
            drop(self.drop_queued());
            self.tracker.wait().await;
        }
        // Workers exit only once the queue is empty, unless aborted: what is left never
        // started.
        let _finishing = self.drop_queued();
        if let Some((tx, _)) = &self.outcomes {
            tx.close();
        }
        let s = self.stats();
        ShutdownReport {
            completed: s.completed,
            failed: s.failed,
            cancelled: s.cancelled,
            not_started: s.not_started,
            deadline_passed: self.aborted.load(Relaxed),
        }
    }

    /// Ends every job still in the queue as never started; returns the `finishing`
    /// guard, so that concurrent shutdowns drain and read the counts one at a time.
    fn drop_queued(&self) -> std::sync::MutexGuard<'_, ()> {
        let finishing = lock(&self.finishing);
        while let Ok(queued) = self.rx.try_recv() {
            self.metrics.not_started();
            let meta = self.outcomes.as_ref().map(|_| meta_of(&*queued.value));
            self.settle(queued.value, meta, Err(JobError::NotStarted));
        }
        finishing
    }

    pub(crate) fn stats(&self) -> Stats {
        let w = lock(&self.workers);
        let busy = w
            .live
            .iter()
            .filter(|(slot, _)| slot.busy.load(Relaxed))
            .count();
        let workers = w.active;
        drop(w);
        let t = self.counts.totals();
        let mut stats = Stats {
            workers,
            busy,
            queued: self.rx.len(),
            completed: t[OK],
            failed: t[PANIC] + t[TIMEOUT],
            panicked: t[PANIC],
            timed_out: t[TIMEOUT],
            cancelled: t[CANCELLED],
            ..Stats::default()
        };
        self.metrics.fill(&mut stats);
        stats
    }

    /// The end of every job, run or not: its handle gets `result`, then the outcomes
    /// stream (when `meta` was taken for it), then the job is dropped.
    pub(crate) fn settle(
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
            self.metrics.outcome_dropped();
        }
    }
}

impl Observed for Shared {
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn stats(&self) -> Stats {
        Shared::stats(self)
    }

    fn queued(&self) -> usize {
        Shared::queued(self)
    }

    fn idle_workers(&self) -> usize {
        let w = lock(&self.workers);
        w.live
            .iter()
            .filter(|(slot, _)| !slot.busy.load(Relaxed) && !slot.retire.load(Relaxed))
            .count()
    }

    fn max_age(&self) -> f64 {
        let w = lock(&self.workers);
        let running = w
            .live
            .iter()
            .filter(|(slot, _)| slot.busy.load(Relaxed))
            .map(|(slot, _)| (slot.id, slot.counts.get(STARTED)));
        self.metrics.max_age(running)
    }
}

/// A job's name and id; a panic in the job's `name` or `id` leaves them out.
pub(crate) fn meta_of(cell: &dyn ErasedJob) -> Meta {
    std::panic::catch_unwind(AssertUnwindSafe(|| cell.meta())).unwrap_or((None, None))
}

/// Drops a job's cell; a panic in the job's destructor is caught so the worker survives.
fn drop_quietly(cell: Pin<Box<dyn ErasedJob>>) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(cell)));
}
