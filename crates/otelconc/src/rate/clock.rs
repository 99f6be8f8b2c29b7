//! [`Clock`]: where the rate limiter reads the time.

use std::fmt;
use std::time::Duration;

/// The time source of a [`RateLimiter`](super::RateLimiter).
///
/// - [`Clock::monotonic`] (the default): the CPU's time-stamp counter through `quanta`,
///   as governor reads it; a few nanoseconds per read, where `std::time::Instant` costs
///   about 30 ns.
/// - [`Clock::tokio`]: [`tokio::time::Instant`], which `tokio::time::pause()` stops and
///   `tokio::time::advance` moves, so tests of rates and waits are exact and instant.
///   Use it in tests that pause time: the monotonic clock keeps running while tokio's
///   clock is paused.
///
/// # Examples
/// ```
/// use otelconc::rate::{Clock, Rate, RateLimiter};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), otelconc::rate::BuildError> {
/// let limiter = RateLimiter::builder("test", Rate::per_second(1).burst(1)?)
///     .clock(Clock::tokio())
///     .build();
/// limiter.try_acquire().unwrap();
/// tokio::time::advance(std::time::Duration::from_secs(1)).await;
/// assert!(limiter.try_acquire().is_ok());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Clock(Kind);

#[derive(Clone)]
enum Kind {
    Monotonic(quanta::Clock),
    Tokio,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::Monotonic(_) => "Clock::monotonic",
            Kind::Tokio => "Clock::tokio",
        })
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::monotonic()
    }
}

impl Clock {
    /// The CPU's monotonic counter (via `quanta`): the fast default.
    ///
    /// # Examples
    /// ```
    /// let c = otelconc::rate::Clock::monotonic();
    /// # let _ = c;
    /// ```
    pub fn monotonic() -> Self {
        Self(Kind::Monotonic(quanta::Clock::new()))
    }

    /// tokio's clock, which `tokio::time::pause()` controls: for deterministic tests.
    ///
    /// # Examples
    /// ```
    /// let c = otelconc::rate::Clock::tokio();
    /// # let _ = c;
    /// ```
    pub fn tokio() -> Self {
        Self(Kind::Tokio)
    }

    pub(super) fn epoch(&self) -> Epoch {
        Epoch {
            runtime: match self.0 {
                Kind::Monotonic(_) => None,
                Kind::Tokio => tokio::runtime::Handle::try_current().ok(),
            },
            raw: match &self.0 {
                Kind::Monotonic(c) => c.raw(),
                Kind::Tokio => 0,
            },
            tokio: tokio::time::Instant::now(),
            clock: self.clone(),
        }
    }
}

/// A clock and the instant a limiter counts from.
pub(super) struct Epoch {
    /// For the tokio clock: the runtime the limiter was built in, whose (maybe paused)
    /// clock is read from threads outside it, such as a metrics exporter's.
    runtime: Option<tokio::runtime::Handle>,
    raw: u64,
    tokio: tokio::time::Instant,
    clock: Clock,
}

impl Epoch {
    /// Nanoseconds since the epoch.
    #[inline]
    pub(super) fn now_ns(&self) -> u64 {
        match &self.clock.0 {
            Kind::Monotonic(c) => c.delta_as_nanos(self.raw, c.raw()),
            Kind::Tokio => {
                let _guard = match &self.runtime {
                    Some(rt) if tokio::runtime::Handle::try_current().is_err() => Some(rt.enter()),
                    _ => None,
                };
                tokio::time::Instant::now()
                    .saturating_duration_since(self.tokio)
                    .as_nanos()
                    .min(u128::from(u64::MAX)) as u64
            }
        }
    }

    /// The tokio instant at which `due` (ns since the epoch) falls, `now` being the
    /// current reading.
    pub(super) fn deadline(&self, due: u64, now: u64) -> tokio::time::Instant {
        match self.clock.0 {
            Kind::Monotonic(_) => {
                tokio::time::Instant::now() + Duration::from_nanos(due.saturating_sub(now))
            }
            Kind::Tokio => self.tokio + Duration::from_nanos(due),
        }
    }
}
