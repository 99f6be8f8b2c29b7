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
//! are tokio's: `send / try_send / send_timeout / blocking_send`, `reserve /
//! try_reserve -> Permit` (plus `send_lossless`), `recv / try_recv / recv_timeout /
//! recv_many / recv_blocking`, `close() -> bool / is_closed / closed()`, `len / capacity
//! / sender_count / receiver_count`. The [`Receiver`] is a `futures::Stream`. Every
//! send error hands the message back.
//! Capacity 0 and an empty name are refused at construction ([`BuildError`]).
//!
//! # Cancel safety and what is never lost
//! - `recv`, `recv_traced`, `recv_many`, `recv_timeout` and the stream are cancel safe:
//!   a message leaves the channel only in the poll that returns it.
//! - `send` is not lossless: dropped before completing, the message is dropped unsent.
//!   [`Sender::reserve`] is cancel safe and takes no message: once it returns a
//!   [`Permit`], [`Permit::send`] puts the message in without waiting. Reservations
//!   never over-commit the channel, but the plain `send`, `try_send` and
//!   `blocking_send` do not look at them (so that they cost what async-channel costs):
//!   a permit's send fails with `Full`, handing the message back, only if one of those
//!   filled the held slot. [`Sender::send_lossless`] is the send that never fails with
//!   `Full`: its future is `Unpin`, so `select!` can poll it by `&mut`, and
//!   [`SendLossless::cancel`] hands the message back when another branch won.
//!   [`Sender::send_timeout`] is built on it and returns the message on timeout.
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
//! // Sending: reserve a slot (cancel safe), then send into it.
//! tokio::select! {
//!     biased;
//!     _ = stop.cancelled() => {} // no slot held, no message taken
//!     permit = tx.reserve() => permit.unwrap().send(1).unwrap(),
//! }
//! // Or, holding the message already: poll `send_lossless` by `&mut`, take it back.
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
//! Sends by outcome (failures with `error.type`), messages received, the channel's size
//! and capacity (up-down counters: saturation is size / capacity), the age of the oldest
//! message still queued (a gauge, the backlog alert), and sampled wait and queue-time
//! histograms, each with the channel's name. Receives that found the channel empty or
//! closed, or gave up, are polls and count nowhere. Every message carries the sender's context
//! whenever it holds a valid span context, sampled or not, or baggage (a channel nothing
//! observes excepted, see [Cost](#cost)). [`Receiver::recv_traced`] hands it over as a
//! [`Received`]: with an `otelconc.channel.receive` span when the receiver or the
//! sender runs inside a sampled trace (parent: the receiver's sampled span, else the
//! sender's context; linked to the sender's span context either way), else with the
//! sender's own context, so that work run under [`Received::context`] stays in the
//! sender's trace (its spans follow the sender's sampling decision, its logs carry the
//! sender's trace id and baggage). [`Receiver::recv_many_traced`] does the same for a
//! batch, linking every message. Plain [`Receiver::recv`] builds no span and drops the
//! context, and no `otelconc.channel.send` span is built unless the channel was built
//! with [`producer_spans(true)`](Builder::producer_spans). Every otelconc span is kind
//! INTERNAL; a failed send ends its span with `error.type` (`queue_full`, `closed`,
//! `timeout`), a cancelled one with `otelconc.outcome = cancelled`. Every instrument
//! and span is in [`docs/telemetry.md`][telemetry].
//!
//! # Cost
//! A message costs about what it costs in `async-channel` with no SDK (0.9-1.1x), about
//! 1.0-1.2x with SDK metrics (one recorded run read 2.0x with one producer and one
//! consumer), 1.7-4x when it carries a sampled context to a plain `recv`, and 4-13x when
//! it is received with a span (one SDK span), the lower figures with four producers and
//! four consumers; see [`docs/costs.md`][costs].
//!
//! It is `async-channel` underneath: a well-kept MPMC channel with `Sync` handles and a
//! `Stream` receiver, which tokio's channels (single consumer, or broadcast) are not.
//! What otelconc adds per message is small on purpose:
//! - a message travels as `T` plus one pointer (`Option<Box<..>>`), `None` (no
//!   allocation) unless it carries a context (one context clone and one small box; no
//!   span unless the trace is sampled) or is in the 1-in-256 queue-time sample;
//! - counts are striped per thread: each thread counts the channel's sends and
//!   receives on a cache line of its own with a plain load and store (no locked add,
//!   no line shared between producers and consumers), and observable counters sum the
//!   stripes at collection time; there is no synchronous counter call per message;
//! - size and capacity are read from the channel at collection time, and so is the
//!   oldest message's age: from the sent count and the size, against the instants of
//!   earlier collections, with no timestamp per message (see its description in
//!   [`docs/telemetry.md`][telemetry] for its precision);
//! - timestamps, which cost as much as a whole channel operation, are taken only for
//!   1 message in 256 of each thread (a fixed stride of the thread's sends on the
//!   channel, starting at a random offset per channel) and 1 wait in 64 of each thread
//!   (a fixed stride over all the thread's channels), and for messages sent inside a
//!   sampled trace (whose queue wait goes on their consumer span, not into the
//!   histogram, unless they are in the sample): one at the send, on the clock spans are
//!   stamped with; the wait ends at the consumer span's start, which is the one clock
//!   read of a traced receive before its span ends, and a plain `recv` of such a
//!   message reads no clock;
//! - receives are not counted at all: `otelconc.channel.received` is derived as
//!   sent minus size at collection time (exact when the channel is quiet, never ahead
//!   of the truth, monotonic), which saves an add per message;
//! - **a channel nothing observes** (no SDK reads its metrics: the meter drops the
//!   callbacks, which the channel notices when it is built; and its tracer builds no
//!   spans: a no-op tracer, or [`SpanPolicy::Never`]) carries bare `T`s and **no
//!   context at all**: [`Received::context`] is then always `None`. It counts, samples
//!   and times nothing either: it is async-channel plus one predictable branch per
//!   operation.
//!
//! `reserve` and `send_lossless` are hand-written on an `event-listener` event because
//! async-channel has no reservation and its send future owns the message and drops it
//! when cancelled; receivers touch that event only while someone is actually waiting
//! for a slot (one atomic load otherwise).
//!
//! [`Telemetry`]: crate::telemetry::Telemetry
//! [`SpanPolicy::Never`]: crate::telemetry::SpanPolicy::Never
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod builder;
mod carry;
mod error;
mod metrics;
mod permit;
mod queue;
mod received;
mod receiver;
mod sender;
mod space;
mod state;

pub use builder::{Builder, bounded, builder, unbounded};
pub use error::{
    BuildError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use permit::Permit;
pub use received::{Received, ReceivedBatch};
pub use receiver::Receiver;
pub use sender::{SendLossless, Sender};
