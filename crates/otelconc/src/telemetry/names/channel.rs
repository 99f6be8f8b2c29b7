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
/// `error.type` of each of [`SEND_OUTCOMES`] that is a failure (`None`: not one).
pub(crate) const SEND_ERRORS: &[Option<&str>] = &[
    None,
    Some("queue_full"),
    Some("closed"),
    Some("timeout"),
    None,
];

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
    description: "Send attempts by outcome: ok; full (a try_send on a full channel), closed and timeout, each with error.type (queue_full, closed, timeout); cancelled (a waiting send dropped; not an error)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Messages delivered to receivers.
pub const RECEIVED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.received",
    kind: InstrumentKind::ObservableCounter,
    unit: "{message}",
    description: "Messages receivers took from the channel (receives that found it empty, closed, or gave up count nowhere: they are polls, not messages)",
    attributes: &[ATTR_NAME],
};

/// Messages in the channel now.
pub const SIZE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.size",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{message}",
    description: "Messages in the channel at collection time",
    attributes: &[ATTR_NAME],
};

/// Capacity of a bounded channel.
pub const CAPACITY: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.capacity",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{message}",
    description: "Messages a bounded channel holds at most (not reported for unbounded ones); saturation is otelconc.channel.size / otelconc.channel.capacity",
    attributes: &[ATTR_NAME],
};

/// Age of the oldest message still in the channel.
pub const OLDEST_AGE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.oldest.age",
    kind: InstrumentKind::ObservableGauge,
    unit: "s",
    description: "Seconds the oldest message still in the channel has waited, as a lower bound: measured from the first collection after it was sent, so short of its true age by less than one collection interval (two, for a backlog older than 1024 collections that kept growing; a collection that races a send can report the age of the message just received instead); 0 when empty. The largest over same-named channels",
    attributes: &[ATTR_NAME],
};

/// Time a sender was blocked waiting for space.
pub const SEND_WAIT_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.send.wait.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a send or a reservation waited for space, for 1 in 64 of the sends that had to wait (every 64th wait of each thread, over all channels: a fixed stride that a channel built per request shares)",
    attributes: &[ATTR_NAME],
};

/// Time a receiver was blocked waiting for a message.
pub const RECEIVE_WAIT_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.receive.wait.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a receive waited for a message, for 1 in 64 of the receives that had to wait (every 64th wait of each thread, over all channels: a fixed stride that a channel built per request shares)",
    attributes: &[ATTR_NAME],
};

/// Time messages spent in the queue.
pub const QUEUE_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.channel.message.queue.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a message spent in the channel, for 1 message in 256 (every 256th message each thread sends on the channel, starting at a random offset per channel, so a channel built per request is not always timed first; messages sent inside a sampled trace are not added beyond it: their queue wait goes on their span)",
    attributes: &[ATTR_NAME],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    SENT,
    RECEIVED,
    SIZE,
    CAPACITY,
    OLDEST_AGE,
    SEND_WAIT_DURATION,
    RECEIVE_WAIT_DURATION,
    QUEUE_DURATION,
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
