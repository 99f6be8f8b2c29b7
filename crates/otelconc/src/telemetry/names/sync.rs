//! Instruments and spans of the `sync` module (the observable `Mutex` and `RwLock`).

use opentelemetry::trace::SpanKind;

use super::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, AttributeSpec, InstrumentKind};
use super::{InstrumentSpec, SpanSpec};

/// Metric and span attribute: which side of the lock a call took, `exclusive` (a
/// `Mutex`, an `RwLock` writer) or `shared` (an `RwLock` reader).
pub const ATTR_MODE: &str = "otelconc.lock.mode";

/// `otelconc.lock.mode`: a `Mutex` or an `RwLock` writer.
pub(crate) const MODE_EXCLUSIVE: &str = "exclusive";
/// `otelconc.lock.mode`: an `RwLock` reader.
pub(crate) const MODE_SHARED: &str = "shared";

/// Outcome: the caller got the lock.
pub(crate) const OUTCOME_OK: &str = "ok";
/// Outcome: a `try_` call found the lock taken.
pub(crate) const OUTCOME_REFUSED: &str = "refused";
/// Outcome: a waiting call was dropped before it got the lock.
pub(crate) const OUTCOME_CANCELLED: &str = "cancelled";
/// `error.type` of a refused `try_` call.
pub(crate) const ERROR_WOULD_BLOCK: &str = "would_block";

/// Acquisitions by mode and outcome.
pub const ACQUISITIONS: InstrumentSpec = InstrumentSpec {
    name: "otelconc.lock.acquisitions",
    kind: InstrumentKind::ObservableCounter,
    unit: "{acquisition}",
    description: "Calls that took or tried to take the lock, by mode (exclusive, shared) and outcome: ok (the caller got the lock; a write guard's downgrade counts as a shared one), refused (a try_ call found the lock taken, with error.type = would_block), cancelled (a waiting call was dropped; not an error)",
    attributes: &[ATTR_NAME, ATTR_MODE, ATTR_OUTCOME, ATTR_ERROR_TYPE],
};

/// Acquisitions that had to wait.
pub const CONTENDED: InstrumentSpec = InstrumentSpec {
    name: "otelconc.lock.contended",
    kind: InstrumentKind::ObservableCounter,
    unit: "{acquisition}",
    description: "Calls that found the lock taken (or others queued ahead) and waited, by mode, however the wait ended",
    attributes: &[ATTR_NAME, ATTR_MODE],
};

/// Time calls waited for the lock (sampled).
pub const WAIT_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.lock.wait.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds a call waited for the lock, for 1 in 16 of the calls that waited (every 16th wait on each thread), by mode and outcome (ok, cancelled)",
    attributes: &[ATTR_NAME, ATTR_MODE, ATTR_OUTCOME],
};

/// Time the lock was held (sampled).
pub const HOLD_DURATION: InstrumentSpec = InstrumentSpec {
    name: "otelconc.lock.hold.duration",
    kind: InstrumentKind::Histogram,
    unit: "s",
    description: "Seconds from an acquisition to its guard's drop, for 1 in 16 holds (every 16th exclusive acquisition in lock order; every 16th shared one on each thread), by mode",
    attributes: &[ATTR_NAME, ATTR_MODE],
};

/// Age of the oldest hold still going.
pub const HOLD_OLDEST_AGE: InstrumentSpec = InstrumentSpec {
    name: "otelconc.lock.hold.oldest.age",
    kind: InstrumentKind::ObservableGauge,
    unit: "s",
    description: "Seconds the oldest hold still going has lasted, by mode, as a lower bound: a hold shows once it spans a collection and is exact to within one collection interval; a long shared hold can stay hidden while other readers come and go; 0 when none",
    attributes: &[ATTR_NAME, ATTR_MODE],
};

/// Calls waiting now.
pub const WAITER_COUNT: InstrumentSpec = InstrumentSpec {
    name: "otelconc.lock.waiter.count",
    kind: InstrumentKind::ObservableUpDownCounter,
    unit: "{waiter}",
    description: "Calls waiting for the lock now, by mode",
    attributes: &[ATTR_NAME, ATTR_MODE],
};

/// A call's wait for the lock.
pub const WAIT_SPAN: SpanSpec = SpanSpec {
    name: "otelconc.lock.wait",
    kind: SpanKind::Internal,
    attributes: &[ATTR_NAME, ATTR_MODE, ATTR_OUTCOME],
    parent: "the caller's context",
    description: "One call's wait for the lock, until it got it (outcome ok) or was dropped (outcome cancelled, status Unset); built only when the call has to wait inside a sampled trace",
};

/// The attribute keys of this primitive.
pub(crate) const ATTRIBUTES: &[AttributeSpec] = &[AttributeSpec {
    key: ATTR_MODE,
    description: "Which side of the lock a call took: `exclusive` (a `Mutex`, an `RwLock` writer) or `shared` (an `RwLock` reader)",
}];

/// Every instrument this primitive registers.
pub(crate) const INSTRUMENTS: &[InstrumentSpec] = &[
    ACQUISITIONS,
    CONTENDED,
    WAIT_DURATION,
    HOLD_DURATION,
    HOLD_OLDEST_AGE,
    WAITER_COUNT,
];

/// Every span this primitive builds.
pub(crate) const SPANS: &[SpanSpec] = &[WAIT_SPAN];
