//! Instruments and spans of the `semaphore` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Span attribute: how many permits the waiting call asked for.
pub(crate) const ATTR_REQUESTED: &str = "otelconc.semaphore.requested";
/// Metric attribute: whether permits are free or used.
pub const ATTR_PERMIT_STATE: &str = "otelconc.semaphore.permit.state";

/// `otelconc.semaphore.permit.state`: permits free now.
pub(crate) const STATE_FREE: &str = "free";
/// `otelconc.semaphore.permit.state`: permits taken now.
pub(crate) const STATE_USED: &str = "used";

/// `error.type` of a refused call: not enough permits were free (`try_acquire`).
pub(crate) const ERROR_WOULD_BLOCK: &str = "would_block";
/// `error.type` of a refused call: it asked for more permits than the semaphore holds in
/// total (at once, or after the semaphore shrank below it while it waited).
pub(crate) const ERROR_EXCEEDS_TOTAL: &str = "exceeds_total";

/// Outcome: the permits were granted (at once or after a wait).
pub(crate) const OUTCOME_OK: &str = "ok";
/// Outcome: the call was refused (with `error.type`).
pub(crate) const OUTCOME_REFUSED: &str = "refused";
/// Outcome: a waiting call was dropped first.
pub(crate) const OUTCOME_CANCELLED: &str = "cancelled";

/// Calls, by outcome.
pub const ACQUISITIONS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.acquisitions",
    kind: InstrumentKind::ObservableCounter,
    unit: "{acquisition}",
    description: "Calls that took or tried to take permits (acquire, try_acquire and their _many and _owned forms), counted once each when they end, by outcome: ok (granted, at once or after a wait), refused (with error.type = would_block for a try_ call that found too few permits free, exceeds_total for a call asking for more than the total, at once or after a shrink while it waited), cancelled (a waiting call was dropped; not an error)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Permits, by outcome.
pub const PERMITS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.permits",
    kind: InstrumentKind::ObservableCounter,
    unit: "{permit}",
    description: "Permits the calls of otelconc.semaphore.acquisitions asked for, by the same outcome and error.type",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Calls that had to wait.
pub const CONTENDED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.contended",
    kind: InstrumentKind::ObservableCounter,
    unit: "{acquisition}",
    description: "Calls that found too few permits free (or others queued ahead) and waited, however the wait ended",
    attributes: &[ATTR_NAME],
};

/// Time callers waited for permits.
pub const WAIT_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.wait.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a call waited for permits, for every call that waited (not sampled), by outcome (ok, cancelled, refused)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Callers waiting now.
pub const WAITER_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.waiter.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{waiter}",
    description: "Calls waiting for permits now",
    attributes: &[ATTR_NAME],
};

/// Permits now, free or used.
pub const PERMIT_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.permit.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{permit}",
    description: "Permits now, by state: free, or used (the total minus the free ones: held by guards, or set aside for the waiter at the head of the queue); the two add up to otelconc.semaphore.permit.limit",
    attributes: &[ATTR_NAME, ATTR_PERMIT_STATE],
};

/// The semaphore's total.
pub const PERMIT_LIMIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.permit.limit",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{permit}",
    description: "Permits the semaphore holds in total (free plus used), after any resize",
    attributes: &[ATTR_NAME],
};

/// A caller's wait for permits.
pub const WAIT_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.semaphore.wait",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_REQUESTED, ATTR_OUTCOME],
    parent: "the caller's context",
    description: "One call's wait for permits, until it got them or was dropped (its outcome as `otelconc.outcome`); built only when the call has to wait inside a sampled trace",
};

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[
    AttributeSpec {
        key: ATTR_REQUESTED,
        description: "How many permits the waiting call asked for",
    },
    AttributeSpec {
        key: ATTR_PERMIT_STATE,
        description: "Whether permits are `free` or `used` (held, or set aside for the waiter at the head of the queue)",
    },
];

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    ACQUISITIONS,
    PERMITS,
    CONTENDED,
    WAIT_DURATION,
    WAITER_COUNT,
    PERMIT_COUNT,
    PERMIT_LIMIT,
];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[WAIT_SPAN];
