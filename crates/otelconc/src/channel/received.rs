//! A received message with its trace ([`Received`], shared with the fan-in) and a
//! traced batch ([`ReceivedBatch`]).

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::time::Duration;

use opentelemetry::Context;

use crate::telemetry::{End, EndingSpan, Guarded};

/// One message taken from a channel ([`Receiver::recv_traced`](super::Receiver::recv_traced))
/// or one item taken from a fan-in ([`FanIn`](crate::fan::FanIn)), with the context to
/// process it under.
///
/// When the consumer runs inside a sampled trace (for a fan-in item, only one that
/// carried its producer's context), or the producer handed the value over inside one,
/// taking it started a consumer span (`otelconc.channel.receive` or
/// `otelconc.fan_in.receive`, kind INTERNAL) by the messaging rule in
/// `docs/telemetry.md`: a child of the consumer's own sampled span when there is one,
/// else of the producer's context, and linked to the producer's span context either
/// way. That span ends when this value is dropped, when
/// [`into_inner`](Self::into_inner) is called or [`in_span`](Self::in_span) finishes,
/// or, after [`into_parts`](Self::into_parts), when the last clone of its context is
/// dropped.
///
/// Otherwise no span is started, and [`context`](Self::context) is the context the
/// producer carried (a valid span context, sampled or not, and its baggage), so work
/// run under it stays in the producer's trace: spans it starts are dropped with an
/// unsampled parent by a parent-based sampler, and logs written there carry the
/// producer's trace id and baggage.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// tx.send(1).await.unwrap();
/// let msg = rx.recv_traced().await.unwrap();
/// assert_eq!(*msg, 1);
/// let (value, cx) = msg.into_parts();
/// assert_eq!(value, 1);
/// assert!(cx.is_none());
/// # });
/// ```
#[must_use = "dropping a `Received` drops the message and ends its span"]
pub struct Received<T> {
    value: T,
    span: Consumed,
    producer: Option<Context>,
    queue_wait: Option<Duration>,
    input: usize,
}

/// The consumer span of a [`Received`]: ends (as finished, not cancelled) when dropped,
/// since dropping a received value is how its processing normally ends.
struct Consumed(EndingSpan);

impl Drop for Consumed {
    fn drop(&mut self) {
        self.0.finish(End::Ok);
    }
}

impl<T: fmt::Debug> fmt::Debug for Received<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("value", &self.value)
            .field("input", &self.input)
            .field("traced", &self.span.0.has_span())
            .field("queue_wait", &self.queue_wait)
            .finish()
    }
}

impl<T> Deref for Received<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Received<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Received<T> {
    /// `value` from input `input`, processed under `span` (its consumer span, or the
    /// producer's carried context), which `producer` handed over.
    pub(crate) fn new(
        value: T,
        span: EndingSpan,
        producer: Option<Context>,
        queue_wait: Option<Duration>,
        input: usize,
    ) -> Self {
        Self {
            value,
            span: Consumed(span),
            producer,
            queue_wait,
            input,
        }
    }

    /// The value.
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

    /// The value, mutably.
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

    /// The context to process the value under: the consumer span's when one was
    /// started, else the producer's when it carried one (a valid span context, sampled
    /// or not, or baggage); `None` when the producer had no context to carry.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert!(msg.context().is_none());
    /// ```
    pub fn context(&self) -> Option<&Context> {
        self.span.0.context()
    }

    /// Whether taking the value started a consumer span (the consumer's own trace, or
    /// the producer's, was sampled).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert!(!msg.has_span());
    /// ```
    pub fn has_span(&self) -> bool {
        self.span.0.has_span()
    }

    /// The producer's context, when it carried one (see [`context`](Self::context)).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert!(msg.producer_context().is_none());
    /// ```
    pub fn producer_context(&self) -> Option<&Context> {
        self.producer.as_ref()
    }

    /// How long the value waited in the queue, when it was timed: handed over inside a
    /// sampled trace, or one of the values sampled for the queue-time metric (only when
    /// an SDK reads the metrics). Always `None` for fan-in items.
    ///
    /// A value sent inside a sampled trace was timed on the clock spans are stamped with,
    /// up to its consumer span's start (the span's `otelconc.queue_wait`); any other on
    /// tokio's clock (a value sent outside a sampled trace and received under the
    /// receiver's sampled span included: its span gets that time).
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

    /// The index of the fan-in input the item came from, in the order inputs were
    /// added; always 0 for a message received from a channel.
    ///
    /// # Examples
    /// ```
    /// # use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut out = otelconc::fan::fan_in([futures::stream::iter([7]), futures::stream::iter([8])]);
    /// let first = out.next().await.unwrap();
    /// assert!(first.input() < 2);
    /// # }
    /// ```
    pub fn input(&self) -> usize {
        self.input
    }

    /// The value; ends the consumer span.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(2).unwrap();
    /// # let msg = tokio::runtime::Runtime::new().unwrap().block_on(rx.recv_traced()).unwrap();
    /// assert_eq!(msg.into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The value and the context to process it under (see [`context`](Self::context)).
    /// A consumer span in it ends when the last clone of the context is dropped.
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
        let Self {
            value, mut span, ..
        } = self;
        let (cx, _) = std::mem::take(&mut span.0).into_parts();
        (value, cx)
    }

    /// Runs `f(value)` under [`context`](Self::context) (so spans it starts are children
    /// of the consumer span, or stay in the producer's trace, and logs written in it
    /// carry that trace id and baggage), then ends the span.
    ///
    /// # Panics
    /// If `f` or its future panics, the consumer span ends with status Error and
    /// `error.type = panic` (the panic message as its description), and the panic is
    /// resumed with that message (a `String`) as its payload.
    ///
    /// # Cancel safety
    /// If `in_span` is used as a branch in `tokio::select!` and another branch
    /// completes first, then `f` may have run only in part. **The value is dropped
    /// and will be lost**, and the span ends with status Unset and
    /// `otelconc.outcome = cancelled`.
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
        let Self {
            value, mut span, ..
        } = self;
        // Dropped mid-way, the span ends as cancelled; finished, as done.
        let span = std::mem::take(&mut span.0);
        let mut work = pin!(Guarded::new(async move { f(value).await }, span));
        match work.as_mut().await {
            Ok(out) => {
                work.as_mut().span().finish(End::Ok);
                out
            }
            Err(message) => {
                work.as_mut().span().finish(End::panic(message.clone()));
                std::panic::resume_unwind(Box::new(message))
            }
        }
    }
}

/// What [`Receiver::recv_many_traced`](super::Receiver::recv_many_traced) took: how many
/// messages, and the context to process them under.
///
/// The batch span (`otelconc.channel.receive_batch`, kind INTERNAL) is started when the
/// receiver runs inside a sampled trace (its parent) or, failing that, when a message of
/// the batch was sent inside one (the first such message's context is its parent). It
/// links to the span context every message of the batch carried, sampled or not, and
/// ends when this value is dropped. With neither, no span is started and
/// [`context`](Self::context) is the context the first message that carried one
/// brought (so work run under it stays in that producer's trace).
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
    span: Consumed,
}

impl fmt::Debug for ReceivedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedBatch")
            .field("len", &self.len)
            .field("traced", &self.span.0.has_span())
            .finish()
    }
}

impl ReceivedBatch {
    /// `len` messages, processed under `span`.
    pub(super) fn new(len: usize, span: EndingSpan) -> Self {
        Self {
            len,
            span: Consumed(span),
        }
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

    /// The context to process the batch under: the batch span's when one was started,
    /// else the first context a message of the batch carried (a valid span context,
    /// sampled or not, or baggage); `None` when neither.
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
        self.span.0.context()
    }

    /// The [`context`](Self::context), to run the batch's processing in; a batch span in
    /// it ends when the last clone of it is dropped.
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
        std::mem::take(&mut self.span.0).into_parts().0
    }
}
