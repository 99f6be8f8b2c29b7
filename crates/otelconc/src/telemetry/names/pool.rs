//! Instruments and spans of the `pool` module.

use opentelemetry::trace::SpanKind;

use super::{
    ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, ATTR_REASON, InstrumentKind,
};
use super::{AttributeSpec, InstrumentSpec, SpanSpec};

/// Span attribute: the name a [`Job`](crate::pool::Job) gives itself.
pub const ATTR_JOB_NAME: &str = "otelconc.pool.job.name";
/// Span attribute: the id a [`Job`](crate::pool::Job) gives itself (spans only, never
/// metrics).
pub const ATTR_JOB_ID: &str = "otelconc.pool.job.id";

/// `otelconc.outcome` values of [`JOBS`], [`JOB_DURATION`] and [`QUEUE_WAIT`].
pub(crate) const OUTCOMES: &[&str] = &["ok", "panic", "timeout", "cancelled", "not_started"];
/// `otelconc.reason` values of [`REJECTED`].
pub(crate) const REJECT_REASONS: &[&str] = &["full", "closed"];

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[
    AttributeSpec {
        key: ATTR_JOB_NAME,
        description: "The name a job gives itself (`Job::name`, or `Named`)",
    },
    AttributeSpec {
        key: ATTR_JOB_ID,
        description: "The id a job gives itself (`Job::id`, or `Named`); on spans only, never on metrics",
    },
];

/// Jobs that ended, by outcome.
pub const JOBS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.jobs",
    kind: InstrumentKind::ObservableCounter,
    unit: "{job}",
    description: "Jobs that ended, by outcome (ok, panic, timeout, cancelled, not_started)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Jobs the pool accepted.
pub const SUBMITTED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.submitted",
    kind: InstrumentKind::ObservableCounter,
    unit: "{job}",
    description: "Jobs the pool accepted into its queue",
    attributes: &[ATTR_NAME],
};

/// Jobs the pool refused.
pub const REJECTED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.rejected",
    kind: InstrumentKind::ObservableCounter,
    unit: "{job}",
    description: "Jobs the pool refused, by reason (full: try_submit on a full queue; closed)",
    attributes: &[ATTR_NAME, ATTR_REASON],
};

/// Run time of a job (a 1-in-N sample of jobs, the builder's `timing_sample`).
pub const JOB_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.job.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a job ran, by outcome; a 1-in-N sample of jobs (the pool's timing_sample, default 16)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Time a job waited in the queue (same sample as [`JOB_DURATION`]).
pub const QUEUE_WAIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.queue.wait",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Time a job waited in the queue before a worker took it, by outcome; same sample as otelconc.pool.job.duration",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Jobs waiting in the queue.
pub const QUEUE_DEPTH: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.queue.depth",
    kind: InstrumentKind::ObservableGauge,
    unit: "{job}",
    description: "Jobs waiting in the queue",
    attributes: &[ATTR_NAME],
};

/// Configured workers.
pub const WORKERS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.workers",
    kind: InstrumentKind::ObservableGauge,
    unit: "{worker}",
    description: "Workers the pool is configured to run",
    attributes: &[ATTR_NAME],
};

/// Workers running a job.
pub const BUSY: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.busy",
    kind: InstrumentKind::ObservableGauge,
    unit: "{worker}",
    description: "Workers running a job at collection time",
    attributes: &[ATTR_NAME],
};

/// Busy workers over configured workers.
pub const UTILIZATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.utilization",
    kind: InstrumentKind::ObservableGauge,
    unit: "1",
    description: "Busy workers divided by configured workers, at collection time",
    attributes: &[ATTR_NAME],
};

/// Age of the longest-running job.
pub const MAX_JOB_AGE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.job.max_age",
    kind: InstrumentKind::ObservableGauge,
    unit: "s",
    description: "How long the longest-running job has been running, measured from the first collection that saw it running, so it trails by up to one collection interval (0 when idle); spots stuck jobs",
    attributes: &[ATTR_NAME],
};

/// Outcomes the outcomes stream dropped because its buffer was full.
pub const OUTCOMES_DROPPED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.outcomes.dropped",
    kind: InstrumentKind::ObservableCounter,
    unit: "{job}",
    description: "Job outcomes not delivered to the outcomes stream because its buffer was full (nobody read it fast enough)",
    attributes: &[ATTR_NAME],
};

/// One span per job.
pub const JOB_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.pool.job",
    kind: SpanKind::Internal,
    attributes: &[
        ATTR_NAME,
        ATTR_JOB_NAME,
        ATTR_JOB_ID,
        ATTR_QUEUE_WAIT,
        ATTR_ERROR_TYPE,
        ATTR_OUTCOME,
    ],
    parent: "the consumer rule: a worker runs outside any span, so the parent is the submitter's context captured at submit (never a worker or pool span), and the span links to it",
    description: "One job's run, from a worker taking it until it ends; built only for a job submitted inside a sampled trace. A panic or the per-job timeout is a failure: status Error, error.type `panic` or `timeout`. A job cancelled at abort or by a passed shutdown deadline ends with status Unset and otelconc.outcome=cancelled; a job dropped from the queue before it started has no span",
};

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    JOBS,
    SUBMITTED,
    REJECTED,
    JOB_DURATION,
    QUEUE_WAIT,
    QUEUE_DEPTH,
    WORKERS,
    BUSY,
    UTILIZATION,
    MAX_JOB_AGE,
    OUTCOMES_DROPPED,
];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[JOB_SPAN];
