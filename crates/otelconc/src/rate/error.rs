//! Errors of the rate limiter.

use std::fmt;
use std::time::Duration;

/// A rate or burst the limiter cannot use; returned when a [`Quota`](super::Quota) is
/// made ([`Quota::new`](super::Quota::new), [`Rate::burst`](super::Rate::burst)) and by
/// [`RateLimiter::set_rate`](super::RateLimiter::set_rate) /
/// [`set_burst`](super::RateLimiter::set_burst).
///
/// # Examples
/// ```
/// use otelconc::rate::{BuildError, Rate};
/// let err = Rate::per_second(-1).burst(10).unwrap_err();
/// assert!(matches!(err, BuildError::RateNotPositive(_)));
/// assert!(err.to_string().contains("positive"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// The rate is NaN.
    RateNan,
    /// The rate is infinite; ask for [`Rate::Unlimited`](super::Rate::Unlimited) instead.
    RateInfinite,
    /// The rate is zero or negative.
    RateNotPositive(f64),
    /// The rate is above 1e9 events per second (less than one nanosecond per event);
    /// ask for [`Rate::Unlimited`](super::Rate::Unlimited) instead.
    RateTooHigh(f64),
    /// The burst is zero: no call could ever pass.
    BurstZero,
    /// `burst / rate` (the time a full bucket takes to refill) is longer than about
    /// 208 days.
    WindowTooLong {
        /// The rate asked for.
        rate: f64,
        /// The burst asked for.
        burst: u32,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateNan => f.write_str("rate limiter: the rate is NaN"),
            Self::RateInfinite => {
                f.write_str("rate limiter: the rate is infinite; use Rate::Unlimited for no limit")
            }
            Self::RateNotPositive(r) => write!(
                f,
                "rate limiter: the rate must be positive events per second, got {r}"
            ),
            Self::RateTooHigh(r) => write!(
                f,
                "rate limiter: the rate {r}/s is above 1e9 events per second; use Rate::Unlimited for no limit"
            ),
            Self::BurstZero => f.write_str(
                "rate limiter: the burst must be at least 1 (a burst of 0 admits nothing)",
            ),
            Self::WindowTooLong { rate, burst } => write!(
                f,
                "rate limiter: a burst of {burst} at {rate}/s takes longer than 208 days to refill"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// The call asked for more tokens than the bucket can ever hold.
///
/// Returned at once, instead of waiting forever.
///
/// # Examples
/// ```
/// use otelconc::rate::{Rate, RateLimiter};
/// let lim = RateLimiter::new("api", Rate::per_second(10).burst(5)?);
/// let err = lim.reserve_many(6).unwrap_err();
/// assert_eq!((err.requested, err.burst), (6, 5));
/// # Ok::<(), otelconc::rate::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceedsBurst {
    /// Tokens asked for.
    pub requested: u32,
    /// The burst (bucket capacity) at the time of the call.
    pub burst: u32,
}

impl fmt::Display for ExceedsBurst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limiter: {} tokens asked for, but the burst is {}: the call could never pass",
            self.requested, self.burst
        )
    }
}

impl std::error::Error for ExceedsBurst {}

/// The bucket does not hold enough tokens now.
///
/// # Examples
/// ```
/// use otelconc::rate::{Rate, RateLimiter};
/// let lim = RateLimiter::new("api", Rate::per_second(10).burst(1)?);
/// lim.try_acquire().unwrap();
/// let err = lim.try_acquire().unwrap_err();
/// assert!(err.retry_after() > std::time::Duration::ZERO);
/// # Ok::<(), otelconc::rate::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub(super) wait_ns: u64,
}

impl RateLimited {
    /// How long until the tokens asked for are in the bucket, if nobody else takes them.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let lim = RateLimiter::new("api", Rate::per_second(1).burst(1)?);
    /// lim.try_acquire().unwrap();
    /// let wait = lim.try_acquire().unwrap_err().retry_after();
    /// assert!(wait <= std::time::Duration::from_secs(1));
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn retry_after(&self) -> Duration {
        Duration::from_nanos(self.wait_ns)
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: retry after {:?}",
            Duration::from_nanos(self.wait_ns)
        )
    }
}

impl std::error::Error for RateLimited {}

/// Why [`RateLimiter::try_acquire_many`](super::RateLimiter::try_acquire_many) refused.
///
/// # Examples
/// ```
/// use otelconc::rate::{Rate, RateLimiter, TryAcquireError};
/// let lim = RateLimiter::new("api", Rate::per_second(10).burst(2)?);
/// assert!(matches!(lim.try_acquire_many(3), Err(TryAcquireError::ExceedsBurst(_))));
/// lim.try_acquire_many(2).unwrap();
/// assert!(matches!(lim.try_acquire_many(1), Err(TryAcquireError::RateLimited(_))));
/// # Ok::<(), otelconc::rate::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough tokens now.
    RateLimited(RateLimited),
    /// More tokens than the burst: never possible.
    ExceedsBurst(ExceedsBurst),
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited(e) => e.fmt(f),
            Self::ExceedsBurst(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TryAcquireError {}
