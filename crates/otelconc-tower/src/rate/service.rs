//! [`RateLimit`]: the service a [`RateLimitLayer`](super::RateLimitLayer) makes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use otelconc::rate::RateLimiter;
use tower_service::Service;

use super::error::RateLimited;
use super::future::ResponseFuture;
use super::layer::Mode;
use crate::BoxError;

/// The wait for a reserved token: `Reservation::wait`, boxed to be kept across polls.
type Wait = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Where this service handle is between `poll_ready` and `call`.
enum State {
    /// Nothing taken.
    Idle,
    /// Waiting for a reserved token (wait mode).
    Waiting(Wait),
    /// A token was taken for the next `call` (wait mode).
    Ready,
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
/// The limiter's own: tokens admitted and refused, the waits and their
/// `otelconc.rate.wait` spans (inside a sampled trace). In wait mode a request that
/// finds the bucket empty is not counted as refused: the bucket is read first, and only
/// a race with another caller between that read and the take counts once as refused
/// before the request queues.
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
    mode: Mode,
    state: State,
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting(_) => "waiting",
            State::Ready => "ready",
            State::Refused(_) => "refused",
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
    pub(crate) fn new(inner: S, limiter: RateLimiter, mode: Mode) -> Self {
        Self {
            inner,
            limiter,
            mode,
            state: State::Idle,
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

    /// Takes a token now if one is there, else queues a reservation (or refuses, when
    /// it would wait longer than the bounded wait allows).
    fn start(&mut self, max: Option<std::time::Duration>) {
        // Read the bucket first so that a request about to queue is not counted as
        // refused by `try_acquire`.
        if self.limiter.tokens() >= 1.0 && self.limiter.try_acquire().is_ok() {
            self.state = State::Ready;
            return;
        }
        self.state = match self.limiter.reserve() {
            Ok(r) => {
                let delay = r.delay();
                match max {
                    Some(max) if delay > max => {
                        r.cancel();
                        State::Refused(Box::new(RateLimited::new(delay)))
                    }
                    _ if delay.is_zero() => {
                        drop(r); // due now: dropping commits
                        State::Ready
                    }
                    _ => State::Waiting(Box::pin(r.wait())),
                }
            }
            // One token is above no burst (the burst is at least 1); kept for the types.
            Err(e) => State::Refused(Box::new(e)),
        };
    }
}

impl<S: Clone> Clone for RateLimit<S> {
    /// A handle on the same limiter that has taken no token.
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.limiter.clone(), self.mode)
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
        loop {
            match &mut self.state {
                State::Idle => self.start(max),
                State::Waiting(wait) => {
                    ready!(wait.as_mut().poll(cx));
                    self.state = State::Ready;
                }
                State::Ready => return self.inner.poll_ready(cx).map_err(Into::into),
                State::Refused(_) => return Poll::Ready(Ok(())),
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Refused(e) => ResponseFuture::refused(e),
            State::Ready => ResponseFuture::called(self.inner.call(req)),
            State::Idle if self.mode == Mode::Shed => match self.limiter.try_acquire() {
                Ok(()) => ResponseFuture::called(self.inner.call(req)),
                Err(e) => ResponseFuture::refused(Box::new(RateLimited::new(e.retry_after()))),
            },
            // tower's contract: `call` only after `poll_ready` said ready.
            State::Idle | State::Waiting(_) => {
                panic!("RateLimit::call before poll_ready returned Ready")
            }
        }
    }
}
