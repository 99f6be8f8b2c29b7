//! Instruments and spans of the `group` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_NAME, ATTR_OUTCOME, AttributeSpec, InstrumentKind, InstrumentSpec, SpanSpec};

/// Span attribute: the index of a task in its group (the order it was spawned in).
pub(crate) const ATTR_TASK_INDEX: &str = "otelconc.group.task.index";

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[AttributeSpec {
    key: ATTR_TASK_INDEX,
    description: "The index of a task in its group, in the order the tasks were spawned (0-based)",
}];

/// Tasks a group started.
pub const TASKS_STARTED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.group.tasks.started",
    kind: InstrumentKind::Counter,
    unit: "{task}",
    description: "Tasks spawned into a task group",
    attributes: &[ATTR_NAME],
};

/// Tasks that ended, by outcome: `ok`, `error`, `panic`, `cancelled` (aborted before
/// it finished, by shutdown or by dropping the group).
pub const TASKS_FINISHED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.group.tasks.finished",
    kind: InstrumentKind::Counter,
    unit: "{task}",
    description: "Tasks of a task group that ended, by outcome (ok, error, panic, cancelled)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Tasks running now.
pub const TASKS_RUNNING: InstrumentSpec = InstrumentSpec {
    name: "otelconc.group.tasks.running",
    kind: InstrumentKind::UpDownCounter,
    unit: "{task}",
    description: "Tasks of a task group started and not yet ended",
    attributes: &[ATTR_NAME],
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[TASKS_STARTED, TASKS_FINISHED, TASKS_RUNNING];

/// One task's run.
pub const TASK: SpanSpec = SpanSpec {
    name: "otelconc.group.task",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_TASK_INDEX],
    parent: "the spawner's context at `spawn`",
    description: "One task's run, until it ends (error status when it fails, panics or is aborted); built only when `spawn` was called inside a sampled trace",
};

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[TASK];
