//! Instruments and spans of the `pool` module.

use opentelemetry::trace::SpanKind;

use super::{
    ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, ATTR_WORKER_STATE, InstrumentKind,
};
use super::{AttributeSpec, InstrumentSpec, SpanSpec};

/// Span attribute: the name a [`Job`](crate::pool::Job) gives itself.
pub const ATTR_JOB_NAME: &str = "otelconc.pool.job.name";
/// Span attribute: the id a [`Job`](crate::pool::Job) gives itself (spans only, never
/// metrics).
pub const ATTR_JOB_ID: &str = "otelconc.pool.job.id";

/// `otelconc.outcome` values of [`JOBS`], [`JOB_DURATION`] and [`QUEUE_WAIT_DURATION`].
pub(crate) const OUTCOMES: &[&str] = &["ok", "panic", "timeout", "cancelled", "not_started"];
/// `error.type` of each of [`OUTCOMES`] that is a failure (`None`: not one).
pub(crate) const ERRORS: &[Option<&str>] = &[None, Some("panic"), Some("timeout"), None, None];
/// `otelconc.outcome` and `error.type` values of [`SUBMISSIONS`]: accepted, refused
/// because the queue was full, refused because the pool was closed.
pub(crate) const SUBMIT_RESULTS: &[(&str, Option<&str>)] = &[
    ("ok", None),
    ("refused", Some("queue_full")),
    ("refused", Some("closed")),
];

/// `otelconc.worker.state` of a worker running a job.
pub(crate) const STATE_BUSY: &str = "busy";
/// `otelconc.worker.state` of a worker waiting for one.
pub(crate) const STATE_IDLE: &str = "idle";

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
    description: "Jobs that ended, by outcome: ok; panic and timeout, each with error.type (panic, timeout); cancelled (running at abort or a passed shutdown deadline) and not_started (still queued then), not errors",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Submit calls, accepted or refused.
pub const SUBMISSIONS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.submissions",
    kind: InstrumentKind::ObservableCounter,
    unit: "{job}",
    description: "Jobs handed to the pool, by outcome: ok (accepted into the queue), refused with error.type queue_full (try_submit on a full queue) or closed (the pool was closed)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Run time of a job (a 1-in-N sample of jobs, the builder's `timing_sample`).
pub const JOB_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.job.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a job ran, by outcome (error.type as on otelconc.pool.jobs), for 1 job in N (the pool's timing_sample, default 16: every Nth submit of each thread, traced jobs not added beyond it)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Time a job waited in the queue (same sample as [`JOB_DURATION`]).
pub const QUEUE_WAIT_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.queue.wait.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a job waited in the queue before a worker took it, by outcome; the same 1-in-N sample as otelconc.pool.job.duration",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Jobs waiting in the queue.
pub const QUEUE_SIZE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.queue.size",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{job}",
    description: "Jobs waiting in the queue at collection time",
    attributes: &[ATTR_NAME],
};

/// Jobs the queue holds at most.
pub const QUEUE_CAPACITY: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.queue.capacity",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{job}",
    description: "Jobs the queue holds at most (the builder's queue_capacity); saturation is otelconc.pool.queue.size / otelconc.pool.queue.capacity",
    attributes: &[ATTR_NAME],
};

/// Age of the oldest job still queued.
pub const QUEUE_OLDEST_AGE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.queue.oldest.age",
    kind: InstrumentKind::ObservableGauge,
    unit: "s",
    description: "Seconds the oldest job still in the queue has waited, as a lower bound: measured from the first collection after it was submitted, so short of its true age by less than one collection interval (two, for a backlog older than 1024 collections that kept growing; a collection that races a submit can report the age of the job just taken instead); 0 when the queue is empty. The largest over same-named pools",
    attributes: &[ATTR_NAME],
};

/// Configured workers.
pub const WORKER_LIMIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.worker.limit",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{worker}",
    description: "Workers the pool is configured to run (after any resize; falling as workers exit once the pool is closed)",
    attributes: &[ATTR_NAME],
};

/// Workers by state.
pub const WORKER_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.worker.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{worker}",
    description: "Workers by state at collection time: busy (running a job, a worker retiring after a shrink included until it exits), idle (the configured workers not running one)",
    attributes: &[ATTR_NAME, ATTR_WORKER_STATE],
};

/// Time workers spent busy.
pub const WORKER_BUSY_TIME: InstrumentSpec = InstrumentSpec {
    name: "otelconc.pool.worker.busy.time",
    kind: InstrumentKind::ObservableCounter,
    unit: "s",
    description: "Seconds the workers spent busy, summed over workers: from taking a job off the queue until next finding the queue empty, so running jobs and the few instructions between them. Exact, not sampled, including the busy stretches still going at collection; utilization over a window is rate(otelconc.pool.worker.busy.time) / otelconc.pool.worker.limit",
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
    SUBMISSIONS,
    JOB_DURATION,
    QUEUE_WAIT_DURATION,
    QUEUE_SIZE,
    QUEUE_CAPACITY,
    QUEUE_OLDEST_AGE,
    WORKER_LIMIT,
    WORKER_COUNT,
    WORKER_BUSY_TIME,
    MAX_JOB_AGE,
    OUTCOMES_DROPPED,
];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[JOB_SPAN];
