//! Instruments and spans of the `fan` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use super::{AttributeSpec, InstrumentKind, InstrumentSpec, SpanSpec};

/// Metric and span attribute: the fan-in input an item came from, as the user named it
/// with [`FanInBuilder::input`](crate::fan::FanInBuilder::input) (opt-in). Inputs without
/// a name ([`fan_in`](crate::fan::fan_in),
/// [`FanInBuilder::unnamed_input`](crate::fan::FanInBuilder::unnamed_input)) carry no
/// such attribute, so its cardinality is the number of distinct names the user passed.
pub const ATTR_INPUT: &str = "otelconc.fan_in.input";
/// Span attribute: the position of an item in the input of `fan_out_items`, or of a
/// worker in `fan_out`.
pub(crate) const ATTR_INDEX: &str = "otelconc.fan_out.index";
/// Span attribute: the number of workers of a `fan_out`.
pub(crate) const ATTR_WORKERS: &str = "otelconc.fan_out.workers";

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[
    AttributeSpec {
        key: ATTR_INPUT,
        description: "The fan-in input an item came from, as the user named it (`FanInBuilder::input`); absent for unnamed inputs (`fan_in`, `FanInBuilder::unnamed_input`), so there are as many values as distinct names given to one fan-in",
    },
    AttributeSpec {
        key: ATTR_INDEX,
        description: "The position of an item in the input of `fan_out_items` (0-based)",
    },
    AttributeSpec {
        key: ATTR_WORKERS,
        description: "The number of workers of a `fan_out`",
    },
];

/// Items of `fan_out_items` whose result the stream yielded, by outcome.
pub const ITEMS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.fan_out.items",
    kind: InstrumentKind::ObservableCounter,
    unit: "{item}",
    description: "Items of fan_out_items whose result was yielded, by outcome: ok, error (the item's error; its type name is on the item's span), panic (error.type = panic)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Items a fan-in merged, by input.
pub const MERGED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.fan_in.items",
    kind: InstrumentKind::Counter,
    unit: "{item}",
    description: "Items a fan-in merged into its output, by input for inputs the user named (none for unnamed inputs, the default of fan_in)",
    attributes: &[ATTR_NAME, ATTR_INPUT],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[ITEMS, MERGED];

/// One `fan_out` call: the parent of its workers' task spans.
pub const FAN_OUT: SpanSpec = SpanSpec {
    name: "otelconc.fan_out",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_WORKERS, ATTR_ERROR_TYPE, ATTR_OUTCOME],
    parent: "the caller's context (the code that handed the work over)",
    description: "One `fan_out` call, until every worker has ended; its workers run as `otelconc.group.task` spans under it. Status Error with `error.type` (the first failed worker's error type name, or `panic`) when a worker failed; status Unset with `otelconc.outcome = cancelled` when the call was dropped before it finished. Built only inside a sampled trace",
};

/// One item of `fan_out_items`.
pub const ITEM: SpanSpec = SpanSpec {
    name: "otelconc.fan_out.item",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_INDEX, ATTR_ERROR_TYPE, ATTR_OUTCOME],
    parent: "the caller's context when `fan_out_items` was called (the code that handed the items over); items run in the task that polls the stream, under this span",
    description: "One item of `fan_out_items` (or its unordered form), from the item's start until its future ends: status Error with `error.type` (the item error's type name, or `panic`) when it failed, status Unset with `otelconc.outcome = cancelled` when it was dropped unfinished (`fail_fast`, or the stream dropped). Built only when the call was inside a sampled trace (an unsampled context is carried and the item runs under it, without a span)",
};

/// One item received from a fan-in, linked to the context that produced it.
pub const RECEIVE: SpanSpec = SpanSpec {
    name: "otelconc.fan_in.receive",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_INPUT, ATTR_OUTCOME],
    parent: "the consumer rule: the consumer's span when it runs inside a sampled trace, else the item's producer context; always links to the producer context",
    description: "One item taken from a fan-in, until the `Received` item is dropped (or its `in_span` finishes; `otelconc.outcome = cancelled` when `in_span` is dropped before it finished); built only for an item whose producer context was carried (`Traced`, or an input added under a context) when the consumer's or the producer's trace is sampled",
};

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[FAN_OUT, ITEM, RECEIVE];
