//! The stream of job outcomes: the seed's results channel, done so it can never stall a
//! worker.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::error::JobError;

/// How one accepted job ended.
///
/// # Examples
/// ```
/// use otelconc::pool::{JobError, Outcome};
/// fn log(o: &Outcome) {
///     if let Err(JobError::Panicked(msg)) = &o.result {
///         eprintln!("{:?} panicked: {msg}", o.name);
///     }
/// }
/// # let _ = log;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// [`Job::name`](super::Job::name), if the job has one.
    pub name: Option<Cow<'static, str>>,
    /// [`Job::id`](super::Job::id), if the job has one.
    pub id: Option<Cow<'static, str>>,
    /// `Ok` when the job completed; the output itself goes to its handle, if any.
    pub result: Result<(), JobError>,
}

/// A stream of [`Outcome`]s, from [`WorkerPool::outcomes`](super::WorkerPool::outcomes).
///
/// The buffer is bounded (the builder's `outcomes(capacity)`). A worker never waits on
/// it: when the buffer is full the outcome is dropped and counted in
/// `otelconc.pool.outcomes.dropped` and [`Stats::outcomes_dropped`](super::Stats). So when
/// nobody reads the stream, the first `capacity` outcomes stay buffered and every later
/// one is dropped and counted; workers run at full speed either way. Every clone receives
/// a share of the outcomes (each outcome goes to one reader). The stream ends once the
/// pool is done and the buffer is read: after a shutdown or an abort, or once every
/// worker has exited after [`close`](super::WorkerPool::close) (or after the last clone
/// of the pool was dropped).
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use futures::StreamExt;
/// use otelconc::pool::WorkerPool;
/// let pool = WorkerPool::builder("p").outcomes(16).build()?;
/// let mut outcomes = pool.outcomes().expect("enabled in the builder");
/// pool.submit(|| async {}).await?;
/// assert!(outcomes.next().await.unwrap().result.is_ok());
/// # pool.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Outcomes {
    // Boxed so `Outcomes` is `Unpin` (the receiver holds an event listener).
    rx: Pin<Box<async_channel::Receiver<Outcome>>>,
}

impl Clone for Outcomes {
    fn clone(&self) -> Self {
        Self {
            rx: Box::pin((*self.rx).clone()),
        }
    }
}

impl Outcomes {
    pub(crate) fn new(rx: async_channel::Receiver<Outcome>) -> Self {
        Self { rx: Box::pin(rx) }
    }

    /// Waits for the next outcome; `None` once the pool has shut down and the buffer is
    /// empty.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `recv` is used as a branch in [`tokio::select!`]
    /// and another branch completes first, it is guaranteed that no outcome was received.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").outcomes(4).build()?;
    /// let outcomes = pool.outcomes().unwrap();
    /// pool.submit(|| async {}).await?;
    /// assert!(outcomes.recv().await.is_some());
    /// pool.shutdown(std::time::Duration::from_secs(1)).await;
    /// assert!(outcomes.recv().await.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn recv(&self) -> Option<Outcome> {
        self.rx.recv().await.ok()
    }

    /// The next outcome if one is buffered.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").outcomes(4).build()?;
    /// assert!(pool.outcomes().unwrap().try_recv().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn try_recv(&self) -> Option<Outcome> {
        self.rx.try_recv().ok()
    }

    /// Outcomes buffered now.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").outcomes(4).build()?;
    /// assert_eq!(pool.outcomes().unwrap().len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no outcome is buffered.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").outcomes(4).build()?;
    /// assert!(pool.outcomes().unwrap().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcomes")
            .field("buffered", &self.rx.len())
            .finish()
    }
}

impl Stream for Outcomes {
    type Item = Outcome;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        self.rx.as_mut().poll_next(cx)
    }
}
