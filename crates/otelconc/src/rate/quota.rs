//! [`Rate`] and [`Quota`]: how fast tokens come back and how many the bucket holds,
//! checked once, where the numbers are written.

use std::fmt;
use std::time::Duration;

use super::error::BuildError;
use super::gcra::{MAX_TAU, Params};

/// How fast tokens come back: events per second, or no limit at all.
///
/// Make one with [`Rate::per_second`] or [`Rate::every`], then give it a burst with
/// [`Rate::burst`] to get the [`Quota`] a [`RateLimiter`](super::RateLimiter) is built
/// from. A `Rate` alone is not checked; [`Rate::burst`] and
/// [`RateLimiter::set_rate`](super::RateLimiter::set_rate) check it.
///
/// # Examples
/// ```
/// use otelconc::rate::Rate;
/// use std::time::Duration;
/// assert_eq!(Rate::per_second(2.5), Rate::PerSecond(2.5));
/// assert_eq!(Rate::per_second(50), Rate::PerSecond(50.0));
/// assert_eq!(Rate::every(Duration::from_secs(2)), Rate::per_second(0.5));
/// assert_ne!(Rate::Unlimited, Rate::per_second(1e9));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// This many events per second: positive, finite, at most 1e9. It is applied as a
    /// whole number of nanoseconds between tokens (as governor does), so rates whose
    /// period is not a whole number of nanoseconds are rounded to the nearest one.
    PerSecond(f64),
    /// No limit: every call passes at once, and the burst only bounds `n`.
    Unlimited,
}

impl Rate {
    /// `events` per second: a whole number (`Rate::per_second(50)`) or a fraction
    /// (`Rate::per_second(0.5)`, one every two seconds).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::Rate;
    /// assert_eq!(Rate::per_second(100), Rate::PerSecond(100.0));
    /// assert_eq!(Rate::per_second(0.5), Rate::PerSecond(0.5));
    /// ```
    pub fn per_second(events: impl Into<f64>) -> Self {
        Self::PerSecond(events.into())
    }

    /// One event every `period`: `Rate::every(Duration::from_millis(250))` is 4 per
    /// second. A zero period is an infinite rate, which [`Rate::burst`] refuses (ask for
    /// [`Rate::Unlimited`]).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::Rate;
    /// use std::time::Duration;
    /// assert_eq!(Rate::every(Duration::from_millis(250)), Rate::per_second(4));
    /// assert!(Rate::every(Duration::ZERO).burst(1).is_err());
    /// ```
    pub fn every(period: Duration) -> Self {
        Self::PerSecond(1.0 / period.as_secs_f64())
    }

    /// This rate with bursts of up to `burst` tokens: the [`Quota`] a limiter is built
    /// from. The same as [`Quota::new`]`(self, burst)`.
    ///
    /// # Errors
    /// [`BuildError`] when the rate is NaN, infinite (use [`Rate::Unlimited`]), zero or
    /// negative, above 1e9/s, when the burst is 0, or when `burst / rate` exceeds about
    /// 208 days.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{BuildError, Rate};
    /// let quota = Rate::per_second(50).burst(10)?;
    /// assert_eq!((quota.rate(), quota.burst()), (Rate::per_second(50), 10));
    /// assert_eq!(Rate::per_second(50).burst(0), Err(BuildError::BurstZero));
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn burst(self, burst: u32) -> Result<Quota, BuildError> {
        Quota::new(self, burst)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PerSecond(r) => write!(f, "{r}/s"),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A checked rate and burst: what a [`RateLimiter`](super::RateLimiter) is built from.
///
/// A `Quota` always holds a rate and burst the limiter can use, so building a limiter
/// from one cannot fail: bad numbers are refused here, where they are written.
///
/// # Examples
/// ```
/// use otelconc::rate::{BuildError, Quota, Rate};
/// let quota = Quota::new(Rate::per_second(50), 10)?; // or Rate::per_second(50).burst(10)?
/// assert_eq!(quota, Rate::per_second(50).burst(10)?);
/// assert_eq!(
///     Quota::new(Rate::per_second(f64::NAN), 10).unwrap_err(),
///     BuildError::RateNan,
/// );
/// # Ok::<(), BuildError>(())
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct Quota {
    rate: Rate,
    burst: u32,
    params: Params,
}

impl Quota {
    /// `rate` with bursts of up to `burst` tokens.
    ///
    /// # Errors
    /// [`BuildError`] when the rate is NaN, infinite (use [`Rate::Unlimited`]), zero or
    /// negative, above 1e9/s, when the burst is 0, or when `burst / rate` exceeds about
    /// 208 days.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{BuildError, Quota, Rate};
    /// assert!(Quota::new(Rate::Unlimited, 1).is_ok());
    /// assert_eq!(Quota::new(Rate::Unlimited, 0).unwrap_err(), BuildError::BurstZero);
    /// ```
    pub fn new(rate: Rate, burst: u32) -> Result<Self, BuildError> {
        Ok(Self {
            rate,
            burst,
            params: params(rate, burst)?,
        })
    }

    /// The rate.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::Rate;
    /// assert_eq!(Rate::Unlimited.burst(3)?.rate(), Rate::Unlimited);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The burst: how many tokens the bucket holds when full (at least 1).
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::Rate;
    /// assert_eq!(Rate::per_second(1).burst(3)?.burst(), 3);
    /// # Ok::<(), otelconc::rate::BuildError>(())
    /// ```
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The rate and burst as the bucket uses them.
    pub(super) fn params(&self) -> Params {
        self.params
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish()
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, bursts of {}", self.rate, self.burst)
    }
}

/// Checks `rate` and `burst` and turns them into the bucket's parameters.
pub(super) fn params(rate: Rate, burst: u32) -> Result<Params, BuildError> {
    if burst == 0 {
        return Err(BuildError::BurstZero);
    }
    let period = match rate {
        Rate::Unlimited => 0,
        Rate::PerSecond(r) if r.is_nan() => return Err(BuildError::RateNan),
        Rate::PerSecond(r) if r.is_infinite() => return Err(BuildError::RateInfinite),
        Rate::PerSecond(r) if r <= 0.0 => return Err(BuildError::RateNotPositive(r)),
        Rate::PerSecond(r) if r > 1e9 => return Err(BuildError::RateTooHigh(r)),
        Rate::PerSecond(r) => {
            let period = (1e9 / r).round();
            if period > (MAX_TAU / u64::from(burst)) as f64 {
                return Err(BuildError::WindowTooLong { rate: r, burst });
            }
            (period as u64).max(1)
        }
    };
    Ok(Params {
        period,
        burst: u64::from(burst),
    })
}
