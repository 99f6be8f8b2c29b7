//! Errors of the fan module.

use std::error::Error;
use std::fmt;

/// How one item of [`fan_out_items`](super::fan_out_items) failed.
///
/// # Examples
/// ```
/// use futures::TryStreamExt;
/// use otelconc::fan::{ItemError, fan_out_items};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out: Result<Vec<u32>, _> = fan_out_items([1, 2, 3], 2, |x| async move {
///     if x == 2 { Err("two") } else { Ok(x) }
/// })
/// .unwrap()
/// .try_collect()
/// .await;
/// assert!(matches!(out, Err(ItemError::Failed { index: 1, error: "two" })));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemError<E> {
    /// The item's future returned `Err(error)`.
    Failed {
        /// The item's position in the input, from 0.
        index: usize,
        /// What the future returned.
        error: E,
    },
    /// The item's future (or the closure building it) panicked.
    Panicked {
        /// The item's position in the input, from 0.
        index: usize,
        /// The panic message.
        message: String,
    },
}

impl<E> ItemError<E> {
    /// The item's position in the input, from 0.
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::fan::ItemError::<()>::Panicked { index: 4, message: "x".into() };
    /// assert_eq!(e.index(), 4);
    /// ```
    pub fn index(&self) -> usize {
        match self {
            Self::Failed { index, .. } | Self::Panicked { index, .. } => *index,
        }
    }

    /// The error the item's future returned, if it returned one.
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::fan::ItemError::Failed { index: 0, error: 5 };
    /// assert_eq!(e.into_error(), Some(5));
    /// ```
    pub fn into_error(self) -> Option<E> {
        match self {
            Self::Failed { error, .. } => Some(error),
            Self::Panicked { .. } => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ItemError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { index, error } => write!(f, "item {index} failed: {error}"),
            Self::Panicked { index, message } => write!(f, "item {index} panicked: {message}"),
        }
    }
}

/// Any `E` that prints (`String`, `&str`, `anyhow::Error`, ...) makes an error type, so
/// `?` works without wrapping; the message includes `E`'s own.
impl<E: fmt::Debug + fmt::Display> Error for ItemError<E> {}

/// A fan-out or fan-in was asked for a size that could never make progress: rejected up
/// front (the `futures` crate's `buffered(0)` hangs forever instead).
///
/// # Examples
/// ```
/// use otelconc::fan::{BuildError, FanIn, fan_out_items};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = fan_out_items([1], 0, |x| async move { Ok::<_, String>(x) }).unwrap_err();
/// assert_eq!(err, BuildError::ZeroConcurrency);
/// assert_eq!(err.to_string(), "fan_out_items: concurrency must be at least 1 (0 would never start an item)");
/// let err = FanIn::<u8>::builder("events").capacity(0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroCapacity);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A concurrency of 0 for [`fan_out_items`](super::fan_out_items) or
    /// [`fan_out_items_unordered`](super::fan_out_items_unordered) (or the
    /// [`FanOut`](super::FanOut) methods): it would never start an item.
    ZeroConcurrency,
    /// A capacity of 0 for [`FanInBuilder::capacity`](super::FanInBuilder::capacity): it
    /// could never hand an item over.
    ZeroCapacity,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroConcurrency => {
                "fan_out_items: concurrency must be at least 1 (0 would never start an item)"
            }
            Self::ZeroCapacity => {
                "fan_in: capacity must be at least 1 (0 could never hand an item over)"
            }
        })
    }
}

impl Error for BuildError {}
