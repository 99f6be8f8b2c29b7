//! Wait on several channels at once: the first message of any ([`first`]), one message
//! from each ([`all`]), with a timeout or a [`CancellationToken`].
//!
//! Use these when the set of channels is only known at run time (a `Vec` of
//! receivers); for a fixed set, `tokio::select!` is simpler and these docs show how to
//! use the channel in it safely (see also [`crate::channel`]):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! let (tx_a, rx_a) = otelconc::channel::bounded::<u32>("a", 4);
//! let (_tx_b, rx_b) = otelconc::channel::bounded::<u32>("b", 4);
//! tx_a.send(1).await.unwrap();
//! // `recv` is cancel safe: the losing branch takes nothing.
//! let got = tokio::select! {
//!     Ok(v) = rx_a.recv() => v,
//!     Ok(v) = rx_b.recv() => v,
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => 0,
//! };
//! assert_eq!(got, 1);
//! // To send under select!, use `send_lossless` and take the message back with
//! // `cancel()` when another branch wins; a plain `send` drops its message.
//! # });
//! ```
//!
//! # Cancel safety
//! [`first`] and its variants are cancel safe: each input is read with the cancel-safe
//! [`Receiver::recv`], and only the winning input's message is taken. [`all`] takes
//! messages as they arrive: when it ends early (a closed input, a timeout, the token)
//! the error hands back every message already taken ([`AllError::into_received`]);
//! only dropping the `all` future itself drops them.
//!
//! # Fairness and inputs
//! Inputs are borrowed, never mutated or reordered. [`first`] polls them starting at an
//! index that rotates with each call (per thread) so that a busy first input cannot starve the others. [`all`] returns
//! the values in input order.
//!
//! # Cost and telemetry
//! One boxed receive future per input per call. The helpers emit no telemetry of
//! their own: the channels they read count and trace every message (a message taken by
//! [`first`] or [`all`] is received as by [`Receiver::recv`]).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::channel::Receiver;

/// The winner of [`first`]: which input (index in the input order) and its message.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("a", 1);
/// tx.send(5).await.unwrap();
/// let s = otelconc::select::first([&rx]).await.unwrap();
/// assert_eq!((s.index, s.value), (0, 5));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Selected<T> {
    /// Position of the input the message came from.
    pub index: usize,
    /// The message.
    pub value: T,
}

/// Why [`first`] (or a variant) returned no message.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("a", 1);
/// drop(tx);
/// let err = otelconc::select::first([&rx]).await.unwrap_err();
/// assert_eq!(err, otelconc::select::FirstError::AllClosed);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstError {
    /// Every input is closed and empty (or there were no inputs).
    AllClosed,
    /// The timeout elapsed first.
    Timeout,
    /// The token was cancelled first.
    Cancelled,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AllClosed => "every input channel is closed and empty",
            Self::Timeout => "timed out waiting for any input",
            Self::Cancelled => "cancelled while waiting for any input",
        })
    }
}

impl std::error::Error for FirstError {}

/// Why [`all`] (or a variant) ended early, with every message it had taken so far
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

type RecvFut<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, crate::channel::RecvError>> + Send + 'a>>;

fn recv_futures<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
) -> Vec<Option<RecvFut<'a, T>>> {
    inputs
        .into_iter()
        .map(|r| Some(Box::pin(r.recv()) as RecvFut<'a, T>))
        .collect()
}

thread_local! {
    /// Where the next [`first`] on this thread starts polling.
    static ROTATE: Cell<usize> = const { Cell::new(0) };
}

async fn first_until<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
    stop: impl Future<Output = Stop>,
) -> Result<Selected<T>, FirstError> {
    let mut futs = recv_futures(inputs);
    let n = futs.len();
    let start = if n == 0 {
        0
    } else {
        ROTATE.with(|r| {
            let start = r.get();
            r.set(start.wrapping_add(1));
            start % n
        })
    };
    let mut stop = std::pin::pin!(stop);
    std::future::poll_fn(|cx| {
        let mut open = 0;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(fut) = futs[i].as_mut() else {
                continue;
            };
            match fut.as_mut().poll(cx) {
                Poll::Ready(Ok(value)) => return Poll::Ready(Ok(Selected { index: i, value })),
                Poll::Ready(Err(_)) => futs[i] = None,
                Poll::Pending => open += 1,
            }
        }
        if open == 0 {
            return Poll::Ready(Err(FirstError::AllClosed));
        }
        match stop.as_mut().poll(cx) {
            Poll::Ready(Stop::Timeout) => Poll::Ready(Err(FirstError::Timeout)),
            Poll::Ready(Stop::Cancelled) => Poll::Ready(Err(FirstError::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
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

/// The first message from any input, with its input's index.
///
/// Closed inputs are skipped; when every input is closed and empty (or there are no
/// inputs) the result is [`FirstError::AllClosed`].
///
/// # Errors
/// [`FirstError::AllClosed`].
///
/// # Cancel safety
/// Cancel safe: only the returned message is taken from its channel.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (_tx_a, rx_a) = otelconc::channel::bounded::<u32>("a", 1);
/// let (tx_b, rx_b) = otelconc::channel::bounded::<u32>("b", 1);
/// tx_b.send(7).await.unwrap();
/// let s = otelconc::select::first([&rx_a, &rx_b]).await.unwrap();
/// assert_eq!((s.index, s.value), (1, 7));
/// # });
/// ```
pub async fn first<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
) -> Result<Selected<T>, FirstError> {
    first_until(inputs, never()).await
}

/// [`first`], giving up after `timeout`.
///
/// # Errors
/// [`FirstError::AllClosed`], [`FirstError::Timeout`].
///
/// # Cancel safety
/// Cancel safe, like [`first`].
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// let (_tx, rx) = otelconc::channel::bounded::<u32>("a", 1);
/// let r = otelconc::select::first_timeout([&rx], Duration::from_millis(1)).await;
/// assert_eq!(r.unwrap_err(), otelconc::select::FirstError::Timeout);
/// # });
/// ```
pub async fn first_timeout<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
    timeout: Duration,
) -> Result<Selected<T>, FirstError> {
    first_until(inputs, after(timeout)).await
}

/// [`first`], giving up when `token` is cancelled.
///
/// # Errors
/// [`FirstError::AllClosed`], [`FirstError::Cancelled`].
///
/// # Cancel safety
/// Cancel safe, like [`first`].
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tokio_util::sync::CancellationToken;
/// let (_tx, rx) = otelconc::channel::bounded::<u32>("a", 1);
/// let token = CancellationToken::new();
/// token.cancel();
/// let r = otelconc::select::first_cancellable([&rx], &token).await;
/// assert_eq!(r.unwrap_err(), otelconc::select::FirstError::Cancelled);
/// # });
/// ```
pub async fn first_cancellable<'a, T: Send + 'a>(
    inputs: impl IntoIterator<Item = &'a Receiver<T>>,
    token: &CancellationToken,
) -> Result<Selected<T>, FirstError> {
    first_until(inputs, on_cancel(token)).await
}

/// One message from every input, in input order.
///
/// # Errors
/// [`AllError::Closed`] as soon as an input is closed and empty, with the messages
/// already taken from the others.
///
/// # Cancel safety
/// Not cancel safe: dropping the future drops the messages it already took. Use
/// [`all_cancellable`] or [`all_timeout`] to stop early and get them back.
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
/// Not cancel safe, like [`all`]; the timeout itself loses nothing.
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
/// Not cancel safe, like [`all`]; the token itself loses nothing.
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
