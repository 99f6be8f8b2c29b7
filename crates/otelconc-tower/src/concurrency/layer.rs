//! [`ConcurrencyLimitLayer`]: how a [`ConcurrencyLimit`] is configured.

use std::fmt;
use std::time::Duration;

use otelconc::semaphore::Semaphore;
use tower_layer::Layer;

use super::service::ConcurrencyLimit;

/// What a limited service does when no permit is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Wait for the permits; with `Some(max)`, give up after `max` and refuse.
    Wait(Option<Duration>),
    /// Refuse at once.
    Shed,
}

/// Every request takes one permit (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unweighted;

/// Every request takes as many permits as a function of the request says.
#[derive(Clone)]
pub struct Weight<F>(pub(crate) F);

impl<F> fmt::Debug for Weight<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Weight(..)")
    }
}

/// Bounds how many requests of the wrapped service are in flight at once with an
/// [`otelconc::semaphore::Semaphore`]: a request holds its permits from before the inner
/// service is called until its response future completes or is dropped.
///
/// Every service this layer makes, and every clone of one, shares the semaphore. Three
/// modes, and an optional weight:
///
/// | | what happens when no permit is free |
/// |---|---|
/// | [`ConcurrencyLimitLayer::new`] | wait for one, as long as it takes (FIFO) |
/// | [`.max_wait(d)`](ConcurrencyLimitLayer::max_wait) | wait up to `d`, then refuse with [`ConcurrencyLimited`](super::ConcurrencyLimited) |
/// | [`.shed()`](ConcurrencyLimitLayer::shed) | refuse at once with [`ConcurrencyLimited`](super::ConcurrencyLimited) |
/// | [`.weight(f)`](ConcurrencyLimitLayer::weight) | each request takes `f(&request)` permits (see [`ConcurrencyLimit`] for where) |
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
/// use tower::ServiceBuilder;
/// # fn main() -> Result<(), otelconc::semaphore::BuildError> {
/// let svc = ServiceBuilder::new()
///     .layer(ConcurrencyLimitLayer::new(Semaphore::new("db", 16)?))
///     .service_fn(|q: String| async move { Ok::<_, std::convert::Infallible>(q.len()) });
/// # let _ = svc;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct ConcurrencyLimitLayer<W = Unweighted> {
    semaphore: Semaphore,
    mode: Mode,
    retry_after: Option<Duration>,
    weight: W,
}

impl ConcurrencyLimitLayer {
    /// One permit of `semaphore` per request, waited for as long as it takes.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let layer = otelconc_tower::concurrency::ConcurrencyLimitLayer::new(Semaphore::new("db", 4)?);
    /// # let _ = layer;
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn new(semaphore: Semaphore) -> Self {
        Self {
            semaphore,
            mode: Mode::Wait(None),
            retry_after: None,
            weight: Unweighted,
        }
    }

    /// Each request takes `weight(&request)` permits instead of one: bytes of a body in
    /// MB, rows of a query, the cost of a job. A weight above the semaphore's total
    /// fails that request at once with
    /// [`ExceedsTotal`](otelconc::semaphore::ExceedsTotal); a weight of 0 passes.
    ///
    /// The weight depends on the request, which `poll_ready` does not see, so weighted
    /// permits are taken when the request comes, in `call`; the wrapped service must be
    /// `Clone` (see [`ConcurrencyLimit`]).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
    /// // At most 64 MB of uploads in flight, weighted by size.
    /// let layer = ConcurrencyLimitLayer::new(Semaphore::new("upload-mb", 64)?)
    ///     .weight(|body: &Vec<u8>| (body.len() / (1 << 20)) as u32 + 1);
    /// # let _ = layer;
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn weight<F>(self, weight: F) -> ConcurrencyLimitLayer<Weight<F>> {
        ConcurrencyLimitLayer {
            semaphore: self.semaphore,
            mode: self.mode,
            retry_after: self.retry_after,
            weight: Weight(weight),
        }
    }
}

impl<W> ConcurrencyLimitLayer<W> {
    /// Waits at most `max` for the permits, then refuses the request with
    /// [`ConcurrencyLimited`](super::ConcurrencyLimited); the wait gives up its place in
    /// the queue.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
    /// let layer = ConcurrencyLimitLayer::new(Semaphore::new("db", 4)?).max_wait(Duration::from_millis(50));
    /// # let _ = layer;
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn max_wait(mut self, max: Duration) -> Self {
        self.mode = Mode::Wait(Some(max));
        self
    }

    /// Never waits: a request finding no permit free is refused at once with
    /// [`ConcurrencyLimited`](super::ConcurrencyLimited).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
    /// let layer = ConcurrencyLimitLayer::new(Semaphore::new("db", 4)?).shed();
    /// # let _ = layer;
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn shed(mut self) -> Self {
        self.mode = Mode::Shed;
        self
    }

    /// The `retry_after` a refusal carries (and, with the `axum` feature, the 503's
    /// `Retry-After`): a semaphore cannot know when a permit will be free, so it is
    /// whatever the service's owner knows (a typical request's duration). None by
    /// default.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
    /// let layer = ConcurrencyLimitLayer::new(Semaphore::new("db", 4)?)
    ///     .shed()
    ///     .retry_after(Duration::from_secs(1));
    /// # let _ = layer;
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn retry_after(mut self, hint: Duration) -> Self {
        self.retry_after = Some(hint);
        self
    }
}

impl<S, W: Clone> Layer<S> for ConcurrencyLimitLayer<W> {
    type Service = ConcurrencyLimit<S, W>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit::new(
            inner,
            self.semaphore.clone(),
            self.mode,
            self.retry_after,
            self.weight.clone(),
        )
    }
}
