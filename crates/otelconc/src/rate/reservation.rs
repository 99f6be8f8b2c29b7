//! [`Reservation`]: tokens taken now and due now or later; and the wait on one, which
//! is how every [`acquire`](super::RateLimiter::acquire) that has to wait waits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;

use super::error::ExceedsBurst;
use super::metrics::WaitOutcome;
use super::state::{Entry, Shared};

/// Tokens taken by [`RateLimiter::reserve_many`](super::RateLimiter::reserve_many), due
/// now or later.
///
/// Dropping it commits the reservation (the tokens stay spent); [`cancel`](Self::cancel)
/// gives them back; [`wait`](Self::wait) sleeps until they are due. It holds the
/// limiter's state (not a borrow of the [`RateLimiter`](super::RateLimiter)), so it is
/// `'static` and can be moved into another task.
///
/// # Examples
/// ```
/// use otelconc::rate::{Clock, Rate, RateLimiter};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder("api", Rate::per_second(10).burst(2)?)
///     .clock(Clock::tokio()) // follows tokio::time::pause()
///     .build();
/// let r = limiter.reserve_many(2)?;
/// assert!(r.delay().is_zero());
/// tokio::spawn(async move {
///     r.wait().await; // returns at once
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a reservation commits it; call .cancel() to give the tokens back"]
pub struct Reservation {
    shared: Arc<Shared>,
    n: u32,
    /// The wait-list entry, when the tokens were not due at once.
    id: Option<u64>,
    /// The bucket word right after this reservation.
    word: u64,
    reserved_at: u64,
    settled: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("n", &self.n)
            .field("delay", &self.delay())
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// Takes `n` tokens from `shared`'s bucket now, into debt if need be, and queues
    /// them on the wait list when they are not due at once.
    pub(super) fn new(shared: &Arc<Shared>, n: u32) -> Result<Self, ExceedsBurst> {
        let s = &**shared;
        let mut list = s.list();
        let now = s.now_ns();
        match s.gcra.reserve(u64::from(n), now) {
            Err(burst) => {
                drop(list);
                s.metrics.grants.too_large(u64::from(n));
                Err(ExceedsBurst {
                    requested: n,
                    burst: burst as u32,
                })
            }
            Ok((due, word)) => {
                let id = (due > now).then(|| {
                    let id = list.next_id;
                    list.next_id += 1;
                    list.entries.insert(id, Entry { due });
                    id
                });
                Ok(Self {
                    shared: Arc::clone(shared),
                    n,
                    id,
                    word,
                    reserved_at: now,
                    settled: false,
                })
            }
        }
    }

    /// Tokens reserved.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(10).burst(3)?);
    /// assert_eq!(limiter.reserve_many(3)?.tokens(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tokens(&self) -> u32 {
        self.n
    }

    /// How long until the tokens are due, at the rate in force now (zero when due).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(1).burst(1)?)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build();
    /// let first = limiter.reserve()?;
    /// let second = limiter.reserve()?;
    /// assert_eq!((first.delay(), second.delay()), (Duration::ZERO, Duration::from_secs(1)));
    /// limiter.set_rate(Rate::per_second(4))?;
    /// assert_eq!(second.delay(), Duration::from_millis(250));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay(&self) -> Duration {
        let Some(id) = self.id else {
            return Duration::ZERO;
        };
        let s = &*self.shared;
        let due = s.list().entries.get(&id).map_or(0, |e| e.due);
        Duration::from_nanos(due.saturating_sub(s.now_ns()))
    }

    /// Gives the tokens back, so others can use them, and moves the reservations made
    /// after this one earlier. Tokens whose due time has already passed are not given
    /// back (like Go's `Cancel`): the time they stood for is gone; the exception is a
    /// reservation cancelled before anything else touched the bucket, which is undone
    /// exactly.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(1).burst(1)?)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build();
    /// limiter.reserve()?.cancel();
    /// assert_eq!(limiter.tokens(), 1.0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(mut self) {
        let _ = self.cancel_inner();
    }

    /// Cancels the reservation; returns the clock reading it was cancelled at.
    fn cancel_inner(&mut self) -> u64 {
        self.settled = true;
        let s = &*self.shared;
        let n = u64::from(self.n);
        let mut list = s.list();
        let now = s.now_ns();
        // Whether waits queued behind this one moved up (and must re-time).
        let moved = match self.id {
            Some(id) => {
                let due = list.entries.remove(&id).map_or(0, |e| e.due);
                match s.gcra.give_back(n, due, now) {
                    Some(back) => {
                        let mut later = list.entries.range_mut(id + 1..).peekable();
                        let any = later.peek().is_some();
                        for (_, e) in later {
                            e.due = e.due.saturating_sub(back).max(now);
                        }
                        any
                    }
                    None => false,
                }
            }
            // Granted at once: nothing queued behind it that it could move.
            None => {
                let _ = s.gcra.undo(n, self.word);
                false
            }
        };
        drop(list);
        s.metrics.grants.cancelled(n);
        if moved {
            s.changed.notify_waiters();
        }
        now
    }

    fn commit(&mut self) {
        self.settled = true;
        let s = &*self.shared;
        if let Some(id) = self.id {
            s.list().entries.remove(&id);
        }
        s.metrics.grants.granted(u64::from(self.n));
    }

    /// Sleeps until the tokens are due, re-timed by any rate change or cancellation
    /// meanwhile, and commits the reservation.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `wait` is used as a branch in
    /// [`tokio::select!`] and another branch completes first, the reservation is
    /// cancelled: its tokens are given back as by [`Reservation::cancel`], and the
    /// reservations and waits queued behind it move up. This is what makes
    /// [`RateLimiter::acquire`](super::RateLimiter::acquire) cancel safe.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(10).burst(1)?)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build();
    /// limiter.try_acquire()?;
    /// let start = tokio::time::Instant::now();
    /// limiter.reserve()?.wait().await;
    /// assert_eq!(start.elapsed(), std::time::Duration::from_millis(100));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait(self) {
        let Some(id) = self.id else {
            return; // due at once; dropping commits
        };
        let span = self.shared.metrics.wait_started(self.n);
        let mut guard = WaitGuard {
            reservation: self,
            span,
            ended_at: None,
        };
        let s = &*guard.reservation.shared;
        loop {
            let notified = s.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = s.list().entries.get(&id).map_or(0, |e| e.due);
            let now = s.now_ns();
            if due <= now {
                guard.ended_at = Some(now);
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(s.epoch.deadline(due, now)) => {}
                () = &mut notified => {}
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.commit();
        }
    }
}

/// Ends a wait: commits (done) or cancels (dropped early) the reservation, and records
/// the wait's duration, gauge and span.
struct WaitGuard {
    reservation: Reservation,
    span: Option<Context>,
    /// The clock reading at which the tokens were found due; `None` while waiting.
    ended_at: Option<u64>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let r = &mut self.reservation;
        // The wait ends at a clock reading already taken (no third one).
        let (outcome, ended_at) = match self.ended_at {
            Some(t) => {
                r.commit();
                (WaitOutcome::Ok, t)
            }
            None => (WaitOutcome::Cancelled, r.cancel_inner()),
        };
        let waited = ended_at.saturating_sub(r.reserved_at);
        r.shared
            .metrics
            .wait_ended(self.span.take(), outcome, waited);
    }
}
