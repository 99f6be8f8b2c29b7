//! What a pool runs: the [`Job`] trait, [`Named`] jobs, jobs that take the pool's
//! cancellation token ([`with_token`]), and the type-erased cell a queued job travels in.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::error::JobError;

/// A unit of work a [`WorkerPool`](super::WorkerPool) runs.
///
/// Every `FnOnce() -> impl Future` closure is a job: `pool.submit(|| async { .. })`. The
/// closure is called when a worker starts the job, not at submit, so nothing the job
/// does (a timer, a request) begins while it waits in the queue. A job that needs the
/// pool's [`CancellationToken`] is a closure taking it, wrapped in [`with_token`]:
/// `pool.submit(with_token(|token| async move { .. }))`. Implement the trait yourself
/// (`run` may be an `async fn`), or wrap a job in [`Named`], when the job should carry a
/// name and an id. Both go on the job's span only, never on metrics.
///
/// (A closure cannot be a job both with and without a token argument: Rust would see two
/// overlapping implementations, hence the [`with_token`] wrapper for the rarer kind.)
///
/// The token passed to [`Job::run`] fires when the job times out, when the pool aborts,
/// or when a shutdown deadline passes. The pool drops the job's future at that moment
/// anyway; the token is for work the job handed elsewhere (spawned tasks, blocking
/// threads) so it can stop too. Do not keep the token past the end of the job: a worker
/// reuses one token for its consecutive jobs until one of them times out, so a kept token
/// can fire for a later job's timeout.
///
/// # Examples
/// ```
/// use std::borrow::Cow;
/// use otelconc::pool::{CancellationToken, Job};
///
/// struct Resize { image: u64 }
///
/// impl Job for Resize {
///     type Output = u64;
///     async fn run(self, _token: CancellationToken) -> u64 {
///         self.image * 2
///     }
///     fn name(&self) -> Option<Cow<'static, str>> { Some("resize".into()) }
///     fn id(&self) -> Option<Cow<'static, str>> { Some(self.image.to_string().into()) }
/// }
/// # let rt = tokio::runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let pool = otelconc::pool::WorkerPool::builder("images").build()?;
/// let handle = pool.submit_handle(Resize { image: 21 }).await.map_err(|_| "closed")?;
/// assert_eq!(handle.await?, 42);
/// # pool.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait Job: Send + 'static {
    /// What the job produces.
    type Output: Send + 'static;

    /// Starts the job. `token` fires on timeout, abort or a passed shutdown deadline.
    fn run(self, token: CancellationToken) -> impl Future<Output = Self::Output> + Send + 'static;

    /// The job's name, put on its span (attribute `otelconc.pool.job.name`).
    ///
    /// Called only when the name is used: for a span, or for the outcomes stream.
    fn name(&self) -> Option<Cow<'static, str>> {
        None
    }

    /// The job's id, put on its span (attribute `otelconc.pool.job.id`), never on metrics.
    fn id(&self) -> Option<Cow<'static, str>> {
        None
    }
}

impl<F, Fut> Job for F
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn run(self, _token: CancellationToken) -> impl Future<Output = Fut::Output> + Send + 'static {
        self()
    }
}

/// Makes a job of a closure that takes the pool's [`CancellationToken`].
///
/// The token fires when the job times out, when the pool aborts, or when a shutdown
/// deadline passes (see [`Job`]). The pool drops the job's future then anyway; the token
/// is for work the job hands elsewhere, such as a spawned task or a blocking thread.
/// Jobs that do not hand work elsewhere do not need it: submit `|| async { .. }`.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use otelconc::pool::{JobError, WorkerPool, with_token};
///
/// let pool = WorkerPool::builder("p").job_timeout(Duration::from_millis(10)).build()?;
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let h = pool
///     .submit_handle(with_token(|token| async move {
///         // Work handed to another task stops when the token fires.
///         tokio::spawn(async move { token.cancelled().await; tx.send("stopped") });
///         std::future::pending::<()>().await
///     }))
///     .await?;
/// assert_eq!(h.await, Err(JobError::TimedOut));
/// assert_eq!(rx.await?, "stopped");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub fn with_token<F, Fut>(job: F) -> WithToken<F>
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    WithToken(job)
}

/// A job that takes the pool's [`CancellationToken`]; from [`with_token`].
///
/// # Examples
/// ```
/// use otelconc::pool::{Named, with_token};
/// let job = Named::new("crawl", with_token(|token| async move { token.is_cancelled() }));
/// # let _ = job;
/// ```
#[must_use = "a job does nothing until it is submitted to a pool"]
pub struct WithToken<F>(F);

impl<F> fmt::Debug for WithToken<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WithToken(..)")
    }
}

impl<F, Fut> Job for WithToken<F>
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn run(self, token: CancellationToken) -> impl Future<Output = Fut::Output> + Send + 'static {
        (self.0)(token)
    }
}

/// A job with a name and, optionally, an id.
///
/// # Examples
/// ```
/// use otelconc::pool::{Job, Named};
/// let job = Named::new("send-email", || async { 1 }).with_id("42");
/// assert_eq!(job.name().as_deref(), Some("send-email"));
/// assert_eq!(job.id().as_deref(), Some("42"));
/// ```
#[must_use = "a job does nothing until it is submitted to a pool"]
pub struct Named<J> {
    name: Cow<'static, str>,
    id: Option<Cow<'static, str>>,
    job: J,
}

impl<J> fmt::Debug for Named<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<J: Job> Named<J> {
    /// Wraps `job` with a name.
    ///
    /// # Examples
    /// ```
    /// use otelconc::pool::{Job, Named};
    /// let job = Named::new("reindex", || async {});
    /// assert_eq!(job.name().as_deref(), Some("reindex"));
    /// ```
    pub fn new(name: impl Into<Cow<'static, str>>, job: J) -> Self {
        Self {
            name: name.into(),
            id: None,
            job,
        }
    }

    /// Adds an id (span attribute only).
    ///
    /// # Examples
    /// ```
    /// use otelconc::pool::{Job, Named};
    /// let job = Named::new("reindex", || async {}).with_id(7.to_string());
    /// assert_eq!(job.id().as_deref(), Some("7"));
    /// ```
    pub fn with_id(mut self, id: impl Into<Cow<'static, str>>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The wrapped job.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use otelconc::pool::Named;
    /// let job = Named::new("reindex", || async { 5 });
    /// assert_eq!(job.into_inner()().await, 5);
    /// # });
    /// ```
    pub fn into_inner(self) -> J {
        self.job
    }
}

impl<J: Job> Job for Named<J> {
    type Output = J::Output;

    fn run(self, token: CancellationToken) -> impl Future<Output = J::Output> + Send + 'static {
        self.job.run(token)
    }

    fn name(&self) -> Option<Cow<'static, str>> {
        Some(self.name.clone())
    }

    fn id(&self) -> Option<Cow<'static, str>> {
        self.id.clone()
    }
}

/// Where a job's output goes.
pub(crate) trait Reply<T>: Send + 'static {
    fn send(self, result: Result<T, JobError>);
}

/// Fire-and-forget: the output is dropped, failures show in metrics and outcomes.
impl<T> Reply<T> for () {
    #[inline]
    fn send(self, _result: Result<T, JobError>) {}
}

impl<T: Send + 'static> Reply<T> for oneshot::Sender<Result<T, JobError>> {
    #[inline]
    fn send(self, result: Result<T, JobError>) {
        // The handle may have been dropped: nobody wants the output then.
        let _ = oneshot::Sender::send(self, result);
    }
}

/// A job's name and id.
pub(crate) type Meta = (Option<Cow<'static, str>>, Option<Cow<'static, str>>);

/// A queued job with its type erased, in one allocation.
pub(crate) trait ErasedJob: Send {
    /// Starts the job on the first call, then polls it; `Ready` once the output is
    /// stored (it is delivered by [`ErasedJob::deliver`]).
    fn poll_run(self: Pin<&mut Self>, token: &CancellationToken, cx: &mut Context<'_>) -> Poll<()>;
    /// Delivers the stored output on `Ok`, or the error instead; only the first call
    /// has an effect.
    fn deliver(self: Pin<&mut Self>, result: Result<(), JobError>);
    /// The job's name and id, while it has not started.
    fn meta(&self) -> Meta;
    /// The job itself, for handing back on a refused submit (boxed `J`).
    fn into_job(self: Pin<Box<Self>>) -> Box<dyn Any + Send>;
}

pin_project! {
    /// The job, then its future, plus where its output goes.
    pub(crate) struct Cell<J, S, F, T, R> {
        job: Option<J>,
        start: S,
        #[pin]
        fut: Option<F>,
        out: Option<T>,
        reply: Option<R>,
    }
}

impl<J, S, F, R> Cell<J, S, F, J::Output, R>
where
    J: Job,
    S: Fn(J, CancellationToken) -> F + Send + 'static,
    F: Future<Output = J::Output> + Send + 'static,
    R: Reply<J::Output>,
{
    fn boxed(job: J, start: S, reply: R) -> Pin<Box<dyn ErasedJob>> {
        Box::pin(Self {
            job: Some(job),
            start,
            fut: None,
            out: None,
            reply: Some(reply),
        })
    }
}

/// Erases `job`, whose output goes to `reply`.
pub(crate) fn erase<J: Job, R: Reply<J::Output>>(job: J, reply: R) -> Pin<Box<dyn ErasedJob>> {
    Cell::boxed(job, |j: J, t| j.run(t), reply)
}

impl<J, S, F, R> ErasedJob for Cell<J, S, F, J::Output, R>
where
    J: Job,
    S: Fn(J, CancellationToken) -> F + Send + 'static,
    F: Future<Output = J::Output> + Send + 'static,
    R: Reply<J::Output>,
{
    fn poll_run(self: Pin<&mut Self>, token: &CancellationToken, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Some(job) = this.job.take() {
            this.fut.set(Some((this.start)(job, token.clone())));
        }
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        match fut.poll(cx) {
            Poll::Ready(out) => {
                this.fut.set(None);
                *this.out = Some(out);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn deliver(self: Pin<&mut Self>, result: Result<(), JobError>) {
        let this = self.project();
        let Some(r) = this.reply.take() else { return };
        match (result, this.out.take()) {
            (Ok(()), Some(out)) => r.send(Ok(out)),
            (Err(e), _) => r.send(Err(e)),
            // Ok without an output cannot happen: the worker says Ok only after
            // `poll_run` was Ready. Report it as a cancellation rather than panic.
            (Ok(()), None) => r.send(Err(JobError::Cancelled)),
        }
    }

    fn meta(&self) -> Meta {
        match &self.job {
            Some(j) => (j.name(), j.id()),
            None => (None, None),
        }
    }

    fn into_job(self: Pin<Box<Self>>) -> Box<dyn Any + Send> {
        let mut this = self;
        Box::new(this.as_mut().project().job.take())
    }
}

/// Gets the `J` back out of [`ErasedJob::into_job`].
pub(crate) fn recover<J: Job>(cell: Pin<Box<dyn ErasedJob>>) -> Option<J> {
    cell.into_job()
        .downcast::<Option<J>>()
        .ok()
        .and_then(|b| *b)
}
