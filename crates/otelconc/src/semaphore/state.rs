//! [`Shared`]: the permits every handle and guard of one semaphore share, how they
//! are taken (at once or after a wait) and how the total shrinks.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use crossbeam_utils::CachePadded;
use opentelemetry::Context;

use super::error::{ExceedsTotal, TryAcquireError};
use super::metrics::{End, Metrics, Observed};
use super::waiting::Waiting;
use crate::telemetry::Telemetry;

/// The state behind a [`Semaphore`](super::Semaphore) and its guards.
pub(super) struct Shared {
    /// On cache lines of its own: its permit word and queue lock are the hottest
    /// memory of a contended semaphore, and anything beside them would slow it.
    pub(super) sem: CachePadded<tokio::sync::Semaphore>,
    /// Permits in total (free plus held); changed by resizes and `forget`, read by
    /// every `acquire`, so kept off the lines written on every call.
    pub(super) total: CachePadded<AtomicU64>,
    /// Waiters now, and a bound on their requests that shrinking never goes below.
    waiting: Waiting,
    pub(super) name: Arc<str>,
    /// Inline, not boxed: a count on the hot path is a fixed offset from here. Its
    /// per-thread counts are on cache lines of their own (see [`crate::util::stripes`]).
    metrics: Metrics,
}

impl Observed for Shared {
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn waiters(&self) -> i64 {
        self.waiting.count() as i64
    }

    fn available(&self) -> i64 {
        self.sem.available_permits() as i64
    }

    fn limit(&self) -> i64 {
        i64::from(self.total())
    }
}

impl Shared {
    /// A semaphore's state with `permits` permits, all free (already validated).
    pub(super) fn new(name: Arc<str>, permits: u32, t: &Telemetry) -> Arc<Self> {
        Arc::new_cyclic(|weak| Shared {
            sem: CachePadded::new(tokio::sync::Semaphore::new(permits as usize)),
            total: CachePadded::new(AtomicU64::new(u64::from(permits))),
            waiting: Waiting::default(),
            metrics: Metrics::new(t, &name, weak),
            name,
        })
    }

    pub(super) fn total(&self) -> u32 {
        // `SeqCst`: a waiter's read after its announcement is part of the argument in
        // `shrink`. At most u32::MAX by construction.
        self.total.load(Ordering::SeqCst) as u32
    }

    /// Takes `by` permits (already out of tokio's semaphore) off the total, except
    /// those that would leave a waiter asking for more than the total: those go back
    /// into the semaphore. Returns how many were taken off.
    ///
    /// Waiters announce themselves (`waiting`) before they read the total, and this
    /// lowers the total before it reads the announcements (all `SeqCst`): so either it
    /// sees the waiter's request, or the waiter sees the lower total and fails at once.
    pub(super) fn shrink(&self, by: u32) -> u32 {
        if by == 0 {
            return 0;
        }
        let after = self.total.fetch_sub(u64::from(by), Ordering::SeqCst) - u64::from(by);
        let bound = self.waiting.bound_for_shrink();
        if bound <= after {
            return by;
        }
        let back = (bound - after).min(u64::from(by));
        self.total.fetch_add(back, Ordering::SeqCst);
        self.sem.add_permits(back as usize);
        by - back as u32
    }

    fn exceeds(&self, n: u32) -> Option<ExceedsTotal> {
        let total = self.total();
        (n > total).then_some(ExceedsTotal {
            requested: n,
            total,
        })
    }

    fn refuse_total(&self, e: ExceedsTotal) -> ExceedsTotal {
        self.metrics.grants.too_large(u64::from(e.requested));
        e
    }

    /// Takes `n` permits if they are free now; the caller wraps them in a guard.
    #[inline]
    pub(super) fn try_take(&self, n: u32) -> Result<(), TryAcquireError> {
        match self.sem.try_acquire_many(n) {
            Ok(p) => {
                p.forget(); // released by our guard
                self.metrics.grants.granted(u64::from(n));
                Ok(())
            }
            Err(_) => match self.exceeds(n) {
                Some(e) => Err(TryAcquireError::ExceedsTotal(self.refuse_total(e))),
                None => {
                    self.metrics.grants.unavailable(u64::from(n));
                    Err(TryAcquireError::Unavailable)
                }
            },
        }
    }

    /// Waits for `n` permits; the caller wraps them in a guard.
    pub(super) async fn take(&self, n: u32) -> Result<(), ExceedsTotal> {
        if let Some(e) = self.exceeds(n) {
            return Err(self.refuse_total(e));
        }
        // One acquire future for the whole call, polled once per wake-up and never
        // twice in a row: its first poll grants the permits when they are free
        // (tokio's own fast path), otherwise it queues, and from then on it holds our
        // place in the FIFO queue. A poll of a queued acquire takes the queue's lock,
        // so polling it again just to learn it is still pending would cost every
        // wait one more round on the most contended lock of the semaphore.
        let acquire = self.sem.acquire_many(n);
        tokio::pin!(acquire);
        let mut wait: Option<WaitGuard<'_>> = None;
        poll_fn(|cx| {
            let Poll::Ready(r) = acquire.as_mut().poll(cx) else {
                if wait.is_none() {
                    // A real wait: now (and only now) time it, count it, trace it.
                    let guard = wait.get_or_insert_with(|| self.start_wait(n));
                    if let Some(e) = self.exceeds(n) {
                        guard.end = End::Refused;
                        return Poll::Ready(Err(self.refuse_total(e)));
                    }
                }
                return Poll::Pending;
            };
            // The semaphore is never closed, so acquiring cannot fail.
            if let Ok(p) = r {
                p.forget(); // released by our guard
            }
            self.metrics.grants.granted(u64::from(n));
            if let Some(guard) = &mut wait {
                guard.end = End::Granted;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Starts timing (and, inside a sampled trace, tracing) a wait for `n` permits,
    /// and announces the request before the caller reads the total (see `shrink`).
    #[inline]
    fn start_wait(&self, n: u32) -> WaitGuard<'_> {
        let span = self.metrics.wait_span(n);
        self.waiting.enter(n);
        WaitGuard {
            shared: self,
            n,
            start: self.metrics.wait_start(),
            span,
            end: End::Cancelled,
        }
    }
}

/// Ends a wait: counts the waiter out, then records its duration, outcome and span.
struct WaitGuard<'a> {
    shared: &'a Shared,
    n: u32,
    start: Option<quanta::Instant>,
    span: Option<Context>,
    end: End,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let s = self.shared;
        s.waiting.leave();
        s.metrics
            .wait_ended(self.n, self.end, self.start, self.span.take());
    }
}
