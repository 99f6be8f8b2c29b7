//! Instruments and spans of the `pipeline` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, ATTR_WORKER_STATE};
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
    description: "Seconds a pipeline stage spent on one item, for 1 item in N (the pipeline's time_every, default 64: every Nth item each worker takes, traced items not added beyond it; a chain stage's calls are all timed)",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.buffer.size`: items waiting in a stage's output buffer.
pub const BUFFER_SIZE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.buffer.size",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{item}",
    description: "Items waiting in a pipeline stage's output buffer at collection time (summed over the pipeline's runs in progress)",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.buffer.capacity`: items a stage's output buffer holds at most.
pub const BUFFER_CAPACITY: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.buffer.capacity",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{item}",
    description: "Items a pipeline stage's output buffer holds at most (the stage's buffer, summed over the runs in progress); saturation is otelconc.pipeline.stage.buffer.size / otelconc.pipeline.stage.buffer.capacity",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.buffer.oldest.age`: the oldest item in a stage's output buffer.
pub const BUFFER_OLDEST_AGE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.buffer.oldest.age",
    kind: InstrumentKind::ObservableGauge,
    unit: "s",
    description: "Seconds the oldest item still in a pipeline stage's output buffer has waited, as a lower bound: measured from the first collection after the stage put it there, so short of its true age by less than one collection interval (two, for a backlog older than 1024 collections that kept growing; a collection that races an item going in can report the age of the item just taken instead); 0 when empty. The largest over the runs in progress",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.busy.time`: time a stage's workers spent busy.
pub const BUSY_TIME: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.busy.time",
    kind: InstrumentKind::ObservableCounter,
    unit: "s",
    description: "Seconds a pipeline stage's workers spent busy, summed over workers: from taking an item until next finding the input empty or the output buffer full. Exact, not sampled, including the busy stretches still going at collection; the stage's utilization over a window is rate(otelconc.pipeline.stage.busy.time) / otelconc.pipeline.stage.worker.limit, and the busiest stage is the bottleneck",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.worker.limit`: a stage's workers.
pub const WORKER_LIMIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.worker.limit",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{worker}",
    description: "Workers a pipeline stage runs: its concurrency, for each run in progress (falling as a finished run's workers exit)",
    attributes: &[ATTR_NAME, ATTR_STAGE],
};

/// `otelconc.pipeline.stage.worker.count`: a stage's workers by state.
pub const WORKER_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pipeline.stage.worker.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{worker}",
    description: "A pipeline stage's workers by state at collection time: busy (between taking an item and next parking), idle (parked on an empty input or a full output buffer)",
    attributes: &[ATTR_NAME, ATTR_STAGE, ATTR_WORKER_STATE],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    RECEIVED,
    PROCESSED,
    DURATION,
    BUFFER_SIZE,
    BUFFER_CAPACITY,
    BUFFER_OLDEST_AGE,
    BUSY_TIME,
    WORKER_LIMIT,
    WORKER_COUNT,
];

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
