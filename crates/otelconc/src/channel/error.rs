//! One small error type per operation; every send error hands the message back.

use std::error::Error;
use std::fmt;

macro_rules! debug_without_t {
    ($name:ident, $text:literal) => {
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($text)
            }
        }
    };
}

/// `send` failed because the channel is closed; the message is handed back.
///
/// # Examples
/// ```
/// # tokio_test_block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// drop(rx);
/// let err = tx.send(7).await.unwrap_err();
/// assert_eq!(err.into_inner(), 7);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The message that was not sent.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(otelconc::channel::SendError(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

debug_without_t!(SendError, "SendError(..)");

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T> Error for SendError<T> {}

/// `try_send` failed; the message is handed back.
///
/// # Examples
/// ```
/// use otelconc::channel::{bounded, TrySendError};
/// let (tx, _rx) = bounded::<u32>("jobs", 1);
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The channel is full.
    Full(T),
    /// The channel is closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(otelconc::channel::TrySendError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(t) | Self::Closed(t) => t,
        }
    }

    /// Whether the channel was full.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::channel::TrySendError::Full(3).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the channel was closed.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::channel::TrySendError::Closed(3).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("sending on a full channel"),
            Self::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> Error for TrySendError<T> {}

/// `send_timeout` failed; the message is handed back.
///
/// # Examples
/// ```
/// use otelconc::channel::SendTimeoutError;
/// assert_eq!(SendTimeoutError::Timeout(3).into_inner(), 3);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum SendTimeoutError<T> {
    /// No space freed up in time.
    Timeout(T),
    /// The channel is closed.
    Closed(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(otelconc::channel::SendTimeoutError::Closed(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(t) | Self::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("Timeout(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("timed out waiting for space in the channel"),
            Self::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> Error for SendTimeoutError<T> {}

/// `recv` failed: the channel is closed and empty.
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// drop(tx);
/// assert_eq!(rx.recv_blocking(), Err(otelconc::channel::RecvError));
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving from a closed and empty channel")
    }
}

impl Error for RecvError {}

/// `try_recv` failed.
///
/// # Examples
/// ```
/// use otelconc::channel::TryRecvError;
/// let (_tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is ready.
    Empty,
    /// The channel is closed and empty.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("receiving from an empty channel"),
            Self::Closed => f.write_str("receiving from a closed and empty channel"),
        }
    }
}

impl Error for TryRecvError {}

/// `recv_timeout` failed.
///
/// # Examples
/// ```
/// use otelconc::channel::RecvTimeoutError;
/// assert_ne!(RecvTimeoutError::Timeout, RecvTimeoutError::Closed);
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// No message arrived in time.
    Timeout,
    /// The channel is closed and empty.
    Closed,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out waiting for a message"),
            Self::Closed => f.write_str("receiving from a closed and empty channel"),
        }
    }
}

impl Error for RecvTimeoutError {}

/// The channel could not be built: the configuration is invalid.
///
/// # Examples
/// ```
/// let err = otelconc::channel::builder("jobs").try_bounded::<u32>(0).unwrap_err();
/// assert!(err.to_string().contains("capacity"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The name is empty; metrics and spans need it.
    EmptyName,
    /// A bounded channel's capacity is 0.
    ZeroCapacity,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str(
                "otelconc channel: the name is empty; give every channel a name (it labels its metrics and spans)",
            ),
            Self::ZeroCapacity => f.write_str(
                "otelconc channel: capacity 0 is not supported (no rendezvous channel); use a capacity of at least 1",
            ),
        }
    }
}

impl Error for BuildError {}
