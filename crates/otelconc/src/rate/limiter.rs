//! [`RateLimiter`] and its [`Builder`].

use std::fmt;
use std::future::Future;
use std::sync::{Arc, MutexGuard, Weak};

use super::clock::Clock;
use super::error::{BuildError, ExceedsBurst, RateLimited, TryAcquireError};
use super::gcra::{Gcra, Params, Take, convert_due};
use super::metrics::{Metrics, Reads};
use super::quota::{Quota, Rate, params};
use super::reservation::Reservation;
use super::state::{Shared, WaitList};
use crate::telemetry::Telemetry;

/// A token-bucket rate limiter (events per second with a burst), with its metrics and
/// wait spans built in. Cloning is cheap and clones share the bucket.
///
/// See the [module docs](super) for semantics, costs and telemetry.
///
/// # Examples
/// ```
/// use otelconc::rate::{Clock, Rate, RateLimiter};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder("outbound-api", Rate::per_second(10).burst(5)?)
///     .clock(Clock::tokio()) // follows tokio::time::pause()
///     .build();
/// for _ in 0..5 {
///     limiter.try_acquire()?; // the burst passes at once
/// }
/// assert!(limiter.try_acquire().is_err());
/// limiter.acquire().await?; // waits ~100 ms for the next token
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = self.shared.list();
        f.debug_struct("RateLimiter")
            .field("name", &self.shared.name)
            .field("rate", &list.rate)
            .field("burst", &list.burst)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimiter`] with options (the clock, the telemetry handle).
///
/// # Examples
/// ```
/// use otelconc::rate::{Rate, RateLimiter};
/// use otelconc::telemetry::Telemetry;
/// let limiter = RateLimiter::builder("db", Rate::per_second(500).burst(50)?)
///     .telemetry(Telemetry::global())
///     .build();
/// assert_eq!(limiter.burst(), 50);
/// # Ok::<(), otelconc::rate::BuildError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    name: Arc<str>,
    quota: Quota,
    telemetry: Option<Telemetry>,
    clock: Option<Clock>,
}

impl Builder {
    /// The time source (default: [`Clock::monotonic`]); [`Clock::tokio`] for tests
    /// that pause tokio's time.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// let b = RateLimiter::builder("x", Rate::Unlimited.burst(1)?).clock(Clock::tokio());
    /// # let _ = b;
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The meter and tracer to use (default: [`Telemetry::global`] at build time).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// use otelconc::telemetry::Telemetry;
    /// let b = RateLimiter::builder("x", Rate::Unlimited.burst(1)?).telemetry(Telemetry::global());
    /// # let _ = b;
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Builds the limiter with a full bucket. It cannot fail: the [`Quota`] was
    /// checked when it was made.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::builder("x", Rate::per_second(2).burst(4)?).build();
    /// assert_eq!(limiter.tokens(), 4.0);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn build(self) -> RateLimiter {
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let q = self.quota;
        let epoch = self.clock.unwrap_or_default().epoch();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let reads = Reads {
                metrics: |s: &Shared| &s.metrics,
                tokens: Shared::tokens,
                quota: Shared::quota,
            };
            let metrics = Metrics::new(&telemetry, &self.name, weak, reads);
            Shared::new(
                Gcra::new(q.params()),
                epoch,
                q.rate(),
                q.burst(),
                self.name.clone(),
                metrics,
            )
        });
        RateLimiter { shared }
    }
}

impl RateLimiter {
    /// A limiter named `name` (the `otelconc.name` of its metrics) granting tokens at
    /// `quota`'s rate with bursts of up to its burst, starting full, with
    /// [`Telemetry::global`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{BuildError, Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(100).burst(10)?);
    /// assert_eq!(limiter.tokens(), 10.0);
    /// assert_eq!(
    ///     Rate::per_second(f64::INFINITY).burst(10).unwrap_err(),
    ///     BuildError::RateInfinite,
    /// );
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn new(name: impl Into<Arc<str>>, quota: Quota) -> Self {
        Self::builder(name, quota).build()
    }

    /// A [`Builder`] for a limiter with more options.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::builder("api", Rate::per_second(1).burst(1)?).build();
    /// # let _ = limiter;
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn builder(name: impl Into<Arc<str>>, quota: Quota) -> Builder {
        Builder {
            name: name.into(),
            quota,
            telemetry: None,
            clock: None,
        }
    }

    /// Takes one token if the bucket holds one now (Go's `Allow`).
    ///
    /// Cost: one clock read, one atomic compare-and-swap and one relaxed counter add on
    /// a per-thread stripe; no lock, no allocation, no span.
    ///
    /// # Errors
    /// [`RateLimited`] (with the time until a token is due) when the bucket is empty.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(1)?);
    /// assert!(limiter.try_acquire().is_ok());
    /// assert!(limiter.try_acquire().is_err());
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<(), RateLimited> {
        let s = &*self.shared;
        match s.gcra.try_take(1, || s.now_ns()) {
            Take::Granted => {
                s.metrics.grants.granted(1);
                Ok(())
            }
            Take::Wait(wait_ns) => {
                s.metrics.grants.unavailable(1);
                Err(RateLimited { wait_ns })
            }
            // The burst is at least 1.
            Take::ExceedsBurst(_) => Err(RateLimited { wait_ns: 0 }),
        }
    }

    /// Takes `n` tokens if the bucket holds them now (Go's `AllowN`); all or nothing.
    /// `n == 0` always passes.
    ///
    /// # Errors
    /// [`TryAcquireError::RateLimited`] when the bucket holds fewer than `n` tokens;
    /// [`TryAcquireError::ExceedsBurst`] when `n` is above the burst (it never could).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(3)?);
    /// assert!(limiter.try_acquire_many(3).is_ok());
    /// assert!(limiter.try_acquire_many(1).is_err());
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    #[inline]
    pub fn try_acquire_many(&self, n: u32) -> Result<(), TryAcquireError> {
        let s = &*self.shared;
        match s.gcra.try_take(u64::from(n), || s.now_ns()) {
            Take::Granted => {
                s.metrics.grants.granted(u64::from(n));
                Ok(())
            }
            Take::Wait(wait_ns) => {
                s.metrics.grants.unavailable(u64::from(n));
                Err(TryAcquireError::RateLimited(RateLimited { wait_ns }))
            }
            Take::ExceedsBurst(burst) => {
                s.metrics.grants.too_large(u64::from(n));
                Err(TryAcquireError::ExceedsBurst(ExceedsBurst {
                    requested: n,
                    burst: burst as u32,
                }))
            }
        }
    }

    /// Waits for one token (Go's `Wait`). Callers that wait are served in the order
    /// they started waiting, and a rate change re-times every wait at once.
    ///
    /// It returns the same `Result` as [`acquire_many`](Self::acquire_many), so both
    /// compose the same way with `?`, but it never fails: the burst is at least 1.
    ///
    /// # Errors
    /// None: one token never exceeds the burst.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `acquire` is used as a branch in
    /// [`tokio::select!`] and another branch completes first, the token it was
    /// waiting for is given back (the call counts with outcome `cancelled`) and
    /// the waits queued behind it move up; only a token whose due time had already
    /// passed stays spent (see [`Reservation::cancel`]). This limiter uses a queue to
    /// grant tokens in the order they were requested. Cancelling a call to `acquire`
    /// makes you lose your place in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(2).burst(1)?)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build();
    /// let start = tokio::time::Instant::now();
    /// limiter.acquire().await?;
    /// limiter.acquire().await?;
    /// assert!(start.elapsed() >= std::time::Duration::from_millis(500));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<(), ExceedsBurst> {
        self.acquire_many(1).await
    }

    /// Waits for `n` tokens (Go's `WaitN`), all at once.
    ///
    /// # Errors
    /// [`ExceedsBurst`] at once, without waiting, when `n` is above the burst.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `acquire_many` is used as a branch in
    /// [`tokio::select!`] and another branch completes first, the `n` tokens it was
    /// waiting for are given back (the call counts with outcome `cancelled`) and
    /// the waits queued behind it move up; only tokens whose due time had already
    /// passed stay spent (see [`Reservation::cancel`]). This limiter uses a queue to
    /// grant tokens in the order they were requested. Cancelling a call to
    /// `acquire_many` makes you lose your place in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(10).burst(5)?)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build();
    /// limiter.acquire_many(5).await?;
    /// assert!(limiter.acquire_many(6).await.is_err()); // never possible: fails at once
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_many(&self, n: u32) -> Result<(), ExceedsBurst> {
        let s = &*self.shared;
        match s.gcra.try_take(u64::from(n), || s.now_ns()) {
            Take::Granted => {
                s.metrics.grants.granted(u64::from(n));
                return Ok(());
            }
            Take::ExceedsBurst(burst) => {
                s.metrics.grants.too_large(u64::from(n));
                return Err(ExceedsBurst {
                    requested: n,
                    burst: burst as u32,
                });
            }
            Take::Wait(_) => {}
        }
        self.reserve_many(n)?.wait().await;
        Ok(())
    }

    /// Waits for one token, then runs `f` and returns what it returns.
    ///
    /// # Cancel safety
    /// If `execute` is used as a branch in [`tokio::select!`] and another branch
    /// completes first while `f`'s future runs, then that future is dropped and the
    /// token it was given will be lost. While `execute` still waits, its token is given
    /// back, as with [`acquire`](Self::acquire). To keep the choice, use
    /// [`acquire`](Self::acquire) and run the work after it.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), otelconc::rate::BuildError> {
    /// let limiter = RateLimiter::new("api", Rate::per_second(100).burst(1)?);
    /// let v = limiter.execute(|| async { 42 }).await;
    /// assert_eq!(v, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        // One token never exceeds the burst (at least 1): this cannot fail.
        let _ = self.acquire().await;
        f().await
    }

    /// Takes one token now, into debt if need be, and says when it is due: the same as
    /// [`reserve_many(1)`](Self::reserve_many).
    ///
    /// # Errors
    /// None: one token never exceeds the burst (it returns the same `Result` as
    /// [`reserve_many`](Self::reserve_many)).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(1)?);
    /// let r = limiter.reserve()?;
    /// assert!(r.delay().is_zero());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self) -> Result<Reservation, ExceedsBurst> {
        self.reserve_many(1)
    }

    /// Takes `n` tokens now, into debt if need be, and says when they are due (Go's
    /// `ReserveN`). The caller either acts after [`Reservation::delay`] (or awaits
    /// [`Reservation::wait`]), or calls [`Reservation::cancel`] to give the tokens back.
    /// Dropping the reservation keeps the tokens spent (commits it). The reservation
    /// is `'static`: it can be moved into another task.
    ///
    /// Reservations queue with waiting [`acquire`](RateLimiter::acquire) calls, in one
    /// FIFO order; while any is pending, [`try_acquire`](RateLimiter::try_acquire)
    /// fails.
    ///
    /// # Errors
    /// [`ExceedsBurst`] when `n` is above the burst.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(10).burst(1)?)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build();
    /// limiter.try_acquire()?;
    /// let r = limiter.reserve_many(1)?;
    /// assert_eq!(r.delay(), Duration::from_millis(100));
    /// if r.delay() > Duration::from_millis(50) {
    ///     r.cancel(); // too long: give the token back
    /// }
    /// assert!(limiter.tokens() >= 0.0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reserve_many(&self, n: u32) -> Result<Reservation, ExceedsBurst> {
        Reservation::new(&self.shared, n)
    }

    /// Changes the rate now. The tokens in the bucket stay (a bucket in debt stays in
    /// debt, in tokens), and every pending wait and reservation is re-timed at the new
    /// rate: waiters wake earlier when the rate rises and later when it falls. Going to
    /// [`Rate::Unlimited`] releases every waiter; coming back from it starts full.
    ///
    /// # Errors
    /// [`BuildError`] for a rate [`Quota::new`] would refuse with the burst in force;
    /// the limiter is then unchanged.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(1)?);
    /// limiter.set_rate(Rate::per_second(50))?;
    /// assert_eq!(limiter.rate(), Rate::per_second(50));
    /// assert!(limiter.set_rate(Rate::per_second(-1)).is_err());
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn set_rate(&self, rate: Rate) -> Result<(), BuildError> {
        let s = &*self.shared;
        let mut list = s.list();
        let p = params(rate, list.burst)?;
        list.rate = rate;
        self.apply(list, p);
        Ok(())
    }

    /// Changes the burst (bucket capacity) now. Tokens above the new burst are dropped;
    /// pending waits keep their place (their due time does not depend on the burst).
    /// Waits asking for more than the new burst still complete: only new calls are
    /// checked against it.
    ///
    /// # Errors
    /// [`BuildError`] for a burst [`Quota::new`] would refuse with the rate in force;
    /// the limiter is then unchanged.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(10)?);
    /// limiter.set_burst(2)?;
    /// assert_eq!(limiter.tokens(), 2.0);
    /// assert!(limiter.set_burst(0).is_err());
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn set_burst(&self, burst: u32) -> Result<(), BuildError> {
        let s = &*self.shared;
        let mut list = s.list();
        let p = params(list.rate, burst)?;
        list.burst = burst;
        self.apply(list, p);
        Ok(())
    }

    /// Puts `p` in force and re-times every pending reservation under it.
    fn apply(&self, mut list: MutexGuard<'_, WaitList>, p: Params) {
        let s = &*self.shared;
        let now = s.now_ns();
        let old = s.gcra.set_params(p, now);
        for e in list.entries.values_mut() {
            e.due = convert_due(e.due, old, p, now);
        }
        drop(list);
        s.changed.notify_waiters();
    }

    /// The rate in force.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::Unlimited.burst(1)?);
    /// assert_eq!(limiter.rate(), Rate::Unlimited);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn rate(&self) -> Rate {
        self.shared.list().rate
    }

    /// The burst in force.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(7)?);
    /// assert_eq!(limiter.burst(), 7);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn burst(&self) -> u32 {
        self.shared.list().burst
    }

    /// Tokens in the bucket now: fractional while refilling, negative while
    /// reservations or waits are pending (the debt they hold), infinite when unlimited.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1).burst(4)?);
    /// limiter.try_acquire_many(3).unwrap();
    /// assert!(limiter.tokens() >= 1.0 && limiter.tokens() < 1.1);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn tokens(&self) -> f64 {
        self.shared.tokens()
    }

    /// The name given at construction.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// assert_eq!(RateLimiter::new("api", Rate::Unlimited.burst(1)?).name(), "api");
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}
