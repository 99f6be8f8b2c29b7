//! The semaphore's telemetry: its counts, instruments, observers and wait spans.
//!
//! Kept apart from the permits ([`Shared`](super::state::Shared) holds one
//! [`Metrics`] beside them, inline, so the hot path reaches a count at a fixed offset
//! with no pointer to follow). The gauges read the semaphore itself through
//! [`Observed`], so this file does not depend on the permits' file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::semaphore as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
use crate::telemetry::{Histogram, Observation, Telemetry, WaitSpans};
use crate::util::counts::Striped;

/// What the gauges and counters read from the semaphore they observe.
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

/// The semaphore's instruments and the counts its observers export.
pub(super) struct Metrics {
    /// `a`: permits granted; `b`: permits refused as unavailable.
    counts: Striped<2>,
    refused_total: AtomicU64,
    refused_cancelled: AtomicU64,
    spans: WaitSpans,
    /// Whether an SDK reads the metrics; if not, waits are not timed (the histogram
    /// would drop the value).
    timed: bool,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    wait_refused: Histogram,
    _observers: Observers,
}

struct Observers {
    _admitted: Observation,
    _refused: [Observation; 3],
    _gauges: [Observation; 4],
}

impl Metrics {
    /// The instruments of the semaphore named `name`, whose observers read `shared`
    /// for as long as it lives.
    pub(super) fn new<S: Observed>(t: &Telemetry, name: &Arc<str>, shared: &Weak<S>) -> Self {
        let name_kv = KeyValue::new(ATTR_NAME, name.clone());
        let with = |extra: Option<KeyValue>| {
            let mut v = vec![name_kv.clone()];
            v.extend(extra);
            v
        };
        let reason = |r: &'static str| Some(KeyValue::new(ATTR_REASON, r));
        let hist = |o: &'static str| {
            t.histogram(
                &names::WAIT,
                &[name_kv.clone(), KeyValue::new(ATTR_OUTCOME, o)],
            )
        };
        let counter = |spec, attrs, f: fn(&Metrics) -> u64| {
            let w = shared.clone();
            t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(s.metrics())))
        };
        let gauge = |spec, f: fn(&S) -> i64| {
            let w = shared.clone();
            t.observable_gauge(spec, with(None), move || w.upgrade().map(|s| f(&s)))
        };
        let observers = Observers {
            _admitted: counter(&names::ADMITTED, with(None), |m| m.counts.get(0)),
            _refused: [
                counter(
                    &names::REFUSED,
                    with(reason(names::REASON_UNAVAILABLE)),
                    |m| m.counts.get(1),
                ),
                counter(
                    &names::REFUSED,
                    with(reason(names::REASON_EXCEEDS_TOTAL)),
                    |m| m.refused_total.load(Ordering::Relaxed),
                ),
                counter(
                    &names::REFUSED,
                    with(reason(names::REASON_CANCELLED)),
                    |m| m.refused_cancelled.load(Ordering::Relaxed),
                ),
            ],
            _gauges: [
                gauge(&names::WAITERS, S::waiters),
                gauge(&names::AVAILABLE, S::available),
                gauge(&names::IN_USE, |s| s.limit() - s.available()),
                gauge(&names::LIMIT, S::limit),
            ],
        };
        Self {
            counts: Striped::default(),
            refused_total: AtomicU64::new(0),
            refused_cancelled: AtomicU64::new(0),
            spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, name),
            wait_ok: hist(names::OUTCOME_OK),
            wait_cancelled: hist(names::OUTCOME_CANCELLED),
            wait_refused: hist(names::OUTCOME_REFUSED),
            // A meter without an SDK drops the callbacks at once.
            timed: observers._admitted.observed(),
            _observers: observers,
        }
    }

    /// Counts `n` permits granted.
    #[inline]
    pub(super) fn granted(&self, n: u32) {
        self.counts.add(0, u64::from(n));
    }

    /// Counts `n` permits refused because they were not free.
    #[inline]
    pub(super) fn unavailable(&self, n: u32) {
        self.counts.add(1, u64::from(n));
    }

    /// Counts `n` permits refused because they exceed the total.
    pub(super) fn exceeds_total(&self, n: u32) {
        self.refused_total
            .fetch_add(u64::from(n), Ordering::Relaxed);
    }

    /// The span of a wait for `n` permits, inside a sampled trace only.
    #[inline]
    pub(super) fn wait_span(&self, n: u32) -> Option<Context> {
        self.spans.start(n)
    }

    /// When a wait starts, if waits are timed.
    #[inline]
    pub(super) fn wait_start(&self) -> Option<quanta::Instant> {
        self.timed.then(quanta::Instant::now)
    }

    /// Records a wait for `n` permits that ended as `end`: its duration, its span and,
    /// when it was cancelled, the permits refused.
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
                self.refused_cancelled
                    .fetch_add(u64::from(n), Ordering::Relaxed);
                (&self.wait_cancelled, names::OUTCOME_CANCELLED)
            }
        };
        if let Some(start) = start {
            hist.record(start.elapsed().as_secs_f64());
        }
        WaitSpans::end(span, outcome);
    }
}
