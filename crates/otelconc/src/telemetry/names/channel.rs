//! Instruments and spans of the `channel` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Span attribute: how many messages a `recv_many` batch took.
pub(crate) const ATTR_BATCH_SIZE: &str = "otelconc.channel.batch_size";

/// Outcomes of `otelconc.channel.sent`.
pub(crate) const SEND_OUTCOMES: &[&str] = &["ok", "full", "closed", "timeout", "cancelled"];
/// Outcomes of `otelconc.channel.received`.
pub(crate) const RECV_OUTCOMES: &[&str] = &["ok", "empty", "closed", "timeout", "cancelled"];

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[AttributeSpec {
    key: ATTR_BATCH_SIZE,
    description: "How many messages a `recv_many_traced` batch took",
}];

/// Send attempts by outcome.
pub const SENT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.sent",
    kind: InstrumentKind::ObservableCounter,
    unit: "{message}",
    description: "Send attempts by outcome (ok, full, closed, timeout, cancelled)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Receive attempts by outcome.
pub const RECEIVED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.received",
    kind: InstrumentKind::ObservableCounter,
    unit: "{message}",
    description: "Receive attempts by outcome (ok, empty, closed, timeout, cancelled)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Messages in the channel now.
pub const DEPTH: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.depth",
    kind: InstrumentKind::ObservableGauge,
    unit: "{message}",
    description: "Messages in the channel at collection time",
    attributes: &[ATTR_NAME],
};

/// Capacity of a bounded channel.
pub const CAPACITY: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.capacity",
    kind: InstrumentKind::ObservableGauge,
    unit: "{message}",
    description: "Capacity of a bounded channel (not reported for unbounded ones)",
    attributes: &[ATTR_NAME],
};

/// Time a sender was blocked waiting for space.
pub const SEND_WAIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.send.wait",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a send or a reservation waited for space: only those that had to wait, 1 wait in 64 per handle",
    attributes: &[ATTR_NAME],
};

/// Time a receiver was blocked waiting for a message.
pub const RECV_WAIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.recv.wait",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a receive waited for a message: only receives that had to wait, 1 wait in 64 per handle",
    attributes: &[ATTR_NAME],
};

/// Time messages spent in the queue.
pub const QUEUE_TIME: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.queue_time",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a message spent in the channel, for 1 message in 256 per sender handle plus every message sent inside a sampled trace",
    attributes: &[ATTR_NAME],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    SENT, RECEIVED, DEPTH, CAPACITY, SEND_WAIT, RECV_WAIT, QUEUE_TIME,
];

/// The producer side of a message sent inside a sampled trace, only on a channel built
/// with `producer_spans(true)` (off by default).
pub const SEND_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.channel.send",
    kind: SpanKind::Producer,
    attributes: &[ATTR_NAME],
    parent: "the sender's context",
    description: "One send inside a sampled trace, until the message is in the channel (error status if the send failed); built only on a channel built with `producer_spans(true)`, which is off by default",
};

/// The consumer side of one message (`recv_traced`).
pub const RECEIVE_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.channel.receive",
    kind: SpanKind::Consumer,
    attributes: &[ATTR_NAME, ATTR_QUEUE_WAIT],
    parent: "the span that was current where the message was sent; with `producer_spans(true)`, that send's `otelconc.channel.send` span",
    description: "The processing of one message taken by `recv_traced`, until its `Received` is dropped or its `in_span` future ends; built only for a message sent inside a sampled trace (plain `recv` builds none)",
};

/// The consumer side of a `recv_many_traced` batch.
pub const RECEIVE_BATCH_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.channel.receive_batch",
    kind: SpanKind::Consumer,
    attributes: &[ATTR_NAME, ATTR_BATCH_SIZE],
    parent: "the receiver's current context; links to the context each traced message carried (its sender's span, or its `otelconc.channel.send` span)",
    description: "The processing of one batch taken by `recv_many_traced`, until its `ReceivedBatch` is dropped; built only when a message of the batch was sent inside a sampled trace",
};

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[SEND_SPAN, RECEIVE_SPAN, RECEIVE_BATCH_SPAN];
