//! Errors of the locks: one per operation.

use std::fmt;

/// A lock could not be built: the configuration is invalid.
///
/// # Examples
/// ```
/// use otelconc::sync::{BuildError, Mutex};
/// assert_eq!(Mutex::new("", 0).unwrap_err(), BuildError::EmptyName);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The name is empty; metrics and spans need it.
    EmptyName,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str(
                "otelconc lock: the name is empty; give every lock a name (it labels its metrics and spans)",
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// A `try_` call found the lock taken: held in a mode that excludes the call, or
/// awaited by earlier calls (which it does not overtake).
///
/// # Examples
/// ```
/// use otelconc::sync::Mutex;
/// let m = Mutex::new("cache", 0)?;
/// let _held = m.try_lock()?;
/// let err = m.try_lock().unwrap_err();
/// assert!(err.to_string().contains("would block"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryLockError(pub(super) ());

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "otelconc lock: taken (held, or awaited by earlier calls), so taking it now would block",
        )
    }
}

impl std::error::Error for TryLockError {}
