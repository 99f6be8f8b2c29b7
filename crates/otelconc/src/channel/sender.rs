//! The sending half.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;

use event_listener::EventListener;
use opentelemetry::Context;

use super::error::{SendError, SendTimeoutError, TrySendError};
use super::inner::Tx;
use super::shared::{
    AS_CANCELLED, CANCELLED, CLOSED, Counts, Env, OK, REFUSED, Shared, TIMEOUT, Waited,
    end_producer, record_wait, timed_blocking,
};

/// The sending half of a channel. Clone it for more producers.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 8);
/// let tx2 = tx.clone();
/// tx.send(1).await.unwrap();
/// tx2.send(2).await.unwrap();
/// assert_eq!(rx.len(), 2);
/// # });
/// ```
pub struct Sender<T> {
    pub(super) inner: Tx<T>,
    pub(super) shared: Arc<Shared>,
    pub(super) counts: Arc<Counts>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("name", &self.shared.name.value)
            .field("len", &self.inner.len())
            .field("capacity", &self.inner.capacity())
            .field("closed", &self.inner.is_closed())
            .finish()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            counts: self.shared.send_counts(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.retire_sender(&self.counts);
    }
}

impl<T> Sender<T> {
    #[inline]
    fn envelope(&self, value: T) -> Env<T> {
        self.shared.envelope(value, &self.counts)
    }

    /// Counts a finished send by `outcome` and ends its producer span, if it has one
    /// (marked as an error unless the outcome is `OK`).
    #[inline]
    fn finish(&self, outcome: usize, producer: Option<Context>) {
        self.counts.add(outcome, 1);
        if let Some(cx) = producer {
            end_producer(cx, outcome);
        }
    }

    /// Sends `value`, waiting for space if the channel is full.
    ///
    /// Inside a sampled trace the message carries the sender's context to the receiver
    /// (no span is built for the send itself, unless the channel was built with
    /// [`producer_spans(true)`](super::Builder::producer_spans)). See
    /// [`docs/telemetry.md`](https://example.invalid/otelconc/blob/main/docs/telemetry.md).
    ///
    /// # Errors
    /// [`SendError`] with the message if the channel is closed (every receiver dropped,
    /// or [`close`](Self::close) called).
    ///
    /// # Cancel safety
    /// Not lossless. If the future is dropped before it completes, the message was not
    /// sent and is dropped with the future (counted as `cancelled`); nothing already in
    /// the channel is affected. Once it completed with `Ok`, the message is in the
    /// channel: it is received, or dropped exactly once with the channel. Under
    /// `select!` or a timeout, use [`send_lossless`](Self::send_lossless) or
    /// [`send_timeout`](Self::send_timeout), which hand the message back.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send(5).await.unwrap();
    /// assert_eq!(rx.recv().await, Ok(5));
    /// # });
    /// ```
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let tx = match &self.inner {
            // Nothing observes this channel: it is async-channel.
            Tx::Bare(tx) => {
                return match tx.try_send(value) {
                    Ok(()) => Ok(()),
                    Err(async_channel::TrySendError::Full(v)) => {
                        tx.send(v).await.map_err(|e| SendError(e.0))
                    }
                    Err(async_channel::TrySendError::Closed(v)) => Err(SendError(v)),
                };
            }
            Tx::Env(tx) => tx,
        };
        let env = self.envelope(value);
        let producer = self.shared.producer_of(&env);
        let shared = &*self.shared;
        // With space free, the message goes in without building the send future (as
        // that future's first poll would do).
        let sent = match tx.try_send(env) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(env)) => Err(async_channel::SendError(env)),
            Err(async_channel::TrySendError::Full(env)) if self.counts.is_on() => {
                Waited::new(tx.send(env), &shared.send_wait, &self.counts, &AS_CANCELLED).await
            }
            Err(async_channel::TrySendError::Full(env)) => tx.send(env).await,
        };
        match sent {
            Ok(()) => {
                self.finish(OK, producer);
                Ok(())
            }
            Err(async_channel::SendError(env)) => {
                self.finish(CLOSED, producer);
                Err(SendError(env.value))
            }
        }
    }

    /// Sends `value` if there is space now, without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the message.
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{bounded, TrySendError};
    /// let (tx, rx) = bounded::<u32>("jobs", 1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// drop(rx);
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let env = self.envelope(value);
        let producer = self.shared.producer_of(&env);
        let (outcome, result) = match self.inner.try_send(env) {
            Ok(()) => (OK, Ok(())),
            Err(async_channel::TrySendError::Full(env)) => {
                (REFUSED, Err(TrySendError::Full(env.value)))
            }
            Err(async_channel::TrySendError::Closed(env)) => {
                (CLOSED, Err(TrySendError::Closed(env.value)))
            }
        };
        self.finish(outcome, producer);
        result
    }

    /// Sends `value`, waiting at most `timeout` for space.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`], with the message.
    ///
    /// # Cancel safety
    /// Like [`send`](Self::send): dropping the future before it completes drops the
    /// message, unsent. On timeout the message is handed back in the error.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use otelconc::channel::{bounded, SendTimeoutError};
    /// let (tx, _rx) = bounded::<u32>("jobs", 1);
    /// tx.send(1).await.unwrap();
    /// let err = tx.send_timeout(2, Duration::from_millis(1)).await.unwrap_err();
    /// assert_eq!(err, SendTimeoutError::Timeout(2));
    /// # });
    /// ```
    pub async fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut fut = self.send_lossless(value);
        match tokio::time::timeout(timeout, &mut fut).await {
            Ok(r) => r.map_err(|SendError(v)| SendTimeoutError::Closed(v)),
            Err(_) => match fut.take_back(TIMEOUT) {
                Some(v) => Err(SendTimeoutError::Timeout(v)),
                None => Ok(()),
            },
        }
    }

    /// Sends `value` and can give it back if you stop waiting: a lossless send for
    /// `select!` and timeouts.
    ///
    /// The returned future is `Unpin`: poll it through `&mut fut` in `select!`, and when
    /// another branch wins call [`SendLossless::cancel`] to get the message back.
    ///
    /// # Errors
    /// [`SendError`] with the message if the channel is closed.
    ///
    /// # Cancel safety
    /// Lossless. The message enters the channel only inside a poll that then returns
    /// `Ready(Ok(()))`; until then [`SendLossless::cancel`] returns it. Dropping the
    /// future without calling `cancel` drops the message unsent (counted as
    /// `cancelled`).
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send(1).await.unwrap(); // now full
    /// let mut send = tx.send_lossless(2);
    /// tokio::select! {
    ///     r = &mut send => r.unwrap(),
    ///     _ = tokio::time::sleep(Duration::from_millis(1)) => {
    ///         assert_eq!(send.cancel(), Some(2)); // nothing lost
    ///     }
    /// }
    /// assert_eq!(rx.len(), 1);
    /// # });
    /// ```
    pub fn send_lossless(&self, value: T) -> SendLossless<'_, T> {
        SendLossless {
            sender: self,
            value: Some(value),
            env: None,
            listener: None,
            waiting: false,
            since: None,
        }
    }

    /// Sends `value` from synchronous code, blocking the thread while the channel is
    /// full.
    ///
    /// Do not call it from async code: it blocks the runtime's thread. Call it from
    /// `spawn_blocking` or a plain thread.
    ///
    /// # Errors
    /// [`SendError`] with the message if the channel is closed.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// std::thread::spawn(move || tx.blocking_send(9)).join().unwrap().unwrap();
    /// assert_eq!(rx.try_recv(), Ok(9));
    /// ```
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        let env = self.envelope(value);
        let producer = self.shared.producer_of(&env);
        let result = match self.inner.try_send(env) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(env)) => Err(env),
            Err(async_channel::TrySendError::Full(env)) => {
                timed_blocking(&self.shared.send_wait, &self.counts, || {
                    self.inner.send_blocking(env)
                })
            }
        };
        self.finish(if result.is_ok() { OK } else { CLOSED }, producer);
        result.map_err(|env| SendError(env.value))
    }

    /// Closes the channel for every handle; returns `true` if this call closed it.
    ///
    /// Messages already in the channel can still be received. Blocked senders wake up
    /// with their message in a `Closed` error.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// assert!(tx.close());
    /// assert!(!rx.close());
    /// assert!(tx.is_closed());
    /// ```
    pub fn close(&self) -> bool {
        let closed = self.inner.close();
        self.shared.closed();
        closed
    }

    /// Whether the channel is closed.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Waits until the channel is closed (every receiver dropped, or `close` called).
    ///
    /// # Cancel safety
    /// Cancel safe: it takes nothing.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// drop(rx);
    /// tx.closed().await;
    /// # });
    /// ```
    pub async fn closed(&self) {
        self.inner.closed().await;
    }

    /// Messages in the channel now.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the channel is empty.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Whether the channel is full (never, for an unbounded channel).
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(1).unwrap();
    /// assert!(tx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// The capacity, or `None` for an unbounded channel.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// assert_eq!(tx.capacity(), Some(4));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }

    /// Live sender handles.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// let _tx2 = tx.clone();
    /// assert_eq!(tx.sender_count(), 2);
    /// ```
    pub fn sender_count(&self) -> usize {
        self.inner.sender_count()
    }

    /// Live receiver handles.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// drop(rx);
    /// assert_eq!(tx.receiver_count(), 0);
    /// ```
    pub fn receiver_count(&self) -> usize {
        self.shared.receiver_handles.load(Ordering::Relaxed)
    }
}

/// Future of [`Sender::send_lossless`]: a send that hands the message back when you
/// stop waiting.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// let mut send = tx.send_lossless(1);
/// (&mut send).await.unwrap();
/// assert_eq!(send.cancel(), None); // already sent
/// assert_eq!(rx.recv().await, Ok(1));
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SendLossless<'a, T> {
    sender: &'a Sender<T>,
    /// The message before the first poll (no envelope, no span yet).
    value: Option<T>,
    /// The message after the first poll, until it is in the channel.
    env: Option<Env<T>>,
    listener: Option<EventListener>,
    /// Registered in `space_waiters`.
    waiting: bool,
    /// When the wait began, for one wait in 64.
    since: Option<Instant>,
}

// The message is never pinned: it moves into the channel by value.
impl<T> Unpin for SendLossless<'_, T> {}

impl<T> fmt::Debug for SendLossless<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendLossless")
            .field("pending", &(self.value.is_some() || self.env.is_some()))
            .field("waiting", &self.waiting)
            .finish()
    }
}

impl<T> SendLossless<'_, T> {
    /// Stops the send and returns the message if it is not in the channel yet, or
    /// `None` if the send already completed (or failed, handing it back then).
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// let mut send = tx.send_lossless(4);
    /// assert_eq!(send.cancel(), Some(4)); // never polled, never sent
    /// ```
    pub fn cancel(&mut self) -> Option<T> {
        self.take_back(CANCELLED)
    }

    fn take_back(&mut self, outcome: usize) -> Option<T> {
        self.stop_waiting();
        if let Some(v) = self.value.take() {
            return Some(v);
        }
        let env = self.env.take()?;
        let producer = env
            .meta
            .and_then(|m| m.cx)
            .filter(|_| self.sender.shared.producer_spans);
        self.sender.finish(outcome, producer);
        Some(env.value)
    }

    fn stop_waiting(&mut self) {
        self.listener = None;
        self.since = None;
        if std::mem::take(&mut self.waiting) {
            self.sender
                .shared
                .space_waiters
                .fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<T> Drop for SendLossless<'_, T> {
    fn drop(&mut self) {
        // Dropped without `cancel`: the message (if still here) is dropped unsent.
        drop(self.take_back(CANCELLED));
    }
}

impl<T> Future for SendLossless<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(v) = this.value.take() {
            this.env = Some(this.sender.envelope(v));
        }
        loop {
            let Some(env) = this.env.take() else {
                // Polled after completion: the message is long gone.
                return Poll::Ready(Ok(()));
            };
            let producer = this.sender.shared.producer_of(&env);
            match this.sender.inner.try_send(env) {
                Ok(()) => {
                    record_wait(&this.sender.shared.send_wait, this.since);
                    this.stop_waiting();
                    this.sender.finish(OK, producer);
                    return Poll::Ready(Ok(()));
                }
                Err(async_channel::TrySendError::Closed(env)) => {
                    this.stop_waiting();
                    this.sender.finish(CLOSED, producer);
                    return Poll::Ready(Err(SendError(env.value)));
                }
                Err(async_channel::TrySendError::Full(env)) => {
                    this.env = Some(env);
                    match this.listener.as_mut() {
                        None => {
                            if !this.waiting {
                                this.sender
                                    .shared
                                    .space_waiters
                                    .fetch_add(1, Ordering::SeqCst);
                                this.waiting = true;
                                this.since = this.sender.counts.wait_start();
                            }
                            // Listen, then try again: a slot freed in between is seen
                            // by the retry, a slot freed later by the listener.
                            this.listener = Some(this.sender.shared.space.listen());
                        }
                        Some(l) => match Pin::new(l).poll(cx) {
                            Poll::Ready(()) => this.listener = None,
                            Poll::Pending => return Poll::Pending,
                        },
                    }
                }
            }
        }
    }
}
