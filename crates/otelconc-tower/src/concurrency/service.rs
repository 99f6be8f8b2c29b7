//! [`ConcurrencyLimit`]: the service a [`ConcurrencyLimitLayer`](super::ConcurrencyLimitLayer)
//! makes.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use otelconc::semaphore::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Sleep;
use tower_service::Service;

use super::error::ConcurrencyLimited;
use super::future::{Acquire, ResponseFuture};
use super::layer::{Mode, Unweighted, Weight};
use crate::BoxError;

/// An unweighted service handle's slow path between `poll_ready` and `call` (boxed, so
/// the handle stays small on the fast path, where a permit is simply free).
enum Slow {
    /// Waiting for a permit (wait modes).
    Waiting {
        acquire: Acquire,
        deadline: Option<Pin<Box<Sleep>>>,
    },
    /// The next `call` fails with this.
    Refused(BoxError),
}

/// A service whose requests each hold permits of an [`otelconc::semaphore::Semaphore`]
/// while they are in flight; made by
/// [`ConcurrencyLimitLayer`](super::ConcurrencyLimitLayer), whose docs describe the modes.
///
/// # Where the permit is taken
/// - **Unweighted (the default)**: in `poll_ready`, as tower's own `ConcurrencyLimit`
///   does, so a caller is held back (backpressure) before it builds or sends anything. A
///   free permit is taken at once; otherwise `poll_ready` waits in the semaphore's FIFO
///   queue (bounded by `max_wait`), or, in shed mode, returns ready at once and the
///   `call` fails with [`ConcurrencyLimited`] without calling the inner service. The
///   permit is kept in this service handle for the next `call`, which moves it into the
///   response future. A permit taken by `poll_ready` is never leaked: dropping the
///   service gives it back, and a clone does not share it (a clone starts with none).
///   Dropping the service (or the future polling it) while it waits gives up its place
///   in the queue and takes nothing.
/// - **Weighted** ([`weight`](super::ConcurrencyLimitLayer::weight)): the number of
///   permits depends on the request, which `poll_ready` does not see, so they are taken
///   in `call`. When they are free they are taken at once; when not, in a wait mode the
///   response future waits for them in the queue and calls the inner service once they
///   are granted: `call` moves the ready inner service into the future and keeps a clone
///   for the next request (tower's usual way to call a service later, hence `S: Clone`);
///   in shed mode the future fails at once. `poll_ready` is the inner service's.
///
/// In every mode the response future holds the permits until it completes (they are
/// given back as the inner future returns, before the response is handed on) or is
/// dropped.
///
/// # Panics
/// `call` panics when `poll_ready` has not returned `Ready` before it (unweighted),
/// as tower's own limit services do.
///
/// # Telemetry
/// The semaphore's own (`otelconc.semaphore.*`): calls and permits by outcome, waits
/// and their `otelconc.semaphore.wait` spans (inside a sampled trace), permits free and
/// used. A request that finds no permit free in a wait mode is not counted as refused:
/// the free permits are read first, and only a race with another caller between that
/// read and the take counts once as a refused call (`error.type = would_block`) before
/// the request queues. In shed mode the take is tried once, at once, and a refused
/// request is counted once.
pub struct ConcurrencyLimit<S, W = Unweighted> {
    inner: S,
    semaphore: Semaphore,
    mode: Mode,
    retry_after: Option<Duration>,
    weight: W,
    /// The permit taken by `poll_ready` for the next `call` (unweighted).
    permit: Option<OwnedSemaphorePermit>,
    slow: Option<Box<Slow>>,
}

impl<S: fmt::Debug, W: fmt::Debug> fmt::Debug for ConcurrencyLimit<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (&self.permit, self.slow.as_deref()) {
            (Some(_), _) => "ready",
            (None, None) => "idle",
            (None, Some(Slow::Waiting { .. })) => "waiting",
            (None, Some(Slow::Refused(_))) => "refused",
        };
        f.debug_struct("ConcurrencyLimit")
            .field("inner", &self.inner)
            .field("semaphore", &self.semaphore)
            .field("mode", &self.mode)
            .field("weight", &self.weight)
            .field("state", &state)
            .finish()
    }
}

impl<S, W> ConcurrencyLimit<S, W> {
    pub(crate) fn new(
        inner: S,
        semaphore: Semaphore,
        mode: Mode,
        retry_after: Option<Duration>,
        weight: W,
    ) -> Self {
        Self {
            inner,
            semaphore,
            mode,
            retry_after,
            weight,
            permit: None,
            slow: None,
        }
    }

    /// The wrapped service.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
    /// use tower::Layer;
    /// let svc = ConcurrencyLimitLayer::new(Semaphore::new("db", 1)?).layer(7_u8);
    /// assert_eq!(*svc.get_ref(), 7);
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The semaphore.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc_tower::concurrency::ConcurrencyLimitLayer;
    /// use tower::Layer;
    /// let svc = ConcurrencyLimitLayer::new(Semaphore::new("db", 3)?).layer(());
    /// assert_eq!(svc.semaphore().total_permits(), 3);
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn semaphore(&self) -> &Semaphore {
        &self.semaphore
    }

    fn refusal(&self) -> BoxError {
        self_refusal(self.retry_after)
    }

    /// `n` permits now, without counting a refusal when they are plainly not free.
    #[inline]
    fn take_now(&self, n: u32) -> Option<OwnedSemaphorePermit> {
        if self.semaphore.available_permits() < n {
            return None;
        }
        self.semaphore.try_acquire_many_owned(n).ok()
    }

    /// The wait for `n` permits, and its deadline.
    fn wait_for(&self, n: u32, max: Option<Duration>) -> (Acquire, Option<Pin<Box<Sleep>>>) {
        let sem = self.semaphore.clone();
        let acquire: Acquire = Box::pin(async move { sem.acquire_many_owned(n).await });
        (acquire, max.map(|d| Box::pin(tokio::time::sleep(d))))
    }
}

impl<S: Clone, W: Clone> Clone for ConcurrencyLimit<S, W> {
    /// A handle on the same semaphore that holds no permit.
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            self.semaphore.clone(),
            self.mode,
            self.retry_after,
            self.weight.clone(),
        )
    }
}

impl<S, Req> Service<Req> for ConcurrencyLimit<S, Unweighted>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() {
            let taken = self.slow.is_none()
                && match self.mode {
                    // A failed take is the refusal, counted once by the semaphore.
                    Mode::Shed => match self.semaphore.try_acquire_owned() {
                        Ok(p) => {
                            self.permit = Some(p);
                            true
                        }
                        Err(e) => {
                            self.shed(e);
                            false
                        }
                    },
                    Mode::Wait(max) => match self.take_now(1) {
                        Some(p) => {
                            self.permit = Some(p);
                            true
                        }
                        None => {
                            self.start_wait(max);
                            false
                        }
                    },
                };
            if !taken {
                ready!(self.poll_slow(cx));
                if self.permit.is_none() {
                    return Poll::Ready(Ok(())); // refused: `call` fails, inner not called
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.permit.take() {
            Some(permit) => ResponseFuture::called(self.inner.call(req), permit),
            None => ResponseFuture::refused(self.take_refusal()),
        }
    }
}

impl<S> ConcurrencyLimit<S, Unweighted> {
    /// Shed mode found no permit free: the next `call` fails.
    #[cold]
    #[inline(never)]
    fn shed(&mut self, e: TryAcquireError) {
        let error = match e {
            TryAcquireError::ExceedsTotal(e) => Box::new(e),
            _ => self.refusal(),
        };
        self.slow = Some(Box::new(Slow::Refused(error)));
    }

    /// Wait mode found no permit free: queue for one.
    #[cold]
    #[inline(never)]
    fn start_wait(&mut self, max: Option<Duration>) {
        let (acquire, deadline) = self.wait_for(1, max);
        self.slow = Some(Box::new(Slow::Waiting { acquire, deadline }));
    }

    /// A pending wait or refusal: `Ready` with `self.permit` set when the permit is
    /// granted, without it when the next `call` is to fail.
    #[cold]
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(slow) = self.slow.as_deref_mut() else {
            return Poll::Ready(());
        };
        match slow {
            Slow::Refused(_) => Poll::Ready(()),
            Slow::Waiting { acquire, deadline } => {
                if let Poll::Ready(r) = acquire.as_mut().poll(cx) {
                    match r {
                        Ok(p) => {
                            self.permit = Some(p);
                            self.slow = None;
                        }
                        Err(e) => *slow = Slow::Refused(Box::new(e)),
                    }
                    Poll::Ready(())
                } else if deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready())
                {
                    // Dropping the wait gives up its place in the queue.
                    *slow = Slow::Refused(self_refusal(self.retry_after));
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        }
    }

    /// `call` without a permit: the refusal `poll_ready` left for it. (It returns the
    /// error, not the response future, so that `call` builds its future in place.)
    #[cold]
    #[inline(never)]
    fn take_refusal(&mut self) -> BoxError {
        match self.slow.take().map(|s| *s) {
            Some(Slow::Refused(e)) => e,
            _ => panic!("ConcurrencyLimit::call before poll_ready returned Ready"),
        }
    }
}

fn self_refusal(retry_after: Option<Duration>) -> BoxError {
    Box::new(ConcurrencyLimited::new(retry_after))
}

impl<S, Req, F> Service<Req> for ConcurrencyLimit<S, Weight<F>>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> u32,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let n = (self.weight.0)(&req);
        match self.mode {
            // One take: a failed one is the refusal, counted once by the semaphore.
            Mode::Shed => match self.semaphore.try_acquire_many_owned(n) {
                Ok(permit) => ResponseFuture::called(self.inner.call(req), permit),
                Err(TryAcquireError::ExceedsTotal(e)) => ResponseFuture::refused(Box::new(e)),
                Err(_) => ResponseFuture::refused(self.refusal()),
            },
            Mode::Wait(max) => {
                if let Some(permit) = self.take_now(n) {
                    return ResponseFuture::called(self.inner.call(req), permit);
                }
                let (acquire, deadline) = self.wait_for(n, max);
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(acquire, deadline, self.retry_after, ready, req)
            }
        }
    }
}
