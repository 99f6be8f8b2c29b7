//! The semaphore's telemetry: its counts, instruments, observers and wait spans.
//!
//! Kept apart from the permits ([`Shared`](super::state::Shared) holds one
//! [`Metrics`] beside them, inline, so the hot path reaches a count at a fixed offset
//! with no pointer to follow). The levels read the semaphore itself through
//! [`Observed`], so this file does not depend on the permits' file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::semaphore as names;
use crate::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use crate::telemetry::{Histogram, Observation, Telemetry, WaitSpans};
use crate::util::counts::Striped;

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

/// Striped counts: calls granted.
const CALLS_OK: usize = 0;
/// Striped counts: `try_` calls refused as unavailable.
const CALLS_BLOCKED: usize = 1;
/// Striped counts: permits granted beyond one per granted call.
const EXTRA_OK: usize = 2;
/// Striped counts: permits refused as unavailable beyond one per refused call.
const EXTRA_BLOCKED: usize = 3;
/// Striped counts: calls that waited.
const CONTENDED: usize = 4;

/// The semaphore's instruments and the counts its observers export.
pub(super) struct Metrics {
    /// The hot counts: a call of one permit adds once (the permit counts are the call
    /// counts plus the permits beyond the first of each call).
    counts: Striped<5>,
    /// Calls and permits refused as above the total (cold).
    exceeds: [AtomicU64; 2],
    /// Calls and permits of waits dropped before they ended (cold).
    cancelled: [AtomicU64; 2],
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
        let attrs = |outcome: &'static str, error: Option<&'static str>| {
            let mut v = vec![name_kv.clone(), KeyValue::new(ATTR_OUTCOME, outcome)];
            v.extend(error.map(|e| KeyValue::new(ATTR_ERROR_TYPE, e)));
            v
        };
        let hist = |o: &'static str| {
            t.histogram(
                &names::WAIT_DURATION,
                &[name_kv.clone(), KeyValue::new(ATTR_OUTCOME, o)],
            )
        };
        let counter = |spec, attrs, f: fn(&Metrics) -> u64| {
            let w = shared.clone();
            t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(s.metrics())))
        };
        let level = |spec, attrs, f: fn(&S) -> i64| {
            let w = shared.clone();
            t.observable_up_down_counter(spec, attrs, move || w.upgrade().map(|s| f(&s)))
        };
        let state =
            |st: &'static str| vec![name_kv.clone(), KeyValue::new(names::ATTR_PERMIT_STATE, st)];
        let (ok, refused, cancelled) = (
            names::OUTCOME_OK,
            names::OUTCOME_REFUSED,
            names::OUTCOME_CANCELLED,
        );
        let (blocked, exceeds) = (
            Some(names::ERROR_WOULD_BLOCK),
            Some(names::ERROR_EXCEEDS_TOTAL),
        );
        let observers = vec![
            counter(&names::ACQUISITIONS, attrs(ok, None), |m| {
                m.counts.get(CALLS_OK)
            }),
            counter(&names::ACQUISITIONS, attrs(refused, blocked), |m| {
                m.counts.get(CALLS_BLOCKED)
            }),
            counter(&names::ACQUISITIONS, attrs(refused, exceeds), |m| {
                m.exceeds[0].load(Ordering::Relaxed)
            }),
            counter(&names::ACQUISITIONS, attrs(cancelled, None), |m| {
                m.cancelled[0].load(Ordering::Relaxed)
            }),
            counter(&names::PERMITS, attrs(ok, None), |m| {
                m.counts.get(CALLS_OK).wrapping_add(m.counts.get(EXTRA_OK))
            }),
            counter(&names::PERMITS, attrs(refused, blocked), |m| {
                m.counts
                    .get(CALLS_BLOCKED)
                    .wrapping_add(m.counts.get(EXTRA_BLOCKED))
            }),
            counter(&names::PERMITS, attrs(refused, exceeds), |m| {
                m.exceeds[1].load(Ordering::Relaxed)
            }),
            counter(&names::PERMITS, attrs(cancelled, None), |m| {
                m.cancelled[1].load(Ordering::Relaxed)
            }),
            counter(&names::CONTENDED, vec![name_kv.clone()], |m| {
                m.counts.get(CONTENDED)
            }),
            level(&names::WAITER_COUNT, vec![name_kv.clone()], S::waiters),
            level(&names::PERMIT_COUNT, state(names::STATE_FREE), S::available),
            level(&names::PERMIT_COUNT, state(names::STATE_USED), |s| {
                s.limit() - s.available()
            }),
            level(&names::PERMIT_LIMIT, vec![name_kv.clone()], S::limit),
        ];
        Self {
            counts: Striped::default(),
            exceeds: Default::default(),
            cancelled: Default::default(),
            spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, name),
            wait_ok: hist(ok),
            wait_cancelled: hist(cancelled),
            wait_refused: hist(refused),
            // A meter without an SDK drops the callbacks at once.
            timed: observers.first().is_some_and(Observation::observed),
            _observers: observers,
        }
    }

    /// Counts a call granted `n` permits: one add for a call of one permit.
    #[inline]
    pub(super) fn granted(&self, n: u32) {
        self.counts.add(CALLS_OK, 1);
        if n != 1 {
            self.counts.add(EXTRA_OK, u64::from(n).wrapping_sub(1));
        }
    }

    /// Counts a `try_` call refused `n` permits because they were not free.
    #[inline]
    pub(super) fn unavailable(&self, n: u32) {
        self.counts.add(CALLS_BLOCKED, 1);
        if n != 1 {
            self.counts.add(EXTRA_BLOCKED, u64::from(n).wrapping_sub(1));
        }
    }

    /// Counts a call refused `n` permits because they exceed the total.
    pub(super) fn exceeds_total(&self, n: u32) {
        self.exceeds[0].fetch_add(1, Ordering::Relaxed);
        self.exceeds[1].fetch_add(u64::from(n), Ordering::Relaxed);
    }

    /// The span of a wait for `n` permits, inside a sampled trace only; counts the
    /// call as contended.
    #[inline]
    pub(super) fn wait_span(&self, n: u32) -> Option<Context> {
        self.counts.add(CONTENDED, 1);
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
                self.cancelled[0].fetch_add(1, Ordering::Relaxed);
                self.cancelled[1].fetch_add(u64::from(n), Ordering::Relaxed);
                (&self.wait_cancelled, names::OUTCOME_CANCELLED)
            }
        };
        if let Some(start) = start {
            hist.record(start.elapsed().as_secs_f64());
        }
        WaitSpans::end(span, outcome);
    }
}
