//! The workers: starting and retiring them ([`Shared::start`], [`Shared::resize`]), the
//! worker loop, and running one job under its span, timeout and panic guard.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::Poll;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::JobError;
use super::job::{ErasedJob, Meta};
use super::metrics::{CANCELLED, OK, PANICKED, TIMED_OUT};
use super::state::{Envelope, Shared, WorkerSlot, Workers, meta_of};
use crate::telemetry::names::ATTR_QUEUE_WAIT;
use crate::telemetry::names::pool as names;
use crate::telemetry::{EndingSpan, Guarded, record_error};
use crate::util::sync::lock;

impl Shared {
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
}

/// Adds one to a counter only its worker writes (no read-modify-write needed).
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
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
        (Some(p), Some(m)) => Some(start_span(shared, slot, p, m, started.map(|(q, s)| s - q))),
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
            EndingSpan::new(None, job.cx.as_ref()),
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

/// Starts a job's `otelconc.pool.job` span, child of the submitter's context.
fn start_span(
    shared: &Shared,
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
    shared.telemetry.start_span(&names::JOB_SPAN, parent, attrs)
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
            self.shared.metrics.record_times(idx, queued, started);
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
