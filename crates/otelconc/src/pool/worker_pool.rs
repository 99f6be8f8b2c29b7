//! [`WorkerPool`]: the handle users submit to and shut down.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use tokio::sync::oneshot;

use super::error::{ResizeError, SubmitError, TrySubmitError};
use super::handle::JobHandle;
use super::job::{Job, erase, recover};
use super::outcome::Outcomes;
use super::state::{Queued, Shared};
use super::stats::{ShutdownReport, Stats};

/// A fixed set of workers running [`Job`]s from a bounded queue, with telemetry built in.
///
/// Cloning is cheap and every clone drives the same pool. When the last clone is dropped
/// the pool closes (as [`WorkerPool::close`]): queued jobs still run, then the workers
/// exit. Call [`WorkerPool::shutdown`] to wait for that and get a report.
///
/// See the [module docs](super) for costs and telemetry.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use otelconc::pool::WorkerPool;
///
/// let pool = WorkerPool::builder("emails").workers(2).build()?;
/// let handle = pool.submit_handle(|| async { "sent" }).await?;
/// assert_eq!(handle.await?, "sent");
/// let report = pool.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report.completed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Owner>,
}

/// Closes the pool when the last user handle goes (workers hold `Shared`, not this).
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.inner.shared.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl WorkerPool {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self {
            inner: Arc::new(Owner { shared }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Queues `job`, waiting for space while the queue is full. Its output is dropped;
    /// how it ended shows in [`WorkerPool::stats`], the metrics and, if enabled,
    /// [`WorkerPool::outcomes`].
    ///
    /// Costs one allocation (the job) plus the queue operation. When the submitter's
    /// context holds a valid span context (sampled or not) or baggage, the job carries
    /// it (one more small allocation) and runs inside it; inside a sampled trace the
    /// job's span is a child of the submitter's span, linked to it.
    ///
    /// A job that submits to its own pool waits like any submitter: when every worker
    /// does that while the queue is full, nothing drains the queue until the per-job
    /// timeout ends those jobs (`TimedOut`) or a shutdown deadline cancels them. Jobs
    /// that enqueue follow-up work should use [`WorkerPool::try_submit`] and handle
    /// `Full`.
    ///
    /// # Errors
    /// [`SubmitError`] with the job when the pool is closed (also while waiting).
    ///
    /// # Cancel safety
    /// If `submit` is used as a branch in [`tokio::select!`] and another branch completes
    /// first, then it is guaranteed that the job was not queued. **However, in that case,
    /// the job is dropped and will be lost.**
    ///
    /// To avoid losing jobs, use [`WorkerPool::try_submit`], which hands the job back
    /// when the queue is full, and retry it later.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// pool.submit(|| async { println!("hello from a worker") }).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn submit<J: Job>(&self, job: J) -> Result<(), SubmitError<J>> {
        let s = self.shared();
        let queued = s.carry(erase(job, ()));
        self.send(queued).await.map_err(SubmitError)
    }

    /// As [`submit`](Self::submit), with the job carrying `cx` (an extracted remote
    /// context, say: see [`telemetry::extract`](crate::telemetry::extract)) instead of
    /// the current context. The job sees it exactly as it would see a local
    /// submitter's context: it runs inside it when it holds a valid span context
    /// (sampled or not) or baggage, and its span is a child of it when it is sampled.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    ///
    /// # Cancel safety
    /// If `submit_with_context` is used as a branch in [`tokio::select!`] and another
    /// branch completes first, then it is guaranteed that the job was not queued.
    /// **However, in that case, the job is dropped and will be lost.**
    ///
    /// To avoid losing jobs, use [`WorkerPool::try_submit_with_context`], which hands
    /// the job back when the queue is full, and retry it later.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::collections::HashMap;
    /// // Headers of a message from another process (here with no trace in them).
    /// let headers: HashMap<String, String> = HashMap::new();
    /// let cx = otelconc::telemetry::extract(&headers);
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// pool.submit_with_context(|| async {}, &cx).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn submit_with_context<J: Job>(
        &self,
        job: J,
        cx: &Context,
    ) -> Result<(), SubmitError<J>> {
        let queued = self.shared().carry_with(erase(job, ()), cx);
        self.send(queued).await.map_err(SubmitError)
    }

    /// Queues `job` and returns a handle that resolves to its output or its
    /// [`JobError`](super::JobError). Waits for space while the queue is full.
    ///
    /// Costs what [`WorkerPool::submit`] costs plus a oneshot channel.
    ///
    /// # Errors
    /// [`SubmitError`] with the job when the pool is closed.
    ///
    /// # Cancel safety
    /// If `submit_handle` is used as a branch in [`tokio::select!`] and another branch completes
    /// first, then it is guaranteed that the job was not queued. **However, in that case,
    /// the job is dropped and will be lost.**
    ///
    /// To avoid losing jobs, use [`WorkerPool::try_submit_handle`], which hands the job back
    /// when the queue is full, and retry it later.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// let h = pool.submit_handle(|| async { 2 + 2 }).await?;
    /// assert_eq!(h.await?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn submit_handle<J: Job>(
        &self,
        job: J,
    ) -> Result<JobHandle<J::Output>, SubmitError<J>> {
        let (tx, rx) = oneshot::channel();
        let queued = self.shared().carry(erase(job, tx));
        self.send(queued).await.map_err(SubmitError)?;
        Ok(JobHandle::new(rx))
    }

    async fn send<J: Job>(&self, queued: Queued) -> Result<(), J> {
        let s = self.shared();
        match s.tx.send(queued).await {
            Ok(()) => {
                s.metrics.accepted();
                Ok(())
            }
            Err(e) => {
                s.metrics.refused(false);
                Err(recovered(e.0))
            }
        }
    }

    /// Queues `job` if there is space now.
    ///
    /// # Errors
    /// [`TrySubmitError::Full`] or [`TrySubmitError::Closed`], each with the job.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use otelconc::pool::{TrySubmitError, WorkerPool};
    /// let pool = WorkerPool::builder("p").build()?;
    /// match pool.try_submit(|| async {}) {
    ///     Ok(()) => {}
    ///     Err(TrySubmitError::Full(_job)) => { /* shed load, or retry later */ }
    ///     Err(TrySubmitError::Closed(_job)) => { /* shutting down */ }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn try_submit<J: Job>(&self, job: J) -> Result<(), TrySubmitError<J>> {
        let queued = self.shared().carry(erase(job, ()));
        self.try_send(queued)
    }

    /// As [`try_submit`](Self::try_submit), with the job carrying `cx` instead of the
    /// current context (see [`submit_with_context`](Self::submit_with_context)).
    ///
    /// # Errors
    /// As [`try_submit`](Self::try_submit).
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use opentelemetry::Context;
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// pool.try_submit_with_context(|| async {}, &Context::new())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn try_submit_with_context<J: Job>(
        &self,
        job: J,
        cx: &Context,
    ) -> Result<(), TrySubmitError<J>> {
        let queued = self.shared().carry_with(erase(job, ()), cx);
        self.try_send(queued)
    }

    /// Queues `job` if there is space now, and returns a handle to its output.
    ///
    /// # Errors
    /// [`TrySubmitError::Full`] or [`TrySubmitError::Closed`], each with the job.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// let h = pool.try_submit_handle(|| async { 1 })?;
    /// assert_eq!(h.await?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn try_submit_handle<J: Job>(
        &self,
        job: J,
    ) -> Result<JobHandle<J::Output>, TrySubmitError<J>> {
        let (tx, rx) = oneshot::channel();
        let queued = self.shared().carry(erase(job, tx));
        self.try_send(queued)?;
        Ok(JobHandle::new(rx))
    }

    fn try_send<J: Job>(&self, queued: Queued) -> Result<(), TrySubmitError<J>> {
        let s = self.shared();
        match s.tx.try_send(queued) {
            Ok(()) => {
                s.metrics.accepted();
                Ok(())
            }
            Err(async_channel::TrySendError::Full(e)) => {
                s.metrics.refused(true);
                Err(TrySubmitError::Full(recovered(e)))
            }
            Err(async_channel::TrySendError::Closed(e)) => {
                s.metrics.refused(false);
                Err(TrySubmitError::Closed(recovered(e)))
            }
        }
    }

    /// The outcomes stream, when enabled with the builder's `outcomes(capacity)`.
    ///
    /// See [`Outcomes`] for what happens when nobody reads it.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// assert!(pool.outcomes().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn outcomes(&self) -> Option<Outcomes> {
        self.shared()
            .outcomes
            .as_ref()
            .map(|(_, rx)| Outcomes::new(rx.clone()))
    }

    /// A snapshot of the pool's counts.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").workers(2).build()?;
    /// assert_eq!(pool.stats().workers, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// The pool's name.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// assert_eq!(pool.name(), "p");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// Sets the number of workers. Growing starts workers at once; shrinking lets the
    /// surplus workers finish the job they are running and exit without taking another.
    /// Growing again before they have exited keeps them instead of starting new ones, so
    /// no more than the new number of jobs run at once. No job is lost or run twice:
    /// jobs stay in the queue until exactly one worker takes them.
    ///
    /// # Errors
    /// [`ResizeError::ZeroWorkers`] for 0, [`ResizeError::Closed`] after
    /// [`WorkerPool::close`] (or a shutdown).
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").workers(2).build()?;
    /// pool.resize(6)?;
    /// assert_eq!(pool.stats().workers, 6);
    /// pool.resize(1)?;
    /// assert_eq!(pool.stats().workers, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), ResizeError> {
        let s = self.shared();
        if workers == 0 {
            return Err(ResizeError::ZeroWorkers {
                pool: s.name.to_string(),
            });
        }
        if s.resize(workers) {
            Ok(())
        } else {
            Err(ResizeError::Closed {
                pool: s.name.to_string(),
            })
        }
    }

    /// Stops intake: every later submit fails with a `Closed` error (never a panic).
    /// Queued jobs still run. Returns `true` if this call closed the pool.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// assert!(pool.close());
    /// assert!(!pool.close());
    /// assert!(pool.submit(|| async {}).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn close(&self) -> bool {
        self.shared().close()
    }

    /// Whether the pool is closed.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// assert!(!pool.is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared().is_closed()
    }

    /// Jobs waiting in the queue now.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// assert_eq!(pool.queued(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn queued(&self) -> usize {
        self.shared().queued()
    }

    /// Closes the pool, lets the workers drain the queue until `deadline`, then cancels
    /// what still runs (token fired, future dropped: `Cancelled`) and drops what never
    /// started (`NotStarted`). Returns when every worker task has exited.
    ///
    /// Idempotent and safe to call concurrently with submits and with itself: every call
    /// returns once the pool is down, with the same final counts. A job that blocks its
    /// thread without awaiting cannot be dropped until it returns, so such a job can hold
    /// this past `deadline`. Called from inside one of the pool's own jobs, it waits for
    /// that job too, so the deadline passes and that job ends up cancelled.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `shutdown` is used as a branch in
    /// [`tokio::select!`] and another branch completes first, the pool stays closed and
    /// draining, and no job's outcome is lost; call it again (or [`WorkerPool::abort`]) to
    /// wait for the end and get the report.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// for _ in 0..10 {
    ///     pool.submit(|| async {}).await?;
    /// }
    /// let report = pool.shutdown(Duration::from_secs(5)).await;
    /// assert_eq!(report.accepted(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.shared().shutdown(deadline).await
    }

    /// [`WorkerPool::shutdown`] with the builder's `shutdown_deadline` (default 30 s).
    ///
    /// # Cancel safety
    /// This method is cancel safe, as [`WorkerPool::shutdown`].
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// let report = pool.graceful_shutdown().await;
    /// assert_eq!(report.accepted(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn graceful_shutdown(&self) -> ShutdownReport {
        let deadline = self.shared().deadline;
        self.shared().shutdown(deadline).await
    }

    /// Stops at once: closes the pool, cancels running jobs, drops queued ones, and
    /// returns when every worker task has exited (as `shutdown(Duration::ZERO)`).
    ///
    /// # Cancel safety
    /// This method is cancel safe, as [`WorkerPool::shutdown`]. The abort itself has
    /// happened once this is first polled: running jobs are cancelled and queued ones
    /// have ended with [`JobError::NotStarted`](super::JobError::NotStarted), also when
    /// the call is dropped before it returns.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
    /// let report = pool.abort().await;
    /// assert!(pool.is_closed());
    /// # let _ = report;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn abort(&self) -> ShutdownReport {
        self.shared().shutdown(Duration::ZERO).await
    }
}

/// The job back out of a refused submit. It never started, so it is always there.
fn recovered<J: Job>(queued: Queued) -> J {
    match recover::<J>(queued.value) {
        Some(job) => job,
        // A refused job was never polled; it is always present.
        None => unreachable!("a refused job is handed back before it starts"),
    }
}
