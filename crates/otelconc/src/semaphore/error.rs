//! Errors of the semaphore: one per operation.

use std::fmt;

/// The largest total: `u32::MAX`, or tokio's limit where that is lower (32-bit).
pub(super) fn max_total() -> u64 {
    (u32::MAX as usize).min(tokio::sync::Semaphore::MAX_PERMITS) as u64
}

/// A permit count the semaphore cannot be built with.
///
/// # Examples
/// ```
/// use otelconc::semaphore::{BuildError, Semaphore};
/// assert_eq!(Semaphore::new("db", 0).unwrap_err(), BuildError::ZeroPermits);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A semaphore built with no permits could never grant one.
    ZeroPermits,
    /// More than `u32::MAX` permits (or tokio's limit, on 32-bit targets).
    TooManyPermits {
        /// The total asked for.
        total: u64,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroPermits => {
                f.write_str("semaphore: 0 permits; a semaphore must start with at least 1 permit")
            }
            Self::TooManyPermits { total } => TooManyPermits { total: *total }.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {}

/// [`add_permits`](super::Semaphore::add_permits) would take the total past
/// `u32::MAX` (or tokio's limit, on 32-bit targets); nothing changed.
///
/// # Examples
/// ```
/// use otelconc::semaphore::{Semaphore, TooManyPermits};
/// let sem = Semaphore::new("db", u32::MAX)?;
/// let err = sem.add_permits(1).unwrap_err();
/// assert_eq!(err, TooManyPermits { total: u64::from(u32::MAX) + 1 });
/// assert_eq!(sem.total_permits(), u32::MAX);
/// # Ok::<(), otelconc::semaphore::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPermits {
    /// The total the call would have made.
    pub total: u64,
}

impl fmt::Display for TooManyPermits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "semaphore: {} permits in total is more than the maximum ({} here)",
            self.total,
            max_total()
        )
    }
}

impl std::error::Error for TooManyPermits {}

/// The call asked for more permits than the semaphore holds in total, so it could
/// never be granted. Returned at once instead of waiting forever (and to a waiter when
/// the semaphore shrinks below its request).
///
/// # Examples
/// ```
/// use otelconc::semaphore::Semaphore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sem = Semaphore::new("db", 4)?;
/// let err = sem.acquire_many(5).await.unwrap_err();
/// assert_eq!((err.requested, err.total), (5, 4));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceedsTotal {
    /// Permits asked for.
    pub requested: u32,
    /// The semaphore's total when the call was refused.
    pub total: u32,
}

impl fmt::Display for ExceedsTotal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "semaphore: {} permits asked for, but it holds {} in total: the call could never pass",
            self.requested, self.total
        )
    }
}

impl std::error::Error for ExceedsTotal {}

/// Why a non-blocking acquire refused.
///
/// # Examples
/// ```
/// use otelconc::semaphore::{Semaphore, TryAcquireError};
/// let sem = Semaphore::new("db", 1)?;
/// let _held = sem.try_acquire()?;
/// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Unavailable);
/// assert!(matches!(sem.try_acquire_many(2), Err(TryAcquireError::ExceedsTotal(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough permits free now (or waiters are queued ahead).
    Unavailable,
    /// More permits than the total: never possible.
    ExceedsTotal(ExceedsTotal),
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable => f.write_str("semaphore: not enough permits free now"),
            Self::ExceedsTotal(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TryAcquireError {}
