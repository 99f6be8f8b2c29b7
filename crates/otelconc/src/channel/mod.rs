//! A multi-producer multi-consumer channel whose messages carry their trace.
//!
//! Use it where you would use `async-channel` or `tokio::sync::mpsc` and want to see,
//! per channel, how many messages went through, how deep the queue is, how long
//! messages sat in it and how long senders and receivers waited, and want the trace of
//! the code that sent a message to continue in the code that processes it.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (tx, rx) = otelconc::channel::bounded::<u64>("orders", 1024);
//! let producer = tokio::spawn(async move {
//!     for i in 0..10 {
//!         tx.send(i).await.unwrap();
//!     }
//! });
//! let mut sum = 0;
//! while let Ok(v) = rx.recv().await {
//!     sum += v;
//! }
//! producer.await.unwrap();
//! assert_eq!(sum, 45);
//! # });
//! ```
//!
//! # Shape
//! [`bounded`] and [`unbounded`] (or [`builder`] to inject a
//! [`Telemetry`]) return a [`Sender`] and a [`Receiver`];
//! both are `Clone`, every message goes to exactly one receiver. The method families
//! are tokio's: `send / try_send / send_timeout / send_lossless / blocking_send`,
//! `recv / try_recv / recv_timeout / recv_many / recv_blocking`, `close() -> bool /
//! is_closed / closed()`, `len / capacity / sender_count / receiver_count`. The
//! [`Receiver`] is a `futures::Stream`. Every send error hands the message back.
//! Capacity 0 and an empty name are refused at construction ([`BuildError`]).
//!
//! # Cancel safety and what is never lost
//! - `recv`, `recv_traced`, `recv_many`, `recv_timeout` and the stream are cancel safe:
//!   a message leaves the channel only in the poll that returns it.
//! - `send` is not lossless: dropped before completing, the message is dropped unsent.
//!   [`Sender::send_lossless`] is: its future is `Unpin`, so `select!` can poll it by
//!   `&mut`, and [`SendLossless::cancel`] hands the message back when another branch
//!   won. [`Sender::send_timeout`] is built on it and returns the message on timeout.
//! - A message a send reported as sent is received exactly once, or, if every receiver
//!   is gone, dropped exactly once with the channel.
//! - Dropping the last receiver closes the channel: blocked senders wake with `Closed`
//!   and their message.
//!
//! ## In `tokio::select!`
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tokio_util::sync::CancellationToken;
//! let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
//! let stop = CancellationToken::new();
//! stop.cancel();
//! tx.send(0).await.unwrap(); // the channel is now full
//!
//! // Receiving: `recv` is cancel safe, use it directly.
//! tokio::select! {
//!     biased;
//!     _ = stop.cancelled() => {}
//!     msg = rx.recv() => { let _ = msg; }
//! }
//! // Sending: keep the future outside, poll it by `&mut`, take the message back.
//! let mut send = tx.send_lossless(1);
//! tokio::select! {
//!     biased;
//!     _ = stop.cancelled() => {
//!         let kept = send.cancel();
//!         assert_eq!(kept, Some(1)); // not sent, not lost
//!     }
//!     r = &mut send => r.unwrap(),
//! }
//! # });
//! ```
//!
//! # Telemetry
//! Sends and receives by outcome, depth, capacity, and sampled wait and queue-time
//! histograms, each with the channel's name. A message sent inside a sampled trace
//! carries the sender's context: [`Receiver::recv_traced`] hands it over with an
//! `otelconc.channel.receive` span (CONSUMER, child of the span current at the send),
//! plain [`Receiver::recv`] builds no span, and no `otelconc.channel.send` (PRODUCER)
//! span is built unless the channel was built with
//! [`producer_spans(true)`](Builder::producer_spans). Every instrument and span is in
//! [`docs/telemetry.md`][telemetry].
//!
//! # Cost
//! A message costs about what it costs in `async-channel` with no SDK (1.02x) and about
//! 1.2x with SDK metrics; received with a span inside a sampled trace it costs about 4.7x
//! (one SDK span); see [`docs/costs.md`][costs].
//!
//! It is `async-channel` underneath: a well-kept MPMC channel with `Sync` handles and a
//! `Stream` receiver, which tokio's channels (single consumer, or broadcast) are not.
//! What otelconc adds per message is small on purpose:
//! - the envelope is `T` plus one pointer (`Option<Box<..>>`), `None` (no allocation)
//!   except for the 1-in-256 queue-time sample and for messages sent inside a sampled
//!   trace;
//! - counts are relaxed `AtomicU64`s owned by each handle (padded to their own cache
//!   lines, so producers and consumers never contend on them), summed by observable
//!   counters at collection time; there is no synchronous counter call per message.
//!   The thread that first sends on a handle bumps its count with a plain load and
//!   store (no locked add); other threads using the same handle add atomically into a
//!   second cell, so the count stays exact;
//! - depth and capacity are read from the channel at collection time;
//! - timestamps, which cost as much as a whole channel operation, are taken only for
//!   sampled or traced messages and for 1 wait in 64;
//! - successful receives are not counted at all: `received{outcome=ok}` is derived as
//!   sent minus depth at collection time (exact when the channel is quiet, never ahead
//!   of the truth, monotonic), which saves a locked add per message;
//! - when nothing reads the metrics (no SDK: the meter drops the callbacks, which the
//!   channel notices when it is built) and the tracer is a no-op, the channel carries
//!   bare `T`s (no envelope) and counts, samples and times nothing: it is then
//!   async-channel plus one predictable branch per operation.
//!
//! `send_lossless` is hand-written on an `event-listener` event because async-channel's
//! send future owns the message and drops it when cancelled; receivers touch that event
//! only while a lossless sender is actually waiting (one atomic load otherwise).
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod error;
mod inner;
mod received;
mod receiver;
mod sender;
mod shared;

use std::sync::Arc;

pub use error::{
    BuildError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use received::{Received, ReceivedBatch};
pub use receiver::Receiver;
pub use sender::{SendLossless, Sender};

use crate::telemetry::Telemetry;
use shared::Shared;

/// A bounded channel named `name` holding at most `capacity` messages, reporting to the
/// global providers.
///
/// # Panics
/// If `name` is empty or `capacity` is 0 (see [`Builder::try_bounded`] for a `Result`).
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 16);
/// assert_eq!(tx.capacity(), Some(16));
/// # drop(rx);
/// ```
pub fn bounded<T: Send + 'static>(
    name: impl Into<String>,
    capacity: usize,
) -> (Sender<T>, Receiver<T>) {
    builder(name).bounded(capacity)
}

/// An unbounded channel named `name`, reporting to the global providers.
///
/// # Panics
/// If `name` is empty (see [`Builder::try_unbounded`] for a `Result`).
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::unbounded::<u32>("events");
/// assert_eq!(tx.capacity(), None);
/// # drop(rx);
/// ```
pub fn unbounded<T: Send + 'static>(name: impl Into<String>) -> (Sender<T>, Receiver<T>) {
    builder(name).unbounded()
}

/// A [`Builder`] for a channel named `name`, to choose its [`Telemetry`].
///
/// # Examples
/// ```
/// use otelconc::telemetry::Telemetry;
/// let (tx, rx) = otelconc::channel::builder("jobs")
///     .telemetry(Telemetry::global())
///     .bounded::<u32>(8);
/// # drop((tx, rx));
/// ```
pub fn builder(name: impl Into<String>) -> Builder {
    Builder {
        name: name.into(),
        telemetry: None,
        producer_spans: false,
    }
}

/// Builds a channel: its name, its [`Telemetry`], then bounded or unbounded.
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::builder("jobs").unbounded::<u32>();
/// # drop((tx, rx));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    name: String,
    telemetry: Option<Telemetry>,
    producer_spans: bool,
}

impl Builder {
    /// The meter, tracer and span policy to use (default [`Telemetry::global`]).
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::{SpanPolicy, Telemetry};
    /// let t = Telemetry::global().with_span_policy(SpanPolicy::Never);
    /// let (tx, rx) = otelconc::channel::builder("jobs").telemetry(t).bounded::<u32>(8);
    /// # drop((tx, rx));
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Whether every send inside a sampled trace gets its own `otelconc.channel.send`
    /// span (kind PRODUCER, child of the sender's context; the consumer span is then
    /// its child). Default `false`: the message carries the sender's context as is and
    /// the consumer span is a child of the sender's span, which keeps the traced cost
    /// at one span per message.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::builder("jobs").producer_spans(true).bounded::<u32>(8);
    /// # drop((tx, rx));
    /// ```
    pub fn producer_spans(mut self, on: bool) -> Self {
        self.producer_spans = on;
        self
    }

    /// A bounded channel.
    ///
    /// # Panics
    /// If the name is empty or `capacity` is 0.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::builder("jobs").bounded::<u32>(2);
    /// assert_eq!(tx.capacity(), Some(2));
    /// ```
    pub fn bounded<T: Send + 'static>(self, capacity: usize) -> (Sender<T>, Receiver<T>) {
        match self.try_bounded(capacity) {
            Ok(pair) => pair,
            Err(e) => panic!("{e}"),
        }
    }

    /// A bounded channel, or why the configuration is invalid.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`], [`BuildError::ZeroCapacity`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{builder, BuildError};
    /// assert_eq!(builder("").try_bounded::<u32>(1).unwrap_err(), BuildError::EmptyName);
    /// assert_eq!(builder("a").try_bounded::<u32>(0).unwrap_err(), BuildError::ZeroCapacity);
    /// ```
    pub fn try_bounded<T: Send + 'static>(
        self,
        capacity: usize,
    ) -> Result<(Sender<T>, Receiver<T>), BuildError> {
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        self.build(Some(capacity))
    }

    /// An unbounded channel.
    ///
    /// # Panics
    /// If the name is empty.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::builder("jobs").unbounded::<u32>();
    /// assert_eq!(tx.capacity(), None);
    /// ```
    pub fn unbounded<T: Send + 'static>(self) -> (Sender<T>, Receiver<T>) {
        match self.try_unbounded() {
            Ok(pair) => pair,
            Err(e) => panic!("{e}"),
        }
    }

    /// An unbounded channel, or why the configuration is invalid.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`].
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::channel::builder("").try_unbounded::<u32>().is_err());
    /// ```
    pub fn try_unbounded<T: Send + 'static>(self) -> Result<(Sender<T>, Receiver<T>), BuildError> {
        self.build(None)
    }

    fn build<T: Send + 'static>(
        self,
        capacity: Option<usize>,
    ) -> Result<(Sender<T>, Receiver<T>), BuildError> {
        if self.name.is_empty() {
            return Err(BuildError::EmptyName);
        }
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let shared: Arc<Shared> = Shared::new(self.name, telemetry, self.producer_spans, capacity);
        shared.register_observers();
        let (tx, rx) = if shared.is_observed() {
            let (tx, rx) = raw_channel(capacity);
            shared.set_len(&rx);
            (inner::Tx::Env(tx), inner::Rx::Env { rx })
        } else {
            let (tx, rx) = raw_channel(capacity);
            shared.set_len(&rx);
            (inner::Tx::Bare(tx), inner::Rx::Bare { rx })
        };
        let sender = Sender {
            inner: tx,
            counts: shared.send_counts(),
            shared: shared.clone(),
        };
        let receiver = Receiver {
            inner: rx,
            counts: shared.recv_counts(),
            shared,
        };
        Ok((sender, receiver))
    }
}

/// The underlying async-channel pair: bounded to `capacity`, or unbounded.
fn raw_channel<M>(
    capacity: Option<usize>,
) -> (async_channel::Sender<M>, async_channel::Receiver<M>) {
    match capacity {
        Some(c) => async_channel::bounded(c),
        None => async_channel::unbounded(),
    }
}
