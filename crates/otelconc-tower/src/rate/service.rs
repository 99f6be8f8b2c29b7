//! [`RateLimit`]: the service a [`RateLimitLayer`](super::RateLimitLayer) makes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use otelconc::rate::RateLimiter;
use tower_service::Service;

use super::error::RateLimited;
use super::future::ResponseFuture;
use super::layer::Mode;
use crate::BoxError;

/// The wait for a reserved token: `Reservation::wait`, boxed to be kept across polls.
type Wait = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// A service handle's slow path between `poll_ready` and `call` (boxed, so the handle
/// stays small on the fast path, where a token is simply there).
enum Slow {
    /// Waiting for a reserved token (wait mode).
    Waiting(Wait),
    /// The next `call` fails with this (a bounded wait that would be too long).
    Refused(BoxError),
}

/// A service whose requests each take a token of an [`otelconc::rate::RateLimiter`];
/// made by [`RateLimitLayer`](super::RateLimitLayer), whose docs describe the modes.
///
/// # Where the token is taken
/// - **Wait modes** take it in `poll_ready`, as tower's own `RateLimit` waits there:
///   the caller is held back before it builds or sends anything, and the wait is cancel
///   safe. A token that is there is taken at once (lock-free); otherwise a reservation
///   is queued and awaited, and dropping this service (or the future polling it) while
///   it waits gives the token back to the limiter, letting the waits behind it move up.
///   The token is then used by the next `call`. A token taken by `poll_ready` and never
///   used (the service dropped between `poll_ready` and `call`) is spent, as it is for
///   tower's `RateLimit`: a rate token is an admission in time, not a resource anyone
///   holds, so nothing stays blocked by it.
/// - **Shed mode** takes it in `call`, right before the inner service is called, so a
///   refused request never touches the inner service and no token is ever taken for a
///   request that is not sent. `poll_ready` is the inner service's.
///
/// A clone shares the limiter but not a token its original took: it starts with none.
///
/// # Telemetry
/// The limiter's own (`otelconc.rate.*`): calls and tokens by outcome, the waits and
/// their `otelconc.rate.wait` spans (inside a sampled trace). In wait mode a request
/// that queues is counted as a call with outcome `ok` when its token comes (and as
/// contended), and normally not as refused: while the bucket runs low the layer reads it
/// before taking (one more clock read), while it is plentiful it only takes. So a
/// refused call is counted (`error.type = rate_limited`) for the first request of the
/// layer to find the bucket empty after a plentiful spell, and for a request that loses
/// a race for the last token, before that request queues; not for the others.
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
    mode: Mode,
    /// Set while the bucket runs low; shared by every handle the layer made.
    pressure: Arc<AtomicBool>,
    /// A token was taken by `poll_ready` for the next `call` (wait mode).
    token: bool,
    slow: Option<Box<Slow>>,
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (self.token, self.slow.as_deref()) {
            (true, _) => "ready",
            (false, None) => "idle",
            (false, Some(Slow::Waiting(_))) => "waiting",
            (false, Some(Slow::Refused(_))) => "refused",
        };
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .field("state", &state)
            .finish()
    }
}

impl<S> RateLimit<S> {
    pub(crate) fn new(
        inner: S,
        limiter: RateLimiter,
        mode: Mode,
        pressure: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner,
            limiter,
            mode,
            pressure,
            token: false,
            slow: None,
        }
    }

    /// The wrapped service.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// use otelconc_tower::rate::RateLimitLayer;
    /// use tower::Layer;
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(1)?);
    /// let svc = RateLimitLayer::new(limiter).layer(7_u8);
    /// assert_eq!(*svc.get_ref(), 7);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The limiter.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// use otelconc_tower::rate::RateLimitLayer;
    /// use tower::Layer;
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(1)?);
    /// let svc = RateLimitLayer::new(limiter).layer(());
    /// assert_eq!(svc.limiter().name(), "api");
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Takes a token if one is there now, without counting a refusal for a request
    /// that is about to queue instead: while the bucket runs low (the `pressure` flag
    /// every handle of the layer shares), the bucket is read before the take; while it
    /// is plentiful, the take alone is tried, and the first one to find it empty (and
    /// counted refused) raises the flag.
    fn take_now(&self) -> bool {
        if !self.pressure.load(Ordering::Relaxed) {
            if self.limiter.try_acquire().is_ok() {
                return true;
            }
            self.pressure.store(true, Ordering::Relaxed);
            return false;
        }
        let tokens = self.limiter.tokens();
        if tokens < 1.0 {
            return false;
        }
        if tokens >= 2.0 {
            // Another token would still be there after this one: the pressure is off.
            self.pressure.store(false, Ordering::Relaxed);
        }
        self.limiter.try_acquire().is_ok()
    }

    /// Queues a reservation for a token that is not there now (or refuses, when it
    /// would wait longer than the bounded wait allows); `None` when it is due at once.
    fn reserve(&self, max: Option<std::time::Duration>) -> Option<Slow> {
        match self.limiter.reserve() {
            Ok(r) => {
                let delay = r.delay();
                match max {
                    Some(max) if delay > max => {
                        r.cancel();
                        Some(Slow::Refused(Box::new(RateLimited::new(delay))))
                    }
                    _ if delay.is_zero() => None, // due now: dropping `r` commits it
                    _ => Some(Slow::Waiting(Box::pin(r.wait()))),
                }
            }
            // One token is above no burst (the burst is at least 1); kept for the types.
            Err(e) => Some(Slow::Refused(Box::new(e))),
        }
    }
}

impl<S: Clone> Clone for RateLimit<S> {
    /// A handle on the same limiter that has taken no token.
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            self.limiter.clone(),
            self.mode,
            self.pressure.clone(),
        )
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let max = match self.mode {
            Mode::Shed => return self.inner.poll_ready(cx).map_err(Into::into),
            Mode::Wait(max) => max,
        };
        if !self.token {
            if self.slow.is_none() {
                if self.take_now() {
                    self.token = true;
                } else {
                    match self.reserve(max) {
                        None => self.token = true,
                        Some(slow) => self.slow = Some(Box::new(slow)),
                    }
                }
            }
            match self.slow.as_deref_mut() {
                None => {}
                Some(Slow::Refused(_)) => return Poll::Ready(Ok(())),
                Some(Slow::Waiting(wait)) => {
                    ready!(wait.as_mut().poll(cx));
                    self.slow = None;
                    self.token = true;
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if std::mem::take(&mut self.token) {
            return ResponseFuture::called(self.inner.call(req));
        }
        if let Some(slow) = self.slow.take() {
            if let Slow::Refused(e) = *slow {
                return ResponseFuture::refused(e);
            }
        } else if self.mode == Mode::Shed {
            return match self.limiter.try_acquire() {
                Ok(()) => ResponseFuture::called(self.inner.call(req)),
                Err(e) => ResponseFuture::refused(Box::new(RateLimited::new(e.retry_after()))),
            };
        }
        // tower's contract: `call` only after `poll_ready` said ready.
        panic!("RateLimit::call before poll_ready returned Ready")
    }
}
