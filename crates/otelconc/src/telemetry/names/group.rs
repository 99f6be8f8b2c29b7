//! Instruments and spans of the `group` module.

use opentelemetry::trace::SpanKind;

use super::{
    ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, AttributeSpec, InstrumentKind, InstrumentSpec,
    SpanSpec,
};

/// Span attribute: the index of a task in its group (the order it was spawned in).
pub(crate) const ATTR_TASK_INDEX: &str = "otelconc.group.task.index";

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[AttributeSpec {
    key: ATTR_TASK_INDEX,
    description: "The index of a task in its group, in the order the tasks were spawned (0-based)",
}];

/// Tasks a group started.
pub const TASK_STARTED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.group.task.started",
    kind: InstrumentKind::Counter,
    unit: "{task}",
    description: "Tasks spawned into a task group",
    attributes: &[ATTR_NAME],
};

/// Tasks that ended, by outcome: `ok`, `error` and `panic` (with `error.type`),
/// `cancelled` (aborted before it finished, by shutdown or by dropping the group).
pub const TASK_FINISHED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.group.task.finished",
    kind: InstrumentKind::Counter,
    unit: "{task}",
    description: "Tasks of a task group that ended, by outcome: ok, error (error.type = the type name of the group's error type), panic (error.type = panic), cancelled (aborted before it finished; not an error)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Tasks running now.
pub const TASK_ACTIVE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.group.task.active",
    kind: InstrumentKind::UpDownCounter,
    unit: "{task}",
    description: "Tasks of a task group started and not yet ended",
    attributes: &[ATTR_NAME],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[TASK_STARTED, TASK_FINISHED, TASK_ACTIVE];

/// One task's run.
pub const TASK: SpanSpec = SpanSpec {
    name: "otelconc.group.task",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_TASK_INDEX, ATTR_ERROR_TYPE, ATTR_OUTCOME],
    parent: "the consumer rule: a task runs outside any span, so the parent is the spawner's context captured at `spawn` (for a fan-out, the fan-out's span), and the span links to it",
    description: "One task's run, from its first poll until it ends; built only when `spawn` was called inside a sampled trace. A task that returns an error or panics is a failure: status Error, error.type the error's type name or `panic`. A task aborted before it finished (by `shutdown` after its grace period, or by dropping the group, also when a sibling's failure made the caller stop) ends with status Unset and otelconc.outcome=cancelled; a task aborted before its first poll gets one too, started and ended as cancelled when it is dropped",
};

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[TASK];
