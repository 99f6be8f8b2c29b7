//! [`RateLimiter`], its builder, and [`Reservation`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use opentelemetry::{Context, KeyValue};
use tokio::sync::Notify;

use super::clock::{Clock, Epoch};
use super::error::{ConfigError, ExceedsBurst, RateLimited, TryAcquireError};
use super::gcra::{Gcra, MAX_TAU, Params, Take, convert_due};
use crate::stripes::Striped2;
use crate::sync::lock;
use crate::telemetry::names::rate as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
use crate::telemetry::{Combine, Histogram, Observation, Telemetry, WaitSpans};

/// How fast tokens come back: events per second, or no limit at all.
///
/// # Examples
/// ```
/// use otelconc::rate::Rate;
/// assert_eq!(Rate::per_second(2.5), Rate::PerSecond(2.5));
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
    /// `events` per second.
    ///
    /// # Examples
    /// ```
    /// let r = otelconc::rate::Rate::per_second(100.0);
    /// # let _ = r;
    /// ```
    pub const fn per_second(events: f64) -> Self {
        Self::PerSecond(events)
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

fn params(rate: Rate, burst: u32) -> Result<Params, ConfigError> {
    if burst == 0 {
        return Err(ConfigError::BurstZero);
    }
    let period = match rate {
        Rate::Unlimited => 0,
        Rate::PerSecond(r) if r.is_nan() => return Err(ConfigError::RateNan),
        Rate::PerSecond(r) if r.is_infinite() => return Err(ConfigError::RateInfinite),
        Rate::PerSecond(r) if r <= 0.0 => return Err(ConfigError::RateNotPositive(r)),
        Rate::PerSecond(r) if r > 1e9 => return Err(ConfigError::RateTooHigh(r)),
        Rate::PerSecond(r) => {
            let period = (1e9 / r).round();
            if period > (MAX_TAU / u64::from(burst)) as f64 {
                return Err(ConfigError::WindowTooLong { rate: r, burst });
            }
            (period as u64).max(1)
        }
    };
    Ok(Params {
        period,
        burst: u64::from(burst),
    })
}

struct Entry {
    /// When the reservation is due, ns since the epoch.
    due: u64,
}

struct WaitList {
    rate: Rate,
    burst: u32,
    next_id: u64,
    /// Pending (not yet due when made) reservations, in the order they were made,
    /// which is the order of their shares of the bucket's debt.
    entries: BTreeMap<u64, Entry>,
}

pub(super) struct Shared {
    gcra: Gcra,
    /// `a`: tokens admitted; `b`: tokens refused for want of tokens.
    counts: Striped2,
    refused_burst: AtomicU64,
    refused_cancelled: AtomicU64,
    waiting: AtomicI64,
    epoch: Epoch,
    list: Mutex<WaitList>,
    changed: Notify,
    name: Arc<str>,
    spans: WaitSpans,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    _observers: Observers,
}

struct Observers {
    _admitted: Observation,
    _refused: [Observation; 3],
    _waiters: Observation,
    _tokens: Observation,
}

impl Shared {
    /// Nanoseconds since the epoch.
    #[inline]
    fn now_ns(&self) -> u64 {
        self.epoch.now_ns()
    }

    fn list(&self) -> MutexGuard<'_, WaitList> {
        lock(&self.list)
    }
}

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
/// let limiter = RateLimiter::builder("outbound-api", Rate::per_second(10.0), 5)
///     .clock(Clock::tokio()) // follows tokio::time::pause()
///     .build()?;
/// for _ in 0..5 {
///     limiter.try_acquire()?; // the burst passes at once
/// }
/// assert!(limiter.try_acquire().is_err());
/// limiter.acquire().await; // waits ~100 ms for the next token
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

/// Builds a [`RateLimiter`] with options (the telemetry handle).
///
/// # Examples
/// ```
/// use otelconc::rate::{Rate, RateLimiter};
/// use otelconc::telemetry::Telemetry;
/// let limiter = RateLimiter::builder("db", Rate::per_second(500.0), 50)
///     .telemetry(Telemetry::global())
///     .build()?;
/// assert_eq!(limiter.burst(), 50);
/// # Ok::<(), otelconc::rate::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    name: Arc<str>,
    rate: Rate,
    burst: u32,
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
    /// let b = RateLimiter::builder("x", Rate::Unlimited, 1).clock(Clock::tokio());
    /// # let _ = b;
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
    /// let b = RateLimiter::builder("x", Rate::Unlimited, 1).telemetry(Telemetry::global());
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Builds the limiter with a full bucket.
    ///
    /// # Errors
    /// [`ConfigError`] when the rate is NaN, infinite (use [`Rate::Unlimited`]), zero or
    /// negative, above 1e9/s, when the burst is 0, or when `burst / rate` exceeds about
    /// 208 days.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{ConfigError, Rate, RateLimiter};
    /// let err = RateLimiter::builder("x", Rate::per_second(f64::NAN), 1).build().unwrap_err();
    /// assert_eq!(err, ConfigError::RateNan);
    /// ```
    pub fn build(self) -> Result<RateLimiter, ConfigError> {
        let p = params(self.rate, self.burst)?;
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let name = self.name;
        let name_kv = KeyValue::new(ATTR_NAME, name.clone());
        let with_name = |extra: Option<KeyValue>| {
            let mut v = vec![name_kv.clone()];
            v.extend(extra);
            v
        };
        let reason = |r: &'static str| Some(KeyValue::new(ATTR_REASON, r));
        let outcome = |o: &'static str| KeyValue::new(ATTR_OUTCOME, o);
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let t = &telemetry;
            let counter = |spec, attrs, f: fn(&Shared) -> u64| {
                let w = weak.clone();
                t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(&s)))
            };
            let admitted = counter(&names::ADMITTED, with_name(None), |s| s.counts.a());
            let limited = counter(
                &names::REFUSED,
                with_name(reason(names::REASON_RATE_LIMITED)),
                |s| s.counts.b(),
            );
            let burst = counter(
                &names::REFUSED,
                with_name(reason(names::REASON_EXCEEDS_BURST)),
                |s| s.refused_burst.load(Ordering::Relaxed),
            );
            let cancelled = counter(
                &names::REFUSED,
                with_name(reason(names::REASON_CANCELLED)),
                |s| s.refused_cancelled.load(Ordering::Relaxed),
            );
            let w = weak.clone();
            let waiters = t.observable_gauge(&names::WAITERS, with_name(None), move || {
                w.upgrade().map(|s| s.waiting.load(Ordering::Relaxed))
            });
            let w = weak.clone();
            let tokens =
                t.observable_gauge_f64(&names::TOKENS, with_name(None), Combine::Sum, move || {
                    let s = w.upgrade()?;
                    let v = s.gcra.tokens(s.now_ns());
                    v.is_finite().then_some(v)
                });
            Shared {
                gcra: Gcra::new(p),
                counts: Striped2::default(),
                refused_burst: AtomicU64::new(0),
                refused_cancelled: AtomicU64::new(0),
                waiting: AtomicI64::new(0),
                epoch: self.clock.clone().unwrap_or_default().epoch(),
                list: Mutex::new(WaitList {
                    rate: self.rate,
                    burst: self.burst,
                    next_id: 0,
                    entries: BTreeMap::new(),
                }),
                changed: Notify::new(),
                name: name.clone(),
                wait_ok: t.histogram(&names::WAIT, &[name_kv.clone(), outcome(names::OUTCOME_OK)]),
                wait_cancelled: t.histogram(
                    &names::WAIT,
                    &[name_kv.clone(), outcome(names::OUTCOME_CANCELLED)],
                ),
                spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, &name),
                _observers: Observers {
                    _admitted: admitted,
                    _refused: [limited, burst, cancelled],
                    _waiters: waiters,
                    _tokens: tokens,
                },
            }
        });
        Ok(RateLimiter { shared })
    }
}

impl RateLimiter {
    /// A limiter named `name` (the `otelconc.name` of its metrics) granting `rate`
    /// events per second with bursts of up to `burst`, starting full, with
    /// [`Telemetry::global`].
    ///
    /// # Errors
    /// See [`Builder::build`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{ConfigError, Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(100.0), 10)?;
    /// assert_eq!(limiter.tokens(), 10.0);
    /// assert_eq!(
    ///     RateLimiter::new("api", Rate::per_second(f64::INFINITY), 10).unwrap_err(),
    ///     ConfigError::RateInfinite,
    /// );
    /// assert_eq!(RateLimiter::new("api", Rate::Unlimited, 0).unwrap_err(), ConfigError::BurstZero);
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new(name: impl Into<Arc<str>>, rate: Rate, burst: u32) -> Result<Self, ConfigError> {
        Self::builder(name, rate, burst).build()
    }

    /// A [`Builder`] for a limiter with more options.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::builder("api", Rate::per_second(1.0), 1).build()?;
    /// # let _ = limiter;
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    pub fn builder(name: impl Into<Arc<str>>, rate: Rate, burst: u32) -> Builder {
        Builder {
            name: name.into(),
            rate,
            burst,
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
    /// let limiter = RateLimiter::new("api", Rate::per_second(1.0), 1)?;
    /// assert!(limiter.try_acquire().is_ok());
    /// assert!(limiter.try_acquire().is_err());
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<(), RateLimited> {
        let s = &*self.shared;
        match s.gcra.try_take(1, || s.now_ns()) {
            Take::Granted => {
                s.counts.add_a(1);
                Ok(())
            }
            Take::Wait(wait_ns) => {
                s.counts.add_b(1);
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
    /// let limiter = RateLimiter::new("api", Rate::per_second(1.0), 3)?;
    /// assert!(limiter.try_acquire_n(3).is_ok());
    /// assert!(limiter.try_acquire_n(1).is_err());
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire_n(&self, n: u32) -> Result<(), TryAcquireError> {
        let s = &*self.shared;
        match s.gcra.try_take(u64::from(n), || s.now_ns()) {
            Take::Granted => {
                s.counts.add_a(u64::from(n));
                Ok(())
            }
            Take::Wait(wait_ns) => {
                s.counts.add_b(u64::from(n));
                Err(TryAcquireError::RateLimited(RateLimited { wait_ns }))
            }
            Take::ExceedsBurst(burst) => {
                s.refused_burst.fetch_add(u64::from(n), Ordering::Relaxed);
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
    /// # Cancel safety
    /// Cancel-safe: dropping the future before it completes gives its token back (it
    /// counts as refused with reason `cancelled`), and the callers queued behind it move
    /// up.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), otelconc::rate::ConfigError> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(2.0), 1)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build()?;
    /// let start = tokio::time::Instant::now();
    /// limiter.acquire().await;
    /// limiter.acquire().await;
    /// assert!(start.elapsed() >= std::time::Duration::from_millis(500));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) {
        // n = 1 never exceeds the burst (at least 1).
        let _ = self.acquire_n(1).await;
    }

    /// Waits for `n` tokens (Go's `WaitN`), all at once.
    ///
    /// # Errors
    /// [`ExceedsBurst`] at once, without waiting, when `n` is above the burst.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future before it completes gives its `n` tokens back,
    /// and the callers queued behind it move up.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(10.0), 5)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build()?;
    /// limiter.acquire_n(5).await?;
    /// assert!(limiter.acquire_n(6).await.is_err()); // never possible: fails at once
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_n(&self, n: u32) -> Result<(), ExceedsBurst> {
        let s = &*self.shared;
        match s.gcra.try_take(u64::from(n), || s.now_ns()) {
            Take::Granted => {
                s.counts.add_a(u64::from(n));
                return Ok(());
            }
            Take::ExceedsBurst(burst) => {
                s.refused_burst.fetch_add(u64::from(n), Ordering::Relaxed);
                return Err(ExceedsBurst {
                    requested: n,
                    burst: burst as u32,
                });
            }
            Take::Wait(_) => {}
        }
        self.reserve_n(n)?.wait().await;
        Ok(())
    }

    /// Waits for one token, then runs `f` and returns what it returns.
    ///
    /// # Cancel safety
    /// Dropping the future while it waits gives the token back (see
    /// [`RateLimiter::acquire`]); dropping it while `f`'s future runs drops that future,
    /// and the token stays spent.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), otelconc::rate::ConfigError> {
    /// let limiter = RateLimiter::new("api", Rate::per_second(100.0), 1)?;
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
        self.acquire().await;
        f().await
    }

    /// Takes `n` tokens now, into debt if need be, and says when they are due (Go's
    /// `ReserveN`). The caller either acts after [`Reservation::delay`] (or awaits
    /// [`Reservation::wait`]), or calls [`Reservation::cancel`] to give the tokens back.
    /// Dropping the reservation keeps the tokens spent (commits it).
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
    /// let limiter = RateLimiter::builder("api", Rate::per_second(10.0), 1)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build()?;
    /// limiter.try_acquire()?;
    /// let r = limiter.reserve_n(1)?;
    /// assert_eq!(r.delay(), Duration::from_millis(100));
    /// if r.delay() > Duration::from_millis(50) {
    ///     r.cancel(); // too long: give the token back
    /// }
    /// assert!(limiter.tokens() >= 0.0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reserve_n(&self, n: u32) -> Result<Reservation<'_>, ExceedsBurst> {
        let s = &*self.shared;
        let mut list = s.list();
        let now = s.now_ns();
        match s.gcra.reserve(u64::from(n), now) {
            Err(burst) => {
                drop(list);
                s.refused_burst.fetch_add(u64::from(n), Ordering::Relaxed);
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
                Ok(Reservation {
                    limiter: self,
                    n,
                    id,
                    word,
                    reserved_at: now,
                    settled: false,
                })
            }
        }
    }

    /// Changes the rate now. The tokens in the bucket stay (a bucket in debt stays in
    /// debt, in tokens), and every pending wait and reservation is re-timed at the new
    /// rate: waiters wake earlier when the rate rises and later when it falls. Going to
    /// [`Rate::Unlimited`] releases every waiter; coming back from it starts full.
    ///
    /// # Errors
    /// [`ConfigError`] for a rate [`RateLimiter::new`] would refuse; the limiter is then
    /// unchanged.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1.0), 1)?;
    /// limiter.set_rate(Rate::per_second(50.0))?;
    /// assert_eq!(limiter.rate(), Rate::per_second(50.0));
    /// assert!(limiter.set_rate(Rate::per_second(-1.0)).is_err());
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    pub fn set_rate(&self, rate: Rate) -> Result<(), ConfigError> {
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
    /// [`ConfigError`] for a burst [`RateLimiter::new`] would refuse; the limiter is
    /// then unchanged.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1.0), 10)?;
    /// limiter.set_burst(2)?;
    /// assert_eq!(limiter.tokens(), 2.0);
    /// assert!(limiter.set_burst(0).is_err());
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    pub fn set_burst(&self, burst: u32) -> Result<(), ConfigError> {
        let s = &*self.shared;
        let mut list = s.list();
        let p = params(list.rate, burst)?;
        list.burst = burst;
        self.apply(list, p);
        Ok(())
    }

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
    /// let limiter = RateLimiter::new("api", Rate::Unlimited, 1)?;
    /// assert_eq!(limiter.rate(), Rate::Unlimited);
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    pub fn rate(&self) -> Rate {
        self.shared.list().rate
    }

    /// The burst in force.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(1.0), 7)?;
    /// assert_eq!(limiter.burst(), 7);
    /// # Ok::<(), otelconc::rate::ConfigError>(())
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
    /// let limiter = RateLimiter::new("api", Rate::per_second(1.0), 4)?;
    /// limiter.try_acquire_n(3).unwrap();
    /// assert!(limiter.tokens() >= 1.0 && limiter.tokens() < 1.1);
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    pub fn tokens(&self) -> f64 {
        self.shared.gcra.tokens(self.shared.now_ns())
    }

    /// The name given at construction.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// assert_eq!(RateLimiter::new("api", Rate::Unlimited, 1)?.name(), "api");
    /// # Ok::<(), otelconc::rate::ConfigError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}

/// Tokens taken by [`RateLimiter::reserve_n`], due now or later.
///
/// Dropping it commits the reservation (the tokens stay spent); [`cancel`](Self::cancel)
/// gives them back; [`wait`](Self::wait) sleeps until they are due.
///
/// # Examples
/// ```
/// use otelconc::rate::{Clock, Rate, RateLimiter};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder("api", Rate::per_second(10.0), 2)
///     .clock(Clock::tokio()) // follows tokio::time::pause()
///     .build()?;
/// let r = limiter.reserve_n(2)?;
/// assert!(r.delay().is_zero());
/// r.wait().await; // returns at once
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a reservation commits it; call .cancel() to give the tokens back"]
pub struct Reservation<'a> {
    limiter: &'a RateLimiter,
    n: u32,
    /// The wait-list entry, when the tokens were not due at once.
    id: Option<u64>,
    /// The bucket word right after this reservation.
    word: u64,
    reserved_at: u64,
    settled: bool,
}

impl fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("n", &self.n)
            .field("delay", &self.delay())
            .finish_non_exhaustive()
    }
}

impl Reservation<'_> {
    /// Tokens reserved.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Rate, RateLimiter};
    /// let limiter = RateLimiter::new("api", Rate::per_second(10.0), 3)?;
    /// assert_eq!(limiter.reserve_n(3).unwrap().tokens(), 3);
    /// # Ok::<(), otelconc::rate::ConfigError>(())
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
    /// let limiter = RateLimiter::builder("api", Rate::per_second(1.0), 1)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build()?;
    /// let first = limiter.reserve_n(1)?;
    /// let second = limiter.reserve_n(1)?;
    /// assert_eq!((first.delay(), second.delay()), (Duration::ZERO, Duration::from_secs(1)));
    /// limiter.set_rate(Rate::per_second(4.0))?;
    /// assert_eq!(second.delay(), Duration::from_millis(250));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay(&self) -> Duration {
        let Some(id) = self.id else {
            return Duration::ZERO;
        };
        let s = &*self.limiter.shared;
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
    /// let limiter = RateLimiter::builder("api", Rate::per_second(1.0), 1)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build()?;
    /// limiter.reserve_n(1)?.cancel();
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
        let s = &*self.limiter.shared;
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
        s.refused_cancelled.fetch_add(n, Ordering::Relaxed);
        if moved {
            s.changed.notify_waiters();
        }
        now
    }

    fn commit(&mut self) {
        self.settled = true;
        let s = &*self.limiter.shared;
        if let Some(id) = self.id {
            s.list().entries.remove(&id);
        }
        s.counts.add_a(u64::from(self.n));
    }

    /// Sleeps until the tokens are due, re-timed by any rate change or cancellation
    /// meanwhile, and commits the reservation.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future before it completes *cancels* the reservation
    /// (gives its tokens back, see [`Reservation::cancel`]); this is what makes
    /// [`RateLimiter::acquire`] cancel-safe.
    ///
    /// # Examples
    /// ```
    /// use otelconc::rate::{Clock, Rate, RateLimiter};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::builder("api", Rate::per_second(10.0), 1)
    ///     .clock(Clock::tokio()) // follows tokio::time::pause()
    ///     .build()?;
    /// limiter.try_acquire()?;
    /// let start = tokio::time::Instant::now();
    /// limiter.reserve_n(1)?.wait().await;
    /// assert_eq!(start.elapsed(), std::time::Duration::from_millis(100));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait(self) {
        let Some(id) = self.id else {
            return; // due at once; dropping commits
        };
        let s = &*self.limiter.shared;
        let span = s.spans.start(self.n);
        s.waiting.fetch_add(1, Ordering::Relaxed);
        let mut guard = WaitGuard {
            reservation: self,
            span,
            ended_at: None,
        };
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

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.commit();
        }
    }
}

/// Ends a wait: commits (done) or cancels (dropped early) the reservation, and records
/// the wait's duration, gauge and span.
struct WaitGuard<'a> {
    reservation: Reservation<'a>,
    span: Option<Context>,
    /// The clock reading at which the tokens were found due; `None` while waiting.
    ended_at: Option<u64>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let r = &mut self.reservation;
        let s = &*r.limiter.shared;
        // The wait ends at a clock reading already taken (no third one).
        let (outcome, hist, ended_at) = match self.ended_at {
            Some(t) => {
                r.commit();
                (names::OUTCOME_OK, &s.wait_ok, t)
            }
            None => {
                let t = r.cancel_inner();
                (names::OUTCOME_CANCELLED, &s.wait_cancelled, t)
            }
        };
        s.waiting.fetch_sub(1, Ordering::Relaxed);
        let waited = ended_at.saturating_sub(r.reserved_at);
        hist.record(waited as f64 * 1e-9);
        WaitSpans::end(self.span.take(), outcome);
    }
}
