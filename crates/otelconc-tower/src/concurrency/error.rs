//! [`ConcurrencyLimited`]: the refusal of a [`ConcurrencyLimit`](super::ConcurrencyLimit)
//! service.

use std::fmt;
use std::time::Duration;

/// The concurrency limit refused the request: in shed mode no permit was free, in a
/// bounded wait none came within the maximum wait. The inner service was not called.
///
/// It reaches the caller boxed, as tower's errors do ([`BoxError`](crate::BoxError));
/// `downcast_ref::<ConcurrencyLimited>()` finds it. With the `axum` feature it converts
/// to `503 Service Unavailable`, with a `Retry-After` header when the layer was given a
/// hint ([`ConcurrencyLimitLayer::retry_after`](super::ConcurrencyLimitLayer::retry_after)).
/// A semaphore cannot know when a permit will be free, so without a hint there is none.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use otelconc::semaphore::Semaphore;
/// use otelconc_tower::concurrency::{ConcurrencyLimitLayer, ConcurrencyLimited};
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), otelconc_tower::BoxError> {
/// let sem = Semaphore::new("db", 1)?;
/// let _busy = sem.try_acquire()?; // the only permit is in use
/// let mut svc = ServiceBuilder::new()
///     .layer(ConcurrencyLimitLayer::new(sem.clone()).shed().retry_after(Duration::from_secs(2)))
///     .service_fn(|()| async { Ok::<_, std::convert::Infallible>("ok") });
/// let err = svc.ready().await?.call(()).await.unwrap_err();
/// let refused = err.downcast_ref::<ConcurrencyLimited>().expect("a refusal");
/// assert_eq!(refused.retry_after(), Some(Duration::from_secs(2)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyLimited {
    retry_after: Option<Duration>,
}

impl ConcurrencyLimited {
    pub(crate) fn new(retry_after: Option<Duration>) -> Self {
        Self { retry_after }
    }

    /// The hint the layer was configured with, if any.
    ///
    /// # Examples
    /// See [`ConcurrencyLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for ConcurrencyLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("concurrency limit reached: no permit free")?;
        if let Some(d) = self.retry_after {
            write!(f, "; retry after {:.3} s", d.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConcurrencyLimited {}
