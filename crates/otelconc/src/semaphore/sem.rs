//! [`Semaphore`], its builder and its permits.

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;

use crossbeam_utils::CachePadded;
use opentelemetry::{Context, KeyValue};

use super::error::{ConfigError, ExceedsTotal, TryAcquireError};
use super::waiting::Waiting;
use crate::stripes::Striped2;
use crate::telemetry::names::semaphore as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
use crate::telemetry::{Histogram, Observation, Telemetry, WaitSpans};

/// The largest total: `u32::MAX`, or tokio's limit where that is lower (32-bit).
fn max_total() -> u64 {
    (u32::MAX as usize).min(tokio::sync::Semaphore::MAX_PERMITS) as u64
}

struct Inner {
    /// On cache lines of its own: its permit word and queue lock are the hottest
    /// memory of a contended semaphore, and anything beside them would slow it.
    sem: CachePadded<tokio::sync::Semaphore>,
    /// Permits in total (free plus held); changed by resizes and `forget`, read by
    /// every `acquire`, so kept off the lines written on every call.
    total: CachePadded<AtomicU64>,
    /// `a`: permits granted; `b`: permits refused as unavailable.
    counts: Striped2,
    refused_total: AtomicU64,
    refused_cancelled: AtomicU64,
    /// Waiters now, and a bound on their requests that shrinking never goes below.
    waiting: Waiting,
    name: Arc<str>,
    spans: WaitSpans,
    /// Whether an SDK reads the metrics; if not, waits are not timed (the histogram
    /// would drop the value).
    timed: bool,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    wait_refused: Histogram,
    _observers: Observers,
}

struct Observers {
    _admitted: Observation,
    _refused: [Observation; 3],
    _gauges: [Observation; 4],
}

impl Inner {
    fn total(&self) -> u32 {
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
    fn shrink(&self, by: u32) -> u32 {
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

    fn waiters(&self) -> i64 {
        self.waiting.count() as i64
    }

    fn exceeds(&self, n: u32) -> Option<ExceedsTotal> {
        let total = self.total();
        (n > total).then_some(ExceedsTotal {
            requested: n,
            total,
        })
    }

    fn refuse_total(&self, e: ExceedsTotal) -> ExceedsTotal {
        self.refused_total
            .fetch_add(u64::from(e.requested), Ordering::Relaxed);
        e
    }

    /// Takes `n` permits if they are free now; the caller wraps them in a guard.
    #[inline]
    fn try_take(&self, n: u32) -> Result<(), TryAcquireError> {
        match self.sem.try_acquire_many(n) {
            Ok(p) => {
                p.forget(); // released by our guard
                self.counts.add_a(u64::from(n));
                Ok(())
            }
            Err(_) => match self.exceeds(n) {
                Some(e) => Err(TryAcquireError::ExceedsTotal(self.refuse_total(e))),
                None => {
                    self.counts.add_b(u64::from(n));
                    Err(TryAcquireError::Unavailable)
                }
            },
        }
    }

    /// Waits for `n` permits; the caller wraps them in a guard.
    async fn take(&self, n: u32) -> Result<(), ExceedsTotal> {
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
                        guard.end = Refused;
                        return Poll::Ready(Err(self.refuse_total(e)));
                    }
                }
                return Poll::Pending;
            };
            // The semaphore is never closed, so acquiring cannot fail.
            if let Ok(p) = r {
                p.forget(); // released by our guard
            }
            self.counts.add_a(u64::from(n));
            if let Some(guard) = &mut wait {
                guard.end = Granted;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Starts timing (and, inside a sampled trace, tracing) a wait for `n` permits,
    /// and announces the request before the caller reads the total (see `shrink`).
    #[inline]
    fn start_wait(&self, n: u32) -> WaitGuard<'_> {
        let span = self.spans.start(n);
        self.waiting.enter(n);
        WaitGuard {
            inner: self,
            n,
            start: self.timed.then(quanta::Instant::now),
            span,
            end: Cancelled,
        }
    }
}

/// How a wait ended.
#[derive(Clone, Copy)]
enum End {
    Granted,
    Refused,
    /// Dropped before either (the default until the wait says otherwise).
    Cancelled,
}
use End::{Cancelled, Granted, Refused};

/// Ends a wait: records its duration and outcome, the waiter gauge and the span.
struct WaitGuard<'a> {
    inner: &'a Inner,
    n: u32,
    start: Option<quanta::Instant>,
    span: Option<Context>,
    end: End,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let s = self.inner;
        s.waiting.leave();
        let (hist, outcome) = match self.end {
            Granted => (&s.wait_ok, names::OUTCOME_OK),
            Refused => (&s.wait_refused, names::OUTCOME_REFUSED),
            Cancelled => {
                s.refused_cancelled
                    .fetch_add(u64::from(self.n), Ordering::Relaxed);
                (&s.wait_cancelled, names::OUTCOME_CANCELLED)
            }
        };
        if let Some(start) = self.start {
            hist.record(start.elapsed().as_secs_f64());
        }
        WaitSpans::end(self.span.take(), outcome);
    }
}

/// A weighted semaphore: callers take `n` permits at a time, wait in FIFO order, and
/// give the permits back when their guard drops. Cloning is cheap; clones share the
/// permits.
///
/// See the [module docs](super) for semantics, costs and telemetry.
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // At most 100 MB of request bodies in memory at once, weighted by size in MB.
/// let memory = Semaphore::new("body-memory", 100)?;
/// let permit = memory.acquire(30).await?;
/// assert_eq!(memory.available_permits(), 70);
/// drop(permit);
/// assert_eq!(memory.available_permits(), 100);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Arc<Inner>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.inner.name)
            .field("total", &self.inner.total())
            .field("available", &self.inner.sem.available_permits())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Semaphore`] with options (the telemetry handle).
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// use otelconc::telemetry::Telemetry;
/// let sem = Semaphore::builder("db", 8).telemetry(Telemetry::global()).build()?;
/// assert_eq!(sem.total_permits(), 8);
/// # Ok::<(), otelconc::semaphore::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    name: Arc<str>,
    permits: u32,
    telemetry: Option<Telemetry>,
}

impl Builder {
    /// The meter and tracer to use (default: [`Telemetry::global`] at build time).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// use otelconc::telemetry::Telemetry;
    /// let b = Semaphore::builder("db", 1).telemetry(Telemetry::global());
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Builds the semaphore with all its permits free.
    ///
    /// # Errors
    /// [`ConfigError::ZeroPermits`] for 0 permits; [`ConfigError::TooManyPermits`] above
    /// tokio's limit (only possible on 32-bit targets).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// assert!(Semaphore::builder("db", 0).build().is_err());
    /// ```
    pub fn build(self) -> Result<Semaphore, ConfigError> {
        if self.permits == 0 {
            return Err(ConfigError::ZeroPermits);
        }
        if u64::from(self.permits) > max_total() {
            return Err(ConfigError::TooManyPermits {
                total: u64::from(self.permits),
            });
        }
        let t = self.telemetry.unwrap_or_else(Telemetry::global);
        let name_kv = KeyValue::new(ATTR_NAME, self.name.clone());
        let with = |extra: Option<KeyValue>| {
            let mut v = vec![name_kv.clone()];
            v.extend(extra);
            v
        };
        let reason = |r: &'static str| Some(KeyValue::new(ATTR_REASON, r));
        let hist = |o: &'static str| {
            t.histogram(
                &names::WAIT,
                &[name_kv.clone(), KeyValue::new(ATTR_OUTCOME, o)],
            )
        };
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let counter = |spec, attrs, f: fn(&Inner) -> u64| {
                let w = weak.clone();
                t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(&s)))
            };
            let gauge = |spec, f: fn(&Inner) -> i64| {
                let w = weak.clone();
                t.observable_gauge(spec, with(None), move || w.upgrade().map(|s| f(&s)))
            };
            let available = |s: &Inner| s.sem.available_permits() as i64;
            let observers = Observers {
                _admitted: counter(&names::ADMITTED, with(None), |s| s.counts.a()),
                _refused: [
                    counter(
                        &names::REFUSED,
                        with(reason(names::REASON_UNAVAILABLE)),
                        |s| s.counts.b(),
                    ),
                    counter(
                        &names::REFUSED,
                        with(reason(names::REASON_EXCEEDS_TOTAL)),
                        |s| s.refused_total.load(Ordering::Relaxed),
                    ),
                    counter(
                        &names::REFUSED,
                        with(reason(names::REASON_CANCELLED)),
                        |s| s.refused_cancelled.load(Ordering::Relaxed),
                    ),
                ],
                _gauges: [
                    gauge(&names::WAITERS, Inner::waiters),
                    gauge(&names::AVAILABLE, available),
                    gauge(&names::IN_USE, |s| {
                        i64::from(s.total()) - s.sem.available_permits() as i64
                    }),
                    gauge(&names::LIMIT, |s| i64::from(s.total())),
                ],
            };
            Inner {
                sem: CachePadded::new(tokio::sync::Semaphore::new(self.permits as usize)),
                total: CachePadded::new(AtomicU64::new(u64::from(self.permits))),
                counts: Striped2::default(),
                refused_total: AtomicU64::new(0),
                refused_cancelled: AtomicU64::new(0),
                waiting: Waiting::default(),
                name: self.name.clone(),
                spans: WaitSpans::new(&t, &names::WAIT_SPAN, names::ATTR_REQUESTED, &self.name),
                wait_ok: hist(names::OUTCOME_OK),
                wait_cancelled: hist(names::OUTCOME_CANCELLED),
                wait_refused: hist(names::OUTCOME_REFUSED),
                // A meter without an SDK drops the callbacks at once.
                timed: observers._admitted.observed(),
                _observers: observers,
            }
        });
        Ok(Semaphore { inner })
    }
}

impl Semaphore {
    /// A semaphore named `name` (the `otelconc.name` of its metrics) with `permits`
    /// permits, all free, and [`Telemetry::global`].
    ///
    /// # Errors
    /// [`ConfigError::ZeroPermits`] for 0 permits.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 10)?;
    /// assert_eq!(sem.available_permits(), 10);
    /// # Ok::<(), otelconc::semaphore::ConfigError>(())
    /// ```
    pub fn new(name: impl Into<Arc<str>>, permits: u32) -> Result<Self, ConfigError> {
        Self::builder(name, permits).build()
    }

    /// A [`Builder`] for a semaphore with more options.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::builder("db", 2).build()?;
    /// # let _ = sem;
    /// # Ok::<(), otelconc::semaphore::ConfigError>(())
    /// ```
    pub fn builder(name: impl Into<Arc<str>>, permits: u32) -> Builder {
        Builder {
            name: name.into(),
            permits,
            telemetry: None,
        }
    }

    /// Waits for `n` permits and returns a guard that gives them back when dropped.
    ///
    /// Waiters are served strictly first come, first served, whatever their `n`: a
    /// waiter asking for many permits at the head of the queue holds back smaller
    /// requests behind it (as in Go's `x/sync/semaphore`), so large requests cannot
    /// starve. `n == 0` passes at once.
    ///
    /// # Errors
    /// [`ExceedsTotal`] at once when `n` is above the semaphore's total. Once waiting,
    /// a call cannot be stranded: the total never shrinks below a waiting request.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future before it completes takes no permits, gives back
    /// any it was partly assigned, and leaves the queue (the callers behind it move up).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sem = Semaphore::new("db", 3)?;
    /// let a = sem.acquire(2).await?;
    /// assert_eq!(a.num_permits(), 2);
    /// assert!(sem.acquire(4).await.is_err()); // never possible: fails at once
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self, n: u32) -> Result<SemaphorePermit<'_>, ExceedsTotal> {
        self.inner.take(n).await?;
        Ok(SemaphorePermit {
            inner: &self.inner,
            n,
        })
    }

    /// Like [`Semaphore::acquire`], with a guard that owns a handle on the semaphore
    /// (`'static`, to move into a task).
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancel safety
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sem = Semaphore::new("jobs", 2)?;
    /// let permit = sem.acquire_owned(1).await?;
    /// tokio::spawn(async move {
    ///     let _permit = permit; // released when the task ends
    /// })
    /// .await?;
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_owned(&self, n: u32) -> Result<OwnedSemaphorePermit, ExceedsTotal> {
        self.inner.take(n).await?;
        Ok(OwnedSemaphorePermit {
            inner: self.inner.clone(),
            n,
        })
    }

    /// Takes `n` permits if they are free now (and nobody is queued ahead).
    ///
    /// Cost: tokio's `try_acquire_many` plus one counter add on a per-thread stripe.
    ///
    /// # Errors
    /// [`TryAcquireError::Unavailable`] when they are not free;
    /// [`TryAcquireError::ExceedsTotal`] when `n` is above the total.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 2)?;
    /// let p = sem.try_acquire(2)?;
    /// assert!(sem.try_acquire(1).is_err());
    /// drop(p);
    /// assert!(sem.try_acquire(1).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.inner.try_take(n)?;
        Ok(SemaphorePermit {
            inner: &self.inner,
            n,
        })
    }

    /// Like [`Semaphore::try_acquire`], with a guard that owns a handle on the semaphore.
    ///
    /// # Errors
    /// As [`Semaphore::try_acquire`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 1)?;
    /// let p = sem.try_acquire_owned(1)?;
    /// assert_eq!(p.num_permits(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire_owned(&self, n: u32) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.inner.try_take(n)?;
        Ok(OwnedSemaphorePermit {
            inner: self.inner.clone(),
            n,
        })
    }

    /// Adds `n` permits to the total (and frees them), waking waiters they satisfy.
    ///
    /// # Errors
    /// [`ConfigError::TooManyPermits`] when the total would pass `u32::MAX` (or tokio's
    /// limit, on 32-bit targets); nothing changes then.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 1)?;
    /// sem.add_permits(4)?;
    /// assert_eq!((sem.total_permits(), sem.available_permits()), (5, 5));
    /// # Ok::<(), otelconc::semaphore::ConfigError>(())
    /// ```
    pub fn add_permits(&self, n: u32) -> Result<(), ConfigError> {
        let s = &*self.inner;
        s.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                let new = t + u64::from(n);
                (new <= max_total()).then_some(new)
            })
            .map_err(|t| ConfigError::TooManyPermits {
                total: t + u64::from(n),
            })?;
        s.sem.add_permits(n as usize);
        Ok(())
    }

    /// Removes up to `n` *free* permits from the total and returns how many it removed.
    /// Held permits are not touched (to shrink by held permits too, call
    /// [`SemaphorePermit::forget`] on their guards), and the total never drops below
    /// the largest request still waiting, so no waiter is left waiting for more than
    /// the semaphore holds; new calls asking for more than the new total fail at once.
    /// While calls keep waiting it may remove fewer: it keeps up to the largest request
    /// made since a shrink last found nobody waiting.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 5)?;
    /// let held = sem.try_acquire(2)?;
    /// assert_eq!(sem.forget_permits(4), 3); // only 3 were free
    /// assert_eq!(sem.total_permits(), 2);
    /// drop(held);
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget_permits(&self, n: u32) -> u32 {
        let s = &*self.inner;
        // At most `n`, so it fits.
        let gone = s.sem.forget_permits(n as usize) as u32;
        s.shrink(gone)
    }

    /// Permits free now.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// assert_eq!(Semaphore::new("db", 3)?.available_permits(), 3);
    /// # Ok::<(), otelconc::semaphore::ConfigError>(())
    /// ```
    pub fn available_permits(&self) -> u32 {
        // Never above the total, which fits in u32.
        self.inner.sem.available_permits() as u32
    }

    /// Permits in total: free plus held.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// let _p = sem.try_acquire(1)?;
    /// assert_eq!(sem.total_permits(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn total_permits(&self) -> u32 {
        self.inner.total()
    }

    /// The name given at construction.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// assert_eq!(Semaphore::new("db", 1)?.name(), "db");
    /// # Ok::<(), otelconc::semaphore::ConfigError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

/// Permits taken from a [`Semaphore`]; given back when dropped.
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// let sem = Semaphore::new("db", 2)?;
/// {
///     let _p = sem.try_acquire(2)?;
///     assert_eq!(sem.available_permits(), 0);
/// }
/// assert_eq!(sem.available_permits(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permits are given back as soon as the guard drops"]
pub struct SemaphorePermit<'a> {
    inner: &'a Inner,
    n: u32,
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("semaphore", &self.inner.name)
            .field("permits", &self.n)
            .finish()
    }
}

impl SemaphorePermit<'_> {
    /// Permits this guard holds.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// assert_eq!(sem.try_acquire(3)?.num_permits(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn num_permits(&self) -> u32 {
        self.n
    }

    /// Keeps the permits out of the semaphore for good: the total shrinks by them,
    /// except by those a waiter needs (the total never drops below the largest request
    /// still waiting; those permits are given back instead).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// sem.try_acquire(1)?.forget();
    /// assert_eq!((sem.total_permits(), sem.available_permits()), (2, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(mut self) {
        let _ = self.inner.shrink(std::mem::take(&mut self.n));
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.inner.sem.add_permits(self.n as usize);
        }
    }
}

/// Permits taken from a [`Semaphore`] by an `*_owned` call: `'static`, given back
/// when dropped.
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// let sem = Semaphore::new("db", 1)?;
/// let p = sem.try_acquire_owned(1)?;
/// drop(p);
/// assert_eq!(sem.available_permits(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permits are given back as soon as the guard drops"]
pub struct OwnedSemaphorePermit {
    inner: Arc<Inner>,
    n: u32,
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("semaphore", &self.inner.name)
            .field("permits", &self.n)
            .finish()
    }
}

impl OwnedSemaphorePermit {
    /// Permits this guard holds.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// assert_eq!(sem.try_acquire_owned(2)?.num_permits(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn num_permits(&self) -> u32 {
        self.n
    }

    /// Keeps the permits out of the semaphore for good, as [`SemaphorePermit::forget`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// sem.try_acquire_owned(3)?.forget();
    /// assert_eq!(sem.total_permits(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(mut self) {
        let _ = self.inner.shrink(std::mem::take(&mut self.n));
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if self.n > 0 {
            self.inner.sem.add_permits(self.n as usize);
        }
    }
}
