//! [`Metrics`]: a limiter's instruments and the counts they export.
//!
//! The hot path adds to [`Metrics::counts`], one stripe per thread with plain stores
//! ([`Striped`]); observable counters sum the stripes when a reader collects. Waits,
//! which are slow anyway, record a histogram point and (inside a sampled trace) a span.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::rate as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
use crate::telemetry::{Combine, Histogram, Observation, Telemetry, WaitSpans};
use crate::util::counts::Striped;

/// A limiter's telemetry: admitted and refused tokens, waiters, waits and their spans.
pub(super) struct Metrics {
    /// `a`: tokens admitted; `b`: tokens refused for want of tokens.
    counts: Striped<2>,
    refused_burst: AtomicU64,
    refused_cancelled: AtomicU64,
    waiting: AtomicI64,
    spans: WaitSpans,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    _observers: Observers,
}

/// Keeps the observable instruments registered while the limiter lives.
struct Observers {
    _admitted: Observation,
    _refused: [Observation; 3],
    _waiters: Observation,
    _tokens: Observation,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum WaitOutcome {
    /// The tokens came due.
    Ok,
    /// The wait was dropped first.
    Cancelled,
}

impl Metrics {
    /// Registers the instruments of the limiter `name`, whose state `S` is reached
    /// through `shared` (the observers hold it weakly, so a dropped limiter stops
    /// reporting): `metrics` finds these metrics in it, `tokens` reads its bucket.
    pub(super) fn new<S: Send + Sync + 'static>(
        t: &Telemetry,
        name: &Arc<str>,
        shared: &Weak<S>,
        metrics: fn(&S) -> &Metrics,
        tokens: fn(&S) -> f64,
    ) -> Self {
        let name_kv = KeyValue::new(ATTR_NAME, name.clone());
        let with_name = |extra: Option<KeyValue>| {
            let mut v = vec![name_kv.clone()];
            v.extend(extra);
            v
        };
        let reason = |r: &'static str| Some(KeyValue::new(ATTR_REASON, r));
        let outcome = |o: &'static str| KeyValue::new(ATTR_OUTCOME, o);
        let counter = |spec, attrs, f: fn(&Metrics) -> u64| {
            let w = shared.clone();
            t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(metrics(&s))))
        };
        let admitted = counter(&names::ADMITTED, with_name(None), |m| m.counts.get(0));
        let limited = counter(
            &names::REFUSED,
            with_name(reason(names::REASON_RATE_LIMITED)),
            |m| m.counts.get(1),
        );
        let burst = counter(
            &names::REFUSED,
            with_name(reason(names::REASON_EXCEEDS_BURST)),
            |m| m.refused_burst.load(Ordering::Relaxed),
        );
        let cancelled = counter(
            &names::REFUSED,
            with_name(reason(names::REASON_CANCELLED)),
            |m| m.refused_cancelled.load(Ordering::Relaxed),
        );
        let w = shared.clone();
        let waiters = t.observable_gauge(&names::WAITERS, with_name(None), move || {
            w.upgrade()
                .map(|s| metrics(&s).waiting.load(Ordering::Relaxed))
        });
        let w = shared.clone();
        let tokens =
            t.observable_gauge_f64(&names::TOKENS, with_name(None), Combine::Sum, move || {
                let v = tokens(&*w.upgrade()?);
                v.is_finite().then_some(v)
            });
        Self {
            counts: Striped::default(),
            refused_burst: AtomicU64::new(0),
            refused_cancelled: AtomicU64::new(0),
            waiting: AtomicI64::new(0),
            wait_ok: t.histogram(&names::WAIT, &[name_kv.clone(), outcome(names::OUTCOME_OK)]),
            wait_cancelled: t.histogram(
                &names::WAIT,
                &[name_kv.clone(), outcome(names::OUTCOME_CANCELLED)],
            ),
            spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, name),
            _observers: Observers {
                _admitted: admitted,
                _refused: [limited, burst, cancelled],
                _waiters: waiters,
                _tokens: tokens,
            },
        }
    }

    /// `n` tokens granted.
    #[inline]
    pub(super) fn admitted(&self, n: u64) {
        self.counts.add(0, n);
    }

    /// `n` tokens refused: not in the bucket now.
    #[inline]
    pub(super) fn rate_limited(&self, n: u64) {
        self.counts.add(1, n);
    }

    /// `n` tokens refused: more than the burst.
    pub(super) fn exceeds_burst(&self, n: u64) {
        self.refused_burst.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` tokens of a cancelled reservation or wait (given back, or still spent when
    /// their due time had already passed).
    pub(super) fn cancelled(&self, n: u64) {
        self.refused_cancelled.fetch_add(n, Ordering::Relaxed);
    }

    /// A wait for `n` tokens starts: counts a waiter, and returns its span when the
    /// caller is in a sampled trace.
    pub(super) fn wait_started(&self, n: u32) -> Option<Context> {
        let span = self.spans.start(n);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        span
    }

    /// A wait ends after `waited_ns`: records its duration and ends its span.
    pub(super) fn wait_ended(&self, span: Option<Context>, outcome: WaitOutcome, waited_ns: u64) {
        let (outcome, hist) = match outcome {
            WaitOutcome::Ok => (names::OUTCOME_OK, &self.wait_ok),
            WaitOutcome::Cancelled => (names::OUTCOME_CANCELLED, &self.wait_cancelled),
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        hist.record(waited_ns as f64 * 1e-9);
        WaitSpans::end(span, outcome);
    }
}
