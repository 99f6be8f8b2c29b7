//! Instruments and spans of the `rate` module.

use opentelemetry::trace::SpanKind;

use super::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Span attribute: how many tokens the waiting call asked for.
pub(crate) const ATTR_REQUESTED: &str = "otelconc.rate.requested";

/// `error.type` of a refused call: the bucket did not hold enough tokens (`try_acquire`).
pub(crate) const ERROR_RATE_LIMITED: &str = "rate_limited";
/// `error.type` of a refused call: it asked for more tokens than the burst.
pub(crate) const ERROR_EXCEEDS_BURST: &str = "exceeds_burst";

/// Outcome: the tokens were granted (at once, after a wait, or a reservation committed).
pub(crate) const OUTCOME_OK: &str = "ok";
/// Outcome: the call was refused (with `error.type`).
pub(crate) const OUTCOME_REFUSED: &str = "refused";
/// Outcome: a wait was dropped, or a reservation cancelled, and gave its tokens back.
pub(crate) const OUTCOME_CANCELLED: &str = "cancelled";

/// Calls, by outcome.
pub const ACQUISITIONS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.acquisitions",
    kind: InstrumentKind::ObservableCounter,
    unit: "{acquisition}",
    description: "Calls that took or tried to take tokens (try_acquire, acquire, reserve and their _many forms), counted once each when they settle, by outcome: ok (granted, at once or after a wait; a reservation when it is committed), refused (with error.type = rate_limited for a try_ call that found too few tokens, exceeds_burst for a call asking for more than the burst), cancelled (a wait dropped or a reservation cancelled; not an error)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Tokens, by outcome.
pub const TOKENS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.tokens",
    kind: InstrumentKind::ObservableCounter,
    unit: "{token}",
    description: "Tokens the calls of otelconc.rate.acquisitions asked for, by the same outcome and error.type",
    attributes: &[ATTR_NAME, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Calls that had to wait.
pub const CONTENDED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.contended",
    kind: InstrumentKind::ObservableCounter,
    unit: "{acquisition}",
    description: "Calls that found too few tokens and waited for them (acquire, Reservation::wait), however the wait ended",
    attributes: &[ATTR_NAME],
};

/// Time callers waited for their tokens.
pub const WAIT_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.wait.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a call waited for tokens, for every call that waited (not sampled), by outcome (ok, cancelled)",
    attributes: &[ATTR_NAME, ATTR_OUTCOME],
};

/// Callers waiting now.
pub const WAITER_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.waiter.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{waiter}",
    description: "Calls waiting for tokens now",
    attributes: &[ATTR_NAME],
};

/// Tokens in the bucket now.
pub const TOKEN_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.token.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{token}",
    description: "Tokens in the bucket now, fractional while it refills (negative while reservations or waits are pending, the debt they hold; not reported while the rate is unlimited)",
    attributes: &[ATTR_NAME],
};

/// The burst: the bucket's capacity.
pub const TOKEN_LIMIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.token.limit",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{token}",
    description: "The burst in force: the most tokens the bucket holds",
    attributes: &[ATTR_NAME],
};

/// The rate.
pub const LIMIT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.rate.limit",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{token}/s",
    description: "The rate in force, in tokens per second (not reported while the rate is unlimited)",
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
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    ACQUISITIONS,
    TOKENS,
    CONTENDED,
    WAIT_DURATION,
    WAITER_COUNT,
    TOKEN_COUNT,
    TOKEN_LIMIT,
    LIMIT,
];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[WAIT_SPAN];
