//! Instruments and spans of the `rate` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON, AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Span attribute: how many tokens the waiting call asked for.
pub(crate) const ATTR_REQUESTED: &str = "otelconc.rate.requested";

/// `otelconc.rate.refused` reason: the bucket did not hold enough tokens (`try_acquire`).
pub(crate) const REASON_RATE_LIMITED: &str = "rate_limited";
/// `otelconc.rate.refused` reason: the call asked for more tokens than the burst.
pub(crate) const REASON_EXCEEDS_BURST: &str = "exceeds_burst";
/// `otelconc.rate.refused` reason: a wait or reservation was cancelled and gave its
/// tokens back.
pub(crate) const REASON_CANCELLED: &str = "cancelled";

/// Outcome of a wait: the tokens were granted.
pub(crate) const OUTCOME_OK: &str = "ok";
/// Outcome of a wait: the waiting future was dropped first.
pub(crate) const OUTCOME_CANCELLED: &str = "cancelled";

/// Tokens granted.
pub const ADMITTED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.admitted",
    kind: InstrumentKind::ObservableCounter,
    unit: "{token}",
    description: "Tokens granted by the rate limiter (try_acquire, acquire, committed reservations)",
    attributes: &[ATTR_NAME],
};

/// Tokens refused, by reason.
pub const REFUSED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.refused",
    kind: InstrumentKind::ObservableCounter,
    unit: "{token}",
    description: "Tokens refused by the rate limiter, by reason (rate_limited, exceeds_burst, cancelled)",
    attributes: &[ATTR_NAME, ATTR_REASON],
};

/// Time callers waited for their tokens.
pub const WAIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.wait",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a caller waited for tokens, recorded only when it had to wait, by outcome (ok, cancelled)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Callers waiting now.
pub const WAITERS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.waiters",
    kind: InstrumentKind::ObservableGauge,
    unit: "{call}",
    description: "Callers waiting for tokens now",
    attributes: &[ATTR_NAME],
};

/// Tokens in the bucket now.
pub const TOKENS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.tokens",
    kind: InstrumentKind::ObservableGauge,
    unit: "{token}",
    description: "Tokens in the bucket now (negative while reservations are pending; not reported when unlimited)",
    attributes: &[ATTR_NAME],
};

/// A caller's wait for tokens.
pub const WAIT_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.rate.wait",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_REQUESTED, ATTR_OUTCOME],
    parent: "the caller's context",
    description: "One call's wait for tokens, until it got them or was dropped (its outcome as `otelconc.outcome`); built only when the call has to wait inside a sampled trace",
};

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[AttributeSpec {
    key: ATTR_REQUESTED,
    description: "How many tokens the waiting call asked for",
}];

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[ADMITTED, REFUSED, WAIT, WAITERS, TOKENS];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[WAIT_SPAN];
