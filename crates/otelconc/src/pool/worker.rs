//! The workers: starting and retiring them ([`Shared::start`], [`Shared::resize`]), the
//! worker loop, and running one job under its span, timeout and panic guard.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;

use opentelemetry::KeyValue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::JobError;
use super::job::{ErasedJob, Meta};
use super::metrics::{CANCELLED, OK, PANIC, STARTED, TIMEOUT};
use super::state::{Queued, Shared, WorkerSlot, Workers, meta_of};
use crate::telemetry::names::ATTR_QUEUE_WAIT;
use crate::telemetry::names::pool as names;
use crate::telemetry::{Carried, End, EndingSpan, Guarded, span_start};
use crate::util::busy::Shift;
use crate::util::sync::lock;

impl Shared {
    /// Starts `n` more workers. Call with the workers lock held.
    fn spawn_workers(self: &Arc<Self>, w: &mut Workers, n: usize) {
        for _ in 0..n {
            let slot = Arc::new(WorkerSlot::new(w.next_id, &self.name, self.counts.join()));
            w.next_id += 1;
            let task = self
                .tracker
                .spawn_on(worker(self.clone(), slot.clone()), &self.rt);
            w.live.push((slot, task.abort_handle()));
            w.active += 1;
        }
    }

    /// Starts the first `n` workers.
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
            let mut more = n - w.active;
            // Workers told to retire by an earlier shrink that have not exited yet (they
            // finish their job, or have not run since) stay instead: new ones on top of
            // them would run more jobs at once than `n`.
            let mut kept = 0;
            for (slot, _) in &w.live {
                if kept == more {
                    break;
                }
                if slot.retire.swap(false, Relaxed) {
                    kept += 1;
                }
            }
            w.active += kept;
            more -= kept;
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
}

/// One worker: takes jobs until the queue is closed and empty, or it is told to retire.
///
/// Its busy time runs from taking a job until it finds the queue empty (see
/// [`util::busy`](crate::util::busy)): the clock is read when it parks and when it
/// takes the next job after parking, never while it drains a non-empty queue.
async fn worker(shared: Arc<Shared>, slot: Arc<WorkerSlot>) {
    // Dropped when the worker ends, or with its task when it is aborted.
    let shift = Shift::begin(&shared.metrics.busy, shared.metrics.observed.load(Relaxed));
    let mut token = shared.root.child_token();
    loop {
        if slot.retire.load(Relaxed) && shared.retire(&slot) {
            break;
        }
        let queued = match shared.rx.try_recv() {
            Ok(queued) => queued,
            Err(async_channel::TryRecvError::Closed) => break,
            Err(async_channel::TryRecvError::Empty) => {
                shift.idle();
                let wake = slot.wake.notified();
                // The retire wake first: a worker told to retire while parked must not
                // take a job queued before it ran again (`resize` says it exits without
                // taking another).
                tokio::select! {
                    biased;
                    () = wake => continue,
                    r = shared.rx.recv() => match r {
                        Ok(queued) => queued,
                        Err(_) => break,
                    },
                }
            }
        };
        shift.busy();
        run_job(&shared, &slot, &mut token, queued).await;
        // Jobs that never wait would otherwise keep this worker from yielding.
        tokio::task::consume_budget().await;
    }
    drop(shift);
    shared.exited(&slot);
}

/// Runs one job: under its span when the submitter's trace is sampled, else under the
/// submitter's carried context (if any); with its timeout and panics caught.
async fn run_job(
    shared: &Shared,
    slot: &WorkerSlot,
    token: &mut CancellationToken,
    queued: Queued,
) {
    let Carried { value: cell, trace } = queued;
    let (carried, enqueued, sent, timed) = match trace {
        Some(t) => (t.cx, t.enqueued, t.sent, t.timed),
        None => (None, None, None, false),
    };
    slot.busy.store(true, Relaxed);
    slot.counts.add(STARTED, 1);
    // Whether this job gets a span: a worker runs outside any span, so by the consumer
    // rule only a sampled submitter's context can be its parent, and the submit stamped
    // the job on the span clock exactly then (`Shared::stamp`). Its attributes (and the
    // clock read for its start and queue wait) are built only then.
    let spanned = sent.is_some();
    // Jobs in the sample: their times go to the histograms, on tokio's clock. Traced
    // jobs outside it skip the histograms: their span has the times.
    let times = enqueued.filter(|_| timed).map(|q| (q, Instant::now()));
    let meta = (spanned || shared.outcomes.is_some()).then(|| meta_of(&*cell));
    let span = match (&carried, &meta) {
        (Some(producer), Some(m)) if spanned => {
            // One clock read: the span's start, and the end of the job's queue wait.
            let (start, waited) = span_start(sent);
            shared
                .telemetry
                .consumer_span_at(&names::JOB_SPAN, Some(producer), Some(start), || {
                    job_attributes(slot, m, waited)
                })
        }
        // No span outside a sampled submitter's trace: the job runs under the
        // context it carried, and no ambient context is looked up per job.
        _ => None,
    };
    // A timed job in a trace records its times under its context (exemplars).
    let cx = times.and_then(|_| span.clone().or_else(|| carried.clone()));
    let mut job = InFlight {
        shared,
        slot,
        cell: Some(cell),
        meta,
        times,
        cx,
    };
    let result = {
        let Some(cell) = job.cell.as_mut() else {
            return;
        };
        // Declared after `job`, so an abort drops it first: its span then ends as
        // cancelled before `job` counts the job cancelled.
        let mut run = pin!(Guarded::new(
            Run {
                cell: cell.as_mut(),
                token,
            },
            EndingSpan::new(span, carried.as_ref()),
        ));
        let caught = match shared.timeout {
            None => Ok(run.as_mut().await),
            Some(limit) => tokio::time::timeout(limit, run.as_mut()).await,
        };
        let (result, end) = match caught {
            Ok(Ok(())) => (Ok(()), End::Ok),
            Ok(Err(message)) => {
                let end = End::panic(message.clone());
                (Err(JobError::Panicked(message)), end)
            }
            Err(_elapsed) => (
                Err(JobError::TimedOut),
                End::Failed("timeout", "job timed out".into()),
            ),
        };
        run.as_mut().span().finish(end);
        result
    };
    if matches!(result, Err(JobError::TimedOut)) {
        // The job's token fires; later jobs on this worker get a fresh one.
        token.cancel();
        *token = shared.root.child_token();
    }
    job.finish(result);
}

/// The attributes of a job's `otelconc.pool.job` span.
fn job_attributes(slot: &WorkerSlot, meta: &Meta, wait: Option<Duration>) -> Vec<KeyValue> {
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
    attrs
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
/// once and tells its handle. (Its span is ended by the [`Guarded`] running it.)
struct InFlight<'a> {
    shared: &'a Shared,
    slot: &'a WorkerSlot,
    cell: Option<Pin<Box<dyn ErasedJob>>>,
    meta: Option<Meta>,
    /// (queued at, started at) for timed jobs.
    times: Option<(Instant, Instant)>,
    /// The job's context for its timed records: its span's, else the submitter's.
    cx: Option<opentelemetry::Context>,
}

impl InFlight<'_> {
    fn finish(&mut self, result: Result<(), JobError>) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        let idx = match &result {
            Ok(()) => OK,
            Err(JobError::Panicked(_)) => PANIC,
            Err(JobError::TimedOut) => TIMEOUT,
            Err(_) => CANCELLED,
        };
        self.slot.counts.add(idx, 1);
        if let Some((queued, started)) = self.times {
            self.shared
                .metrics
                .record_times(idx, queued, started, self.cx.take());
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
