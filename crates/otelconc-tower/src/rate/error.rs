//! [`RateLimited`]: the refusal of a [`RateLimit`](super::RateLimit) service.

use std::fmt;
use std::time::Duration;

/// The rate limit refused the request: in shed mode the bucket was empty, in a bounded
/// wait the token would have come later than the maximum wait. The inner service was not
/// called.
///
/// It reaches the caller boxed, as tower's errors do ([`BoxError`](crate::BoxError));
/// `downcast_ref::<RateLimited>()` finds it. With the `axum` feature it converts to
/// `429 Too Many Requests` with a `Retry-After` header.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use otelconc::rate::{Clock, Rate, RateLimiter};
/// use otelconc_tower::rate::{RateLimitLayer, RateLimited};
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), otelconc_tower::BoxError> {
/// let limiter = RateLimiter::builder("api", Rate::per_second(4).burst(1)?)
///     .clock(Clock::tokio())
///     .build();
/// let mut svc = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter).shed())
///     .service_fn(|()| async { Ok::<_, std::convert::Infallible>("ok") });
/// svc.ready().await?.call(()).await?; // the burst
/// let err = svc.ready().await?.call(()).await.unwrap_err();
/// let refused = err.downcast_ref::<RateLimited>().expect("a refusal");
/// assert_eq!(refused.retry_after(), Duration::from_millis(250));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self { retry_after }
    }

    /// How long until the limiter would have had a token for this request, at the rate
    /// in force when it was refused (what an HTTP `Retry-After` says, rounded up to
    /// whole seconds there).
    ///
    /// # Examples
    /// See [`RateLimited`].
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: retry after {:.3} s",
            self.retry_after.as_secs_f64()
        )
    }
}

impl std::error::Error for RateLimited {}
