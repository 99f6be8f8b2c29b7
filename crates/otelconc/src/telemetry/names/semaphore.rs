//! Instruments and spans of the `semaphore` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON, AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Span attribute: how many permits the waiting call asked for.
pub(crate) const ATTR_REQUESTED: &str = "otelconc.semaphore.requested";

/// `otelconc.semaphore.refused` reason: not enough permits were free (`try_acquire`).
pub(crate) const REASON_UNAVAILABLE: &str = "unavailable";
/// `otelconc.semaphore.refused` reason: the call asked for more permits than the
/// semaphore holds in total.
pub(crate) const REASON_EXCEEDS_TOTAL: &str = "exceeds_total";
/// `otelconc.semaphore.refused` reason: a waiting `acquire` was dropped.
pub(crate) const REASON_CANCELLED: &str = "cancelled";

/// Outcome of a wait: the permits were granted.
pub(crate) const OUTCOME_OK: &str = "ok";
/// Outcome of a wait: the waiting future was dropped first.
pub(crate) const OUTCOME_CANCELLED: &str = "cancelled";
/// Outcome of a wait: the semaphore shrank below the request while it waited.
pub(crate) const OUTCOME_REFUSED: &str = "refused";

/// Permits granted.
pub const ADMITTED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.admitted",
    kind: InstrumentKind::ObservableCounter,
    unit: "{permit}",
    description: "Permits granted by the semaphore",
    attributes: &[ATTR_NAME],
};

/// Permits refused, by reason.
pub const REFUSED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.refused",
    kind: InstrumentKind::ObservableCounter,
    unit: "{permit}",
    description: "Permits refused by the semaphore, by reason (unavailable, exceeds_total, cancelled)",
    attributes: &[ATTR_NAME, ATTR_REASON],
};

/// Time callers waited for permits.
pub const WAIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.wait",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a caller waited for permits, recorded only when it had to wait, by outcome (ok, cancelled, refused)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Callers waiting now.
pub const WAITERS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.waiters",
    kind: InstrumentKind::ObservableGauge,
    unit: "{call}",
    description: "Callers waiting for permits now",
    attributes: &[ATTR_NAME],
};

/// Permits free now.
pub const AVAILABLE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.available",
    kind: InstrumentKind::ObservableGauge,
    unit: "{permit}",
    description: "Permits free now",
    attributes: &[ATTR_NAME],
};

/// Permits held now.
pub const IN_USE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.in_use",
    kind: InstrumentKind::ObservableGauge,
    unit: "{permit}",
    description: "Permits taken now: the total minus the free ones (held by guards, or set aside for the waiter at the head of the queue)",
    attributes: &[ATTR_NAME],
};

/// The semaphore's total.
pub const LIMIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.semaphore.limit",
    kind: InstrumentKind::ObservableGauge,
    unit: "{permit}",
    description: "Permits the semaphore holds in total (free plus held), after any resize",
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
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[AttributeSpec {
    key: ATTR_REQUESTED,
    description: "How many permits the waiting call asked for",
}];

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] =
    &[ADMITTED, REFUSED, WAIT, WAITERS, AVAILABLE, IN_USE, LIMIT];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[WAIT_SPAN];
