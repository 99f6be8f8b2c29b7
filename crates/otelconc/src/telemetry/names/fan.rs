//! Instruments and spans of the `fan` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_NAME, ATTR_OUTCOME, InstrumentKind, InstrumentSpec, SpanSpec};

/// Metric and span attribute: the fan-in input an item came from, as the user named it
/// (or its index when unnamed). Its cardinality is the number of distinct input names the
/// user passed to one fan-in.
pub const ATTR_INPUT: &str = "otelconc.fan_in.input";
/// Span attribute: the position of an item in the input of `fan_out_items`, or of a
/// worker in `fan_out`.
pub const ATTR_INDEX: &str = "otelconc.fan_out.index";
/// Span attribute: the number of workers of a `fan_out`.
pub const ATTR_WORKERS: &str = "otelconc.fan_out.workers";

/// Items of `fan_out_items` whose result the stream yielded, by outcome.
pub const ITEMS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.fan_out.items",
    kind: InstrumentKind::Counter,
    unit: "{item}",
    description: "Items of fan_out_items whose result was yielded, by outcome (ok, error, panic)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Items a fan-in merged, by input.
pub const MERGED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.fan_in.items",
    kind: InstrumentKind::Counter,
    unit: "{item}",
    description: "Items a fan-in merged into its output, by input",
    attributes: &[ATTR_NAME, ATTR_INPUT],
};

/// Every instrument this primitive registers.
pub const INSTRUMENTS: &[InstrumentSpec] = &[ITEMS, MERGED];

/// One `fan_out` call: the parent of its workers' task spans.
pub const FAN_OUT: SpanSpec = SpanSpec {
    name: "otelconc.fan_out",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_WORKERS],
    parent: "the caller's context",
};

/// One item of `fan_out_items`.
pub const ITEM: SpanSpec = SpanSpec {
    name: "otelconc.fan_out.item",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_INDEX],
    parent: "the context current when `fan_out_items` was called",
};

/// One item received from a fan-in, linked to the context that produced it.
pub const RECEIVE: SpanSpec = SpanSpec {
    name: "otelconc.fan_in.receive",
    kind: SpanKind::Consumer,
    attributes: &[ATTR_NAME, ATTR_INPUT],
    parent: "the consumer's context when it is in a sampled trace, else the item's producer context; always links to the producer context",
};

/// Every span this primitive builds.
pub const SPANS: &[SpanSpec] = &[FAN_OUT, ITEM, RECEIVE];
