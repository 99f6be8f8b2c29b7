//! Instruments and spans of the `channel` module.

use opentelemetry::trace::SpanKind;

use super::{
    ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, AttributeSpec, InstrumentKind,
};
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
    description: "Time a send or a reservation waited for space: only those that had to wait, 1 wait in 64 of each thread",
    attributes: &[ATTR_NAME],
};

/// Time a receiver was blocked waiting for a message.
pub const RECV_WAIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.recv.wait",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a receive waited for a message: only receives that had to wait, 1 wait in 64 of each thread",
    attributes: &[ATTR_NAME],
};

/// Time messages spent in the queue.
pub const QUEUE_TIME: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.queue_time",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a message spent in the channel, for 1 message in 256 sent by each thread (a fixed stride; messages sent inside a sampled trace are not added beyond it: their queue wait goes on their span)",
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
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_ERROR_TYPE, ATTR_OUTCOME],
    parent: "child of the code that sent the message (the sender's sampled context); the message then carries this span's context",
    description: "One send inside a sampled trace, until the message is in the channel; built only on a channel built with `producer_spans(true)`, which is off by default. A failed send ends it with status Error and `error.type` `queue_full`, `closed` or `timeout`; a send dropped or cancelled before it completed ends it with status Unset and `otelconc.outcome=cancelled`",
};

/// The consumer side of one message (`recv_traced`).
pub const RECEIVE_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.channel.receive",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_QUEUE_WAIT, ATTR_ERROR_TYPE, ATTR_OUTCOME],
    parent: "consumer rule: the receiver's sampled span if there is one, else the context the message carried (the sender's span, or its `otelconc.channel.send` span) when sampled; always links to the sender's span context",
    description: "The processing of one message taken by `recv_traced`, until its `Received` is dropped or its `in_span` future ends; built only when the receiver or the sender runs inside a sampled trace (plain `recv` builds none). A panic in `in_span` ends it with `error.type=panic`; an `in_span` future dropped before it finished ends it with status Unset and `otelconc.outcome=cancelled`",
};

/// The consumer side of a `recv_many_traced` batch.
pub const RECEIVE_BATCH_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.channel.receive_batch",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_BATCH_SIZE],
    parent: "batch rule: the receiver's sampled span if there is one, else the context of the first message of the batch that was sent inside a sampled trace; links to the span context every message carried, sampled or not (the SDK keeps 128 links per span by default and drops the rest; `otelconc.channel.batch_size` keeps the count)",
    description: "The processing of one batch taken by `recv_many_traced`, until its `ReceivedBatch` is dropped; built only when the receiver or a sender of the batch runs inside a sampled trace",
};

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[SEND_SPAN, RECEIVE_SPAN, RECEIVE_BATCH_SPAN];
