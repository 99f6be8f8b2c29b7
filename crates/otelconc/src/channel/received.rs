//! A received message with its trace.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;

/// A message from [`Receiver::recv_traced`](super::Receiver::recv_traced), with the
/// consumer span it is processed in when it was sent inside a sampled trace.
///
/// The span (`otelconc.channel.receive`, kind CONSUMER, child of the span current where
/// the message was sent, or of its `otelconc.channel.send` span on a channel built with
/// [`producer_spans(true)`](super::Builder::producer_spans)) ends when this value is dropped, when [`in_span`](Self::in_span) finishes, or, after
/// [`into_parts`](Self::into_parts), when the last clone of the context is dropped.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// tx.send(1).await.unwrap();
/// let msg = rx.recv_traced().await.unwrap();
/// assert_eq!(*msg.get_ref(), 1);
/// let (value, cx) = msg.into_parts();
/// assert_eq!(value, 1);
/// assert!(cx.is_none());
/// # });
/// ```
#[must_use = "dropping a `Received` drops the message and ends its span"]
pub struct Received<T> {
    value: T,
    cx: Option<Context>,
    queue_wait: Option<Duration>,
}

impl<T> fmt::Debug for Received<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("traced", &self.cx.is_some())
            .field("queue_wait", &self.queue_wait)
            .finish_non_exhaustive()
    }
}

impl<T> Received<T> {
    pub(super) fn new(value: T, cx: Option<Context>, queue_wait: Option<Duration>) -> Self {
        Self {
            value,
            cx,
            queue_wait,
        }
    }

    /// The message.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert_eq!(*msg.get_ref(), 2);
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// The message, mutably.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let mut msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// *msg.get_mut() += 1;
    /// assert_eq!(msg.into_inner(), 3);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// The consumer span's context, when the message was sent inside a sampled trace.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert!(msg.context().is_none());
    /// ```
    pub fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    /// How long the message waited in the channel, when it was timed: sent inside a
    /// sampled trace, or one of the 1-in-256 messages sampled for the queue-time metric
    /// (only when an SDK reads the metrics).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert!(msg.queue_wait().is_none()); // no SDK, no trace: nothing was timed
    /// ```
    pub fn queue_wait(&self) -> Option<Duration> {
        self.queue_wait
    }

    /// The message; ends the consumer span.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert_eq!(msg.into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
        self.value
    }

    /// The message and its consumer span's context; the span ends when you call
    /// `cx.span().end()` or the last clone of the context is dropped.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// let (v, cx) = msg.into_parts();
    /// assert_eq!((v, cx.is_none()), (2, true));
    /// ```
    pub fn into_parts(self) -> (T, Option<Context>) {
        (self.value, self.cx)
    }

    /// Runs `f(message)` inside the consumer span (so spans it starts are its
    /// children), then ends the span.
    ///
    /// # Cancel safety
    /// If `in_span` is used as a branch in `tokio::select!` and another branch
    /// completes first, then `f` may have run only in part. **The message is dropped
    /// and will be lost**, and the span ends.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send(20).await.unwrap();
    /// let msg = rx.recv_traced().await.unwrap();
    /// assert_eq!(msg.in_span(|v| async move { v + 1 }).await, 21);
    /// # });
    /// ```
    pub async fn in_span<F, Fut>(self, f: F) -> Fut::Output
    where
        F: FnOnce(T) -> Fut,
        Fut: Future,
    {
        match self.cx {
            Some(cx) => {
                let out = f(self.value).with_context(cx.clone()).await;
                cx.span().end();
                out
            }
            None => f(self.value).await,
        }
    }
}

/// What [`Receiver::recv_many_traced`](super::Receiver::recv_many_traced) took: how many
/// messages, and the batch span when any of them was sent inside a sampled trace.
///
/// The span (`otelconc.channel.receive_batch`, kind CONSUMER, linked to the context each
/// traced message carried from its sender) ends when this value is dropped.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
/// tx.send(1).await.unwrap();
/// tx.send(2).await.unwrap();
/// let mut buf = Vec::new();
/// let batch = rx.recv_many_traced(&mut buf, 4).await;
/// assert_eq!((batch.len(), buf.len()), (2, 2));
/// # });
/// ```
#[must_use = "dropping a `ReceivedBatch` ends its span at once"]
pub struct ReceivedBatch {
    len: usize,
    cx: Option<Context>,
}

impl fmt::Debug for ReceivedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedBatch")
            .field("len", &self.len)
            .field("traced", &self.cx.is_some())
            .finish()
    }
}

impl ReceivedBatch {
    pub(super) fn new(len: usize, cx: Option<Context>) -> Self {
        Self { len, cx }
    }

    /// How many messages the batch took (0: the channel is closed and empty).
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// drop(tx);
    /// let batch = rx.recv_many_traced(&mut Vec::new(), 4).await;
    /// assert!(batch.is_empty());
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch took nothing.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// tx.send(1).await.unwrap();
    /// assert!(!rx.recv_many_traced(&mut Vec::new(), 4).await.is_empty());
    /// # });
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batch span's context, when any message was traced.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// tx.send(1).await.unwrap();
    /// assert!(rx.recv_many_traced(&mut Vec::new(), 4).await.context().is_none());
    /// # });
    /// ```
    pub fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    /// The batch span's context, to run the batch's processing in; the span ends when
    /// the last clone of it is dropped or `cx.span().end()` is called.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// tx.send(1).await.unwrap();
    /// assert!(rx.recv_many_traced(&mut Vec::new(), 4).await.into_context().is_none());
    /// # });
    /// ```
    pub fn into_context(mut self) -> Option<Context> {
        self.cx.take()
    }
}

impl Drop for ReceivedBatch {
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}
