//! [`JobHandle`]: awaits one job's output.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::error::JobError;

/// Resolves to the output of a job submitted with
/// [`WorkerPool::submit_handle`](super::WorkerPool::submit_handle).
///
/// Dropping the handle does not cancel the job; its output is then dropped. Costs one
/// allocation per job (a oneshot channel); use [`WorkerPool::submit`](super::WorkerPool::submit)
/// and the outcomes stream when you do not need each output.
///
/// # Cancel safety
/// The `&mut JobHandle<T>` type is cancel safe. If it is used as the event in a
/// [`tokio::select!`] statement and some other branch completes first, then it is
/// guaranteed that the output of the job is not lost: await the handle again to get it.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use otelconc::pool::WorkerPool;
/// let pool = WorkerPool::builder("calc").build()?;
/// let handle = pool.submit_handle(|| async { 6 * 7 }).await.map_err(|_| "closed")?;
/// assert_eq!(handle.await?, 42);
/// # pool.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[must_use = "a handle does nothing unless awaited; drop it to ignore the output"]
pub struct JobHandle<T> {
    rx: oneshot::Receiver<Result<T, JobError>>,
}

impl<T> JobHandle<T> {
    pub(crate) fn new(rx: oneshot::Receiver<Result<T, JobError>>) -> Self {
        Self { rx }
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobHandle")
    }
}

impl<T> Future for JobHandle<T> {
    type Output = Result<T, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(result) => result,
            // The job was dropped without a word: the runtime shut down under the pool.
            Err(_) => Err(JobError::Cancelled),
        })
    }
}
