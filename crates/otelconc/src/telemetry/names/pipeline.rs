//! Instruments and spans of the `pipeline` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT};
use super::{AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Metric and span attribute: the name of the pipeline stage.
pub const ATTR_STAGE: &str = "otelconc.stage";
/// Span attribute: the item's sequence number in its pipeline run (0-based, input order).
pub(crate) const ATTR_SEQ: &str = "otelconc.pipeline.seq";

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[
    AttributeSpec {
        key: ATTR_STAGE,
        description: "The name of the pipeline stage",
    },
    AttributeSpec {
        key: ATTR_SEQ,
        description: "The item's sequence number in its pipeline run (0-based, input order)",
    },
];

/// `otelconc.pipeline.stage.received`: items a stage took from its input.
pub const RECEIVED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.received",
    kind: InstrumentKind::ObservableCounter,
    unit: "{item}",
    description: "Items a pipeline stage took from its input",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.processed`: items a stage finished, by outcome
/// (`ok`, `error`, `panic`).
pub const PROCESSED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.processed",
    kind: InstrumentKind::ObservableCounter,
    unit: "{item}",
    description: "Items a pipeline stage finished, by outcome (ok, error, panic)",
    attributes: &[ATTR_NAME, ATTR_STAGE, ATTR_OUTCOME],
};

/// `otelconc.pipeline.stage.duration`: time a stage spent on one item (sampled).
pub const DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a pipeline stage spent on one item (1 in N items, plus every item in a sampled trace)",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.buffer.depth`: items waiting in a stage's output buffer.
pub const BUFFER_DEPTH: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.buffer.depth",
    kind: InstrumentKind::ObservableGauge,
    unit: "{item}",
    description: "Items waiting in a pipeline stage's output buffer",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[RECEIVED, PROCESSED, DURATION, BUFFER_DEPTH];

/// `otelconc.pipeline.stage`: one stage working on one item.
pub const STAGE_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.pipeline.stage",
    kind: SpanKind::Internal,
    attributes: &[
        ATTR_NAME,
        ATTR_STAGE,
        ATTR_SEQ,
        ATTR_QUEUE_WAIT,
        ATTR_ERROR_TYPE,
        ATTR_OUTCOME,
    ],
    parent: "the consumer rule, with the item's carried context as the producer: stage workers run outside any span, so a child of the item's previous stage span (for the first stage, of the context where the item entered: `send`, `run`), linked to it; a `Chain` stage runs on the caller's task, so a child of the caller's sampled span, linked to the previous stage's span (the first, to the caller's)",
    description: "One stage's work on one item, with the stage function's own spans nested under it; a failed call ends it with status Error and `error.type` (the stage error's type name, or `panic`), an item dropped because the run stopped with status Unset and `otelconc.outcome = cancelled`. Built only for an item that entered inside a sampled trace (the item carries an unsampled context too, and the stage function runs under it, but no span is built)",
};

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[STAGE_SPAN];
