//! [`RateLimitLayer`]: how a [`RateLimit`] is configured.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use otelconc::rate::RateLimiter;
use tower_layer::Layer;

use super::service::RateLimit;

/// What a rate-limited service does when the bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `poll_ready` waits for the token; with `Some(max)`, a request whose token would
    /// come later than `max` is refused at once instead.
    Wait(Option<Duration>),
    /// `call` refuses at once.
    Shed,
}

/// Applies an [`otelconc::rate::RateLimiter`] to every request of the wrapped service.
///
/// Every service this layer makes, and every clone of one, shares the limiter: the rate
/// is for all of them together. Each request takes one token. Three modes:
///
/// | | what happens when the bucket is empty |
/// |---|---|
/// | [`RateLimitLayer::new`] | `poll_ready` waits for the token, as long as it takes |
/// | [`.max_wait(d)`](RateLimitLayer::max_wait) | the same when the token comes within `d`; otherwise `poll_ready` returns at once and the `call` fails with [`RateLimited`](super::RateLimited) |
/// | [`.shed()`](RateLimitLayer::shed) | `call` fails at once with [`RateLimited`](super::RateLimited) |
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use otelconc::rate::{Rate, RateLimiter};
/// use otelconc_tower::rate::RateLimitLayer;
/// use tower::ServiceBuilder;
/// # fn main() -> Result<(), otelconc::rate::BuildError> {
/// let limiter = RateLimiter::new("search-api", Rate::per_second(50).burst(10)?);
/// let svc = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter).max_wait(Duration::from_millis(200)))
///     .service_fn(|req: String| async move { Ok::<_, std::convert::Infallible>(req) });
/// # let _ = svc;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct RateLimitLayer {
    limiter: RateLimiter,
    mode: Mode,
    /// Whether the bucket runs low, shared by the services made here (see
    /// `RateLimit::take_now`).
    pressure: Arc<AtomicBool>,
}

impl RateLimitLayer {
    /// Waits in `poll_ready`, as long as it takes, for a token of `limiter`.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let layer = otelconc_tower::rate::RateLimitLayer::new(RateLimiter::new(
    ///     "api",
    ///     Rate::per_second(10).burst(1)?,
    /// ));
    /// # let _ = layer;
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn new(limiter: RateLimiter) -> Self {
        Self {
            limiter,
            mode: Mode::Wait(None),
            pressure: Arc::default(),
        }
    }

    /// Waits only when the token comes within `max`: a request whose token would come
    /// later is refused at once with [`RateLimited`](super::RateLimited), whose
    /// `retry_after` is when it would have come. The decision is made when the wait is
    /// queued, from the rate in force then; a later
    /// [`set_rate`](otelconc::rate::RateLimiter::set_rate) that lowers the rate re-times
    /// waits already queued, which can then last longer than `max`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use otelconc::rate::{Rate, RateLimiter};
    /// use otelconc_tower::rate::RateLimitLayer;
    /// let limiter = RateLimiter::new("api", Rate::per_second(10).burst(1)?);
    /// let layer = RateLimitLayer::new(limiter).max_wait(Duration::from_millis(500));
    /// # let _ = layer;
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn max_wait(mut self, max: Duration) -> Self {
        self.mode = Mode::Wait(Some(max));
        self
    }

    /// Never waits: `poll_ready` is the inner service's, and `call` takes a token or
    /// fails at once with [`RateLimited`](super::RateLimited).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// use otelconc_tower::rate::RateLimitLayer;
    /// let layer = RateLimitLayer::new(RateLimiter::new("api", Rate::per_second(10).burst(1)?)).shed();
    /// # let _ = layer;
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn shed(mut self) -> Self {
        self.mode = Mode::Shed;
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(
            inner,
            self.limiter.clone(),
            self.mode,
            self.pressure.clone(),
        )
    }
}
