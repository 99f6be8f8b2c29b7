//! [`first`]: the first message of any input.

use std::cell::Cell;
use std::fmt;
use std::task::Poll;

use super::recv::recv_futures;
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

/// Why [`first`] returned no message.
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
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AllClosed => "every input channel is closed and empty",
        })
    }
}

impl std::error::Error for FirstError {}

thread_local! {
    /// Where the next [`first`] on this thread starts polling.
    static ROTATE: Cell<usize> = const { Cell::new(0) };
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
/// This method is cancel safe. If `first` is used as a branch in `tokio::select!` or
/// under `tokio::time::timeout` and another branch (or the deadline) completes first,
/// no message was taken from any input.
///
/// So a timeout or a cancellation token is a wrapper, not a variant:
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
/// use otelconc::select::first;
/// let (_tx, rx) = otelconc::channel::bounded::<u32>("a", 1);
/// // With a timeout:
/// let r = tokio::time::timeout(Duration::from_millis(1), first([&rx])).await;
/// assert!(r.is_err()); // timed out, nothing taken
/// // With a token (`biased`: a message that is ready wins over the token):
/// let token = CancellationToken::new();
/// token.cancel();
/// let r = tokio::select! {
///     biased;
///     r = first([&rx]) => Some(r),
///     _ = token.cancelled() => None,
/// };
/// assert!(r.is_none()); // cancelled, nothing taken
/// # });
/// ```
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
        Poll::Pending
    })
    .await
}
