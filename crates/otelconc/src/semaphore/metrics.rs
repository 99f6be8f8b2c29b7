//! The semaphore's telemetry: its counts, instruments, observers and wait spans.
//!
//! Kept apart from the permits ([`Shared`](super::state::Shared) holds one
//! [`Metrics`] beside them, inline, so the hot path reaches a count at a fixed offset
//! with no pointer to follow). The levels read the semaphore itself through
//! [`Observed`], so this file does not depend on the permits' file.

use std::sync::{Arc, Weak};

use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::semaphore as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use crate::telemetry::{GrantNames, Grants, Histogram, Observation, Telemetry, WaitSpans};

/// What the levels and counters read from the semaphore they observe.
pub(super) trait Observed: Send + Sync + 'static {
    /// Its metrics.
    fn metrics(&self) -> &Metrics;
    /// Callers waiting now.
    fn waiters(&self) -> i64;
    /// Permits free now.
    fn available(&self) -> i64;
    /// Permits in total.
    fn limit(&self) -> i64;
}

/// How a wait ended.
#[derive(Clone, Copy)]
pub(super) enum End {
    Granted,
    Refused,
    /// Dropped before either (the default until the wait says otherwise).
    Cancelled,
}

/// The semaphore's names for its grants: permits, refused as unavailable now
/// (`would_block`) or above the total.
const GRANT_NAMES: GrantNames = GrantNames {
    acquisitions: &names::ACQUISITIONS,
    units: &names::PERMITS,
    contended: &names::CONTENDED,
    ok: names::OUTCOME_OK,
    refused: names::OUTCOME_REFUSED,
    cancelled: names::OUTCOME_CANCELLED,
    unavailable: names::ERROR_WOULD_BLOCK,
    too_large: names::ERROR_EXCEEDS_TOTAL,
};

/// The semaphore's instruments and the counts its observers export.
pub(super) struct Metrics {
    /// The hot counts: a call of one permit adds once (the permit counts are the call
    /// counts plus the permits beyond the first of each call). Refusals above the
    /// total, and waits dropped before they ended, are cold counts.
    pub(super) grants: Grants,
    spans: WaitSpans,
    /// Whether an SDK reads the metrics; if not, waits are not timed (the histogram
    /// would drop the value).
    timed: bool,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    wait_refused: Histogram,
    _observers: Vec<Observation>,
}

impl Metrics {
    /// The instruments of the semaphore named `name`, whose observers read `shared`
    /// for as long as it lives.
    pub(super) fn new<S: Observed>(t: &Telemetry, name: &Arc<str>, shared: &Weak<S>) -> Self {
        let name_kv = KeyValue::new(ATTR_NAME, name.clone());
        let hist = |o: &'static str| {
            t.histogram(
                &names::WAIT_DURATION,
                &[name_kv.clone(), KeyValue::new(ATTR_OUTCOME, o)],
            )
        };
        let level = |spec, attrs, f: fn(&S) -> i64| {
            let w = shared.clone();
            t.observable_up_down_counter(spec, attrs, move || w.upgrade().map(|s| f(&s)))
        };
        let state =
            |st: &'static str| vec![name_kv.clone(), KeyValue::new(names::ATTR_PERMIT_STATE, st)];
        let mut observers = Grants::observe(t, &name_kv, shared, grants::<S>, &GRANT_NAMES);
        observers.extend([
            level(&names::WAITER_COUNT, vec![name_kv.clone()], S::waiters),
            level(&names::PERMIT_COUNT, state(names::STATE_FREE), S::available),
            level(&names::PERMIT_COUNT, state(names::STATE_USED), |s| {
                s.limit() - s.available()
            }),
            level(&names::PERMIT_LIMIT, vec![name_kv.clone()], S::limit),
        ]);
        Self {
            grants: Grants::default(),
            spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, name),
            wait_ok: hist(names::OUTCOME_OK),
            wait_cancelled: hist(names::OUTCOME_CANCELLED),
            wait_refused: hist(names::OUTCOME_REFUSED),
            // A meter without an SDK drops the callbacks at once.
            timed: observers.first().is_some_and(Observation::observed),
            _observers: observers,
        }
    }

    /// The span of a wait for `n` permits, inside a sampled trace only; counts the
    /// call as contended.
    #[inline]
    pub(super) fn wait_span(&self, n: u32) -> Option<Context> {
        self.grants.contended();
        self.spans.start(n)
    }

    /// When a wait starts, if waits are timed.
    #[inline]
    pub(super) fn wait_start(&self) -> Option<quanta::Instant> {
        self.timed.then(quanta::Instant::now)
    }

    /// Records a wait for `n` permits that ended as `end`: its duration, its span and,
    /// when it was cancelled, the call and its permits.
    pub(super) fn wait_ended(
        &self,
        n: u32,
        end: End,
        start: Option<quanta::Instant>,
        span: Option<Context>,
    ) {
        let (hist, outcome) = match end {
            End::Granted => (&self.wait_ok, names::OUTCOME_OK),
            End::Refused => (&self.wait_refused, names::OUTCOME_REFUSED),
            End::Cancelled => {
                self.grants.cancelled(u64::from(n));
                (&self.wait_cancelled, names::OUTCOME_CANCELLED)
            }
        };
        if let Some(start) = start {
            hist.record(start.elapsed().as_secs_f64());
        }
        WaitSpans::end(span, outcome);
    }
}

/// The grants of the semaphore `s`, for the counters.
fn grants<S: Observed>(s: &S) -> &Grants {
    &s.metrics().grants
}
