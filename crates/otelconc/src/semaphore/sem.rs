//! [`Semaphore`], the handle callers take permits through, and its [`Builder`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::error::{BuildError, ExceedsTotal, TooManyPermits, TryAcquireError, max_total};
use super::permit::{OwnedSemaphorePermit, SemaphorePermit};
use super::state::Shared;
use crate::telemetry::Telemetry;

/// A weighted semaphore: callers take one or `n` permits at a time, wait in FIFO order, and
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
/// let permit = memory.acquire_many(30).await?;
/// assert_eq!(memory.available_permits(), 70);
/// drop(permit);
/// assert_eq!(memory.available_permits(), 100);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    shared: Arc<Shared>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.shared.name)
            .field("total", &self.shared.total())
            .field("available", &self.shared.sem.available_permits())
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
/// # Ok::<(), otelconc::semaphore::BuildError>(())
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
    /// [`BuildError::ZeroPermits`] for 0 permits; [`BuildError::TooManyPermits`] above
    /// tokio's limit (only possible on 32-bit targets).
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// assert!(Semaphore::builder("db", 0).build().is_err());
    /// ```
    pub fn build(self) -> Result<Semaphore, BuildError> {
        if self.permits == 0 {
            return Err(BuildError::ZeroPermits);
        }
        if u64::from(self.permits) > max_total() {
            return Err(BuildError::TooManyPermits {
                total: u64::from(self.permits),
            });
        }
        let t = self.telemetry.unwrap_or_else(Telemetry::global);
        Ok(Semaphore {
            shared: Shared::new(self.name, self.permits, &t),
        })
    }
}

impl Semaphore {
    /// A semaphore named `name` (the `otelconc.name` of its metrics) with `permits`
    /// permits, all free, and [`Telemetry::global`].
    ///
    /// # Errors
    /// [`BuildError::ZeroPermits`] for 0 permits.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 10)?;
    /// assert_eq!(sem.available_permits(), 10);
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn new(name: impl Into<Arc<str>>, permits: u32) -> Result<Self, BuildError> {
        Self::builder(name, permits).build()
    }

    /// A [`Builder`] for a semaphore with more options.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::builder("db", 2).build()?;
    /// # let _ = sem;
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn builder(name: impl Into<Arc<str>>, permits: u32) -> Builder {
        Builder {
            name: name.into(),
            permits,
            telemetry: None,
        }
    }

    /// Waits for one permit and returns a guard that gives it back when dropped.
    ///
    /// The same as [`acquire_many(1)`](Semaphore::acquire_many): waiters are served
    /// strictly first come, first served, whatever the number of permits they ask for.
    ///
    /// # Errors
    /// [`ExceedsTotal`] at once when the semaphore's total is 0 (every permit was
    /// forgotten).
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute permits in the order they
    /// were requested. Cancelling a call to `acquire` makes you lose your place
    /// in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sem = Semaphore::new("db", 2)?;
    /// let a = sem.acquire().await?;
    /// assert_eq!((a.num_permits(), sem.available_permits()), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, ExceedsTotal> {
        self.acquire_many(1).await
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
    /// This method uses a queue to fairly distribute permits in the order they
    /// were requested. Cancelling a call to `acquire_many` makes you lose your
    /// place in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sem = Semaphore::new("db", 3)?;
    /// let a = sem.acquire_many(2).await?;
    /// assert_eq!(a.num_permits(), 2);
    /// assert!(sem.acquire_many(4).await.is_err()); // never possible: fails at once
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, ExceedsTotal> {
        self.shared.take(n).await?;
        Ok(SemaphorePermit::new(&self.shared, n))
    }

    /// Like [`Semaphore::acquire`], with a guard that owns a handle on the semaphore
    /// (`'static`, to move into a task).
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute permits in the order they
    /// were requested. Cancelling a call to `acquire_owned` makes you lose your
    /// place in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sem = Semaphore::new("jobs", 2)?;
    /// let permit = sem.acquire_owned().await?;
    /// tokio::spawn(async move {
    ///     let _permit = permit; // released when the task ends
    /// })
    /// .await?;
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_owned(&self) -> Result<OwnedSemaphorePermit, ExceedsTotal> {
        self.acquire_many_owned(1).await
    }

    /// Like [`Semaphore::acquire_many`], with a guard that owns a handle on the
    /// semaphore (`'static`, to move into a task).
    ///
    /// # Errors
    /// As [`Semaphore::acquire_many`].
    ///
    /// # Cancel safety
    /// This method uses a queue to fairly distribute permits in the order they
    /// were requested. Cancelling a call to `acquire_many_owned` makes you lose
    /// your place in the queue.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cpu = Semaphore::new("transcode", 8)?;
    /// let heavy = cpu.acquire_many_owned(6).await?; // a 4K job weighs 6
    /// tokio::spawn(async move {
    ///     let _permit = heavy; // given back when the task ends
    /// })
    /// .await?;
    /// assert_eq!(cpu.available_permits(), 8);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_many_owned(&self, n: u32) -> Result<OwnedSemaphorePermit, ExceedsTotal> {
        self.shared.take(n).await?;
        Ok(OwnedSemaphorePermit::new(self.shared.clone(), n))
    }

    /// Takes one permit if it is free now (and nobody is queued ahead).
    ///
    /// The same as [`try_acquire_many(1)`](Semaphore::try_acquire_many).
    ///
    /// # Errors
    /// As [`Semaphore::try_acquire_many`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::{Semaphore, TryAcquireError};
    /// let sem = Semaphore::new("db", 1)?;
    /// let p = sem.try_acquire()?;
    /// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Unavailable);
    /// drop(p);
    /// assert!(sem.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
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
    /// let p = sem.try_acquire_many(2)?;
    /// assert!(sem.try_acquire_many(1).is_err());
    /// drop(p);
    /// assert!(sem.try_acquire_many(1).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.shared.try_take(n)?;
        Ok(SemaphorePermit::new(&self.shared, n))
    }

    /// Like [`Semaphore::try_acquire`], with a guard that owns a handle on the semaphore.
    ///
    /// # Errors
    /// As [`Semaphore::try_acquire_many`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 1)?;
    /// let p = sem.try_acquire_owned()?;
    /// assert_eq!(p.num_permits(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Like [`Semaphore::try_acquire_many`], with a guard that owns a handle on the
    /// semaphore.
    ///
    /// # Errors
    /// As [`Semaphore::try_acquire_many`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// let p = sem.try_acquire_many_owned(2)?;
    /// assert_eq!((p.num_permits(), sem.available_permits()), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_many_owned(&self, n: u32) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.shared.try_take(n)?;
        Ok(OwnedSemaphorePermit::new(self.shared.clone(), n))
    }

    /// Adds `n` permits to the total (and frees them), waking waiters they satisfy.
    ///
    /// # Errors
    /// [`TooManyPermits`] when the total would pass `u32::MAX` (or tokio's limit, on
    /// 32-bit targets); nothing changes then.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 1)?;
    /// sem.add_permits(4)?;
    /// assert_eq!((sem.total_permits(), sem.available_permits()), (5, 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_permits(&self, n: u32) -> Result<(), TooManyPermits> {
        let s = &*self.shared;
        s.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                let new = t + u64::from(n);
                (new <= max_total()).then_some(new)
            })
            .map_err(|t| TooManyPermits {
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
    /// let held = sem.try_acquire_many(2)?;
    /// assert_eq!(sem.forget_permits(4), 3); // only 3 were free
    /// assert_eq!(sem.total_permits(), 2);
    /// drop(held);
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget_permits(&self, n: u32) -> u32 {
        let s = &*self.shared;
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
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    #[inline]
    pub fn available_permits(&self) -> u32 {
        // Never above the total, which fits in u32.
        self.shared.sem.available_permits() as u32
    }

    /// Permits in total: free plus held.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// let _p = sem.try_acquire()?;
    /// assert_eq!(sem.total_permits(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn total_permits(&self) -> u32 {
        self.shared.total()
    }

    /// The name given at construction.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// assert_eq!(Semaphore::new("db", 1)?.name(), "db");
    /// # Ok::<(), otelconc::semaphore::BuildError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}
