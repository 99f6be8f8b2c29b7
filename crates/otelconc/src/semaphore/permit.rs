//! The permit guards: [`SemaphorePermit`] and [`OwnedSemaphorePermit`], which give
//! their permits back when dropped.

use std::fmt;
use std::sync::Arc;

use super::state::Shared;

/// Permits taken from a [`Semaphore`](super::Semaphore); given back when dropped.
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// let sem = Semaphore::new("db", 2)?;
/// {
///     let _p = sem.try_acquire_many(2)?;
///     assert_eq!(sem.available_permits(), 0);
/// }
/// assert_eq!(sem.available_permits(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permits are given back as soon as the guard drops"]
pub struct SemaphorePermit<'a> {
    shared: &'a Shared,
    n: u32,
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("semaphore", &self.shared.name)
            .field("permits", &self.n)
            .finish()
    }
}

impl<'a> SemaphorePermit<'a> {
    /// Wraps `n` permits already taken from `shared`.
    pub(super) fn new(shared: &'a Shared, n: u32) -> Self {
        Self { shared, n }
    }

    /// Permits this guard holds.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// assert_eq!(sem.try_acquire_many(3)?.num_permits(), 3);
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
    /// sem.try_acquire()?.forget();
    /// assert_eq!((sem.total_permits(), sem.available_permits()), (2, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(mut self) {
        let _ = self.shared.shrink(std::mem::take(&mut self.n));
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.shared.sem.add_permits(self.n as usize);
        }
    }
}

/// Permits taken from a [`Semaphore`](super::Semaphore) by an `*_owned` call: `'static`, given back
/// when dropped.
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// let sem = Semaphore::new("db", 1)?;
/// let p = sem.try_acquire_owned()?;
/// drop(p);
/// assert_eq!(sem.available_permits(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permits are given back as soon as the guard drops"]
pub struct OwnedSemaphorePermit {
    shared: Arc<Shared>,
    n: u32,
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("semaphore", &self.shared.name)
            .field("permits", &self.n)
            .finish()
    }
}

impl OwnedSemaphorePermit {
    /// Wraps `n` permits already taken from `shared`.
    pub(super) fn new(shared: Arc<Shared>, n: u32) -> Self {
        Self { shared, n }
    }

    /// Permits this guard holds.
    ///
    /// # Examples
    /// ```
    /// use otelconc::semaphore::Semaphore;
    /// let sem = Semaphore::new("db", 3)?;
    /// assert_eq!(sem.try_acquire_many_owned(2)?.num_permits(), 2);
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
    /// sem.try_acquire_many_owned(3)?.forget();
    /// assert_eq!(sem.total_permits(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(mut self) {
        let _ = self.shared.shrink(std::mem::take(&mut self.n));
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if self.n > 0 {
            self.shared.sem.add_permits(self.n as usize);
        }
    }
}
