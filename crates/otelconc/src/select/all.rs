//! [`all`]: one message from every input, and its forms that stop early and hand back
//! what they took.

use std::fmt;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::recv::recv_futures;
use crate::channel::Receiver;

/// Why [`all`] (or [`all_timeout`], [`all_cancellable`]) ended early, with every message it had taken so far
/// (`received[i]` is input `i`'s message, or `None`).
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx_a, rx_a) = otelconc::channel::bounded::<u32>("a", 1);
/// let (tx_b, rx_b) = otelconc::channel::bounded::<u32>("b", 1);
/// tx_a.send(1).await.unwrap();
/// drop(tx_b);
/// let err = otelconc::select::all([&rx_a, &rx_b]).await.unwrap_err();
/// assert_eq!(err.closed_input(), Some(1));
/// assert_eq!(err.into_received(), vec![Some(1), None]);
/// # });
/// ```
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum AllError<T> {
    /// Input `index` is closed and empty.
    Closed {
        /// The closed input.
        index: usize,
        /// Messages taken before it was seen closed.
        received: Vec<Option<T>>,
    },
    /// The timeout elapsed first.
    Timeout {
        /// Messages taken before the timeout.
        received: Vec<Option<T>>,
    },
    /// The token was cancelled first.
    Cancelled {
        /// Messages taken before the cancellation.
        received: Vec<Option<T>>,
    },
}

impl<T> AllError<T> {
    /// The messages taken before the error, by input position.
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::select::AllError::Timeout { received: vec![Some(1), None] };
    /// assert_eq!(e.into_received(), vec![Some(1), None]);
    /// ```
    pub fn into_received(self) -> Vec<Option<T>> {
        match self {
            Self::Closed { received, .. }
            | Self::Timeout { received }
            | Self::Cancelled { received } => received,
        }
    }

    /// The closed input, for [`AllError::Closed`].
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::select::AllError::<u32>::Closed { index: 2, received: vec![] };
    /// assert_eq!(e.closed_input(), Some(2));
    /// ```
    pub fn closed_input(&self) -> Option<usize> {
        match self {
            Self::Closed { index, .. } => Some(*index),
            _ => None,
        }
    }
}

impl<T> fmt::Debug for AllError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed { index, received } => f
                .debug_struct("Closed")
                .field("index", index)
                .field("received", &received.iter().filter(|r| r.is_some()).count())
                .finish(),
            Self::Timeout { received } => f
                .debug_struct("Timeout")
                .field("received", &received.iter().filter(|r| r.is_some()).count())
                .finish(),
            Self::Cancelled { received } => f
                .debug_struct("Cancelled")
                .field("received", &received.iter().filter(|r| r.is_some()).count())
                .finish(),
        }
    }
}

impl<T> fmt::Display for AllError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed { index, .. } => {
                write!(f, "input {index} is closed and empty")
            }
            Self::Timeout { .. } => f.write_str("timed out waiting for every input"),
            Self::Cancelled { .. } => f.write_str("cancelled while waiting for every input"),
        }
    }
}

impl<T> std::error::Error for AllError<T> {}

/// Why a wait stopped early.
enum Stop {
    Timeout,
    Cancelled,
}

async fn all_until<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
    stop: impl Future<Output = Stop>,
) -> Result<Vec<T>, AllError<T>> {
    let mut futs = recv_futures(inputs);
    let n = futs.len();
    let mut got: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut stop = std::pin::pin!(stop);
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for i in 0..n {
            let Some(fut) = futs[i].as_mut() else {
                continue;
            };
            match fut.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => {
                    got[i] = Some(v);
                    futs[i] = None;
                }
                Poll::Ready(Err(_)) => {
                    futs[i] = None;
                    return Poll::Ready(Err(AllError::Closed {
                        index: i,
                        received: std::mem::take(&mut got),
                    }));
                }
                Poll::Pending => pending = true,
            }
        }
        if !pending {
            let all = std::mem::take(&mut got).into_iter().flatten().collect();
            return Poll::Ready(Ok(all));
        }
        match stop.as_mut().poll(cx) {
            Poll::Ready(Stop::Timeout) => Poll::Ready(Err(AllError::Timeout {
                received: std::mem::take(&mut got),
            })),
            Poll::Ready(Stop::Cancelled) => Poll::Ready(Err(AllError::Cancelled {
                received: std::mem::take(&mut got),
            })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn never() -> Stop {
    std::future::pending().await
}

async fn after(d: Duration) -> Stop {
    tokio::time::sleep(d).await;
    Stop::Timeout
}

async fn on_cancel(token: &CancellationToken) -> Stop {
    token.cancelled().await;
    Stop::Cancelled
}

/// One message from every input, in input order.
///
/// # Errors
/// [`AllError::Closed`] as soon as an input is closed and empty, with the messages
/// already taken from the others.
///
/// # Cancel safety
/// If `all` is used as a branch in `tokio::select!` and another branch completes
/// first, then it is guaranteed that no message was taken from an input it had not
/// reached yet. **However, in that case, the messages it already took are dropped and
/// will be lost.**
///
/// To avoid losing messages, use [`all_timeout`] or [`all_cancellable`], which stop
/// early and hand back what they took.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx_a, rx_a) = otelconc::channel::bounded::<u32>("a", 1);
/// let (tx_b, rx_b) = otelconc::channel::bounded::<u32>("b", 1);
/// tx_b.send(2).await.unwrap();
/// tx_a.send(1).await.unwrap();
/// let inputs = vec![rx_a, rx_b];
/// assert_eq!(otelconc::select::all(&inputs).await.unwrap(), [1, 2]);
/// assert_eq!(inputs.len(), 2); // untouched
/// # });
/// ```
pub async fn all<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
) -> Result<Vec<T>, AllError<T>> {
    all_until(inputs, never()).await
}

/// [`all`], giving up after `timeout` and handing back what it took.
///
/// # Errors
/// [`AllError::Closed`], [`AllError::Timeout`].
///
/// # Cancel safety
/// If `all_timeout` is used as a branch in `tokio::select!` and another branch
/// completes first, then the messages it already took are dropped and will be lost,
/// as with [`all`]. Its own timeout loses nothing: the error hands them back.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// let (tx_a, rx_a) = otelconc::channel::bounded::<u32>("a", 1);
/// let (_tx_b, rx_b) = otelconc::channel::bounded::<u32>("b", 1);
/// tx_a.send(1).await.unwrap();
/// let err = otelconc::select::all_timeout([&rx_a, &rx_b], Duration::from_millis(1))
///     .await
///     .unwrap_err();
/// assert_eq!(err.into_received(), vec![Some(1), None]);
/// # });
/// ```
pub async fn all_timeout<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
    timeout: Duration,
) -> Result<Vec<T>, AllError<T>> {
    all_until(inputs, after(timeout)).await
}

/// [`all`], giving up when `token` is cancelled and handing back what it took.
///
/// # Errors
/// [`AllError::Closed`], [`AllError::Cancelled`].
///
/// # Cancel safety
/// If `all_cancellable` is used as a branch in `tokio::select!` and another branch
/// completes first, then the messages it already took are dropped and will be lost,
/// as with [`all`]. Its own token loses nothing: the error hands them back.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tokio_util::sync::CancellationToken;
/// let (_tx, rx) = otelconc::channel::bounded::<u32>("a", 1);
/// let token = CancellationToken::new();
/// token.cancel();
/// let err = otelconc::select::all_cancellable([&rx], &token).await.unwrap_err();
/// assert!(matches!(err, otelconc::select::AllError::Cancelled { .. }));
/// # });
/// ```
pub async fn all_cancellable<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
    token: &CancellationToken,
) -> Result<Vec<T>, AllError<T>> {
    all_until(inputs, on_cancel(token)).await
}
