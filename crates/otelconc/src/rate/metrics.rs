//! [`Metrics`]: a limiter's instruments and the counts they export.
//!
//! The hot path adds to [`Metrics::counts`], one stripe per thread with plain stores
//! ([`Striped`]); observable counters sum the stripes when a reader collects. A call
//! that takes one token adds once: the token count is the call count plus the tokens
//! beyond the first of each call, which only `_many` calls of more than one token add.
//! Waits, which are slow anyway, record a histogram point and (inside a sampled trace) a
//! span. The levels (waiters, tokens, burst, rate) are read when a reader collects.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::rate as names;
use crate::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use crate::telemetry::{Histogram, Observation, Telemetry, WaitSpans};
use crate::util::counts::Striped;

/// Striped counts: calls granted.
const CALLS_OK: usize = 0;
/// Striped counts: calls refused for want of tokens.
const CALLS_LIMITED: usize = 1;
/// Striped counts: tokens granted beyond one per granted call.
const EXTRA_OK: usize = 2;
/// Striped counts: tokens refused for want of tokens beyond one per refused call.
const EXTRA_LIMITED: usize = 3;
/// Striped counts: calls that waited.
const CONTENDED: usize = 4;

/// A limiter's telemetry: calls and tokens by outcome, waiters, waits and their spans.
pub(super) struct Metrics {
    counts: Striped<5>,
    /// Calls and tokens refused as above the burst (cold).
    burst: [AtomicU64; 2],
    /// Calls and tokens of cancelled waits and reservations (cold).
    cancelled: [AtomicU64; 2],
    waiting: AtomicI64,
    spans: WaitSpans,
    wait_ok: Histogram,
    wait_cancelled: Histogram,
    _observers: Vec<Observation>,
}

/// Reads one level of the limiter's state `S`.
type Level<S> = Box<dyn Fn(&S) -> Option<f64> + Send + Sync>;

/// How a wait ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum WaitOutcome {
    /// The tokens came due.
    Ok,
    /// The wait was dropped first.
    Cancelled,
}

/// What the observers read from the limiter's state `S`, besides its metrics.
pub(super) struct Reads<S> {
    /// Its metrics.
    pub(super) metrics: fn(&S) -> &Metrics,
    /// Tokens in the bucket now (infinite when unlimited).
    pub(super) tokens: fn(&S) -> f64,
    /// The rate in tokens per second (`None` when unlimited) and the burst.
    pub(super) quota: fn(&S) -> (Option<f64>, u32),
}

impl Metrics {
    /// Registers the instruments of the limiter `name`, whose state `S` is reached
    /// through `shared` (the observers hold it weakly, so a dropped limiter stops
    /// reporting) and read by `reads`.
    pub(super) fn new<S: Send + Sync + 'static>(
        t: &Telemetry,
        name: &Arc<str>,
        shared: &Weak<S>,
        reads: Reads<S>,
    ) -> Self {
        let name_kv = KeyValue::new(ATTR_NAME, name.clone());
        let metrics = reads.metrics;
        let attrs = |outcome: &'static str, error: Option<&'static str>| {
            let mut v = vec![name_kv.clone(), KeyValue::new(ATTR_OUTCOME, outcome)];
            v.extend(error.map(|e| KeyValue::new(ATTR_ERROR_TYPE, e)));
            v
        };
        let counter = |spec, attrs, f: fn(&Metrics) -> u64| {
            let w = shared.clone();
            t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(metrics(&s))))
        };
        let level = |spec, f: Level<S>| {
            let w = shared.clone();
            t.observable_up_down_counter_f64(spec, vec![name_kv.clone()], move || f(&*w.upgrade()?))
        };
        let (ok, refused, cancelled) = (
            names::OUTCOME_OK,
            names::OUTCOME_REFUSED,
            names::OUTCOME_CANCELLED,
        );
        let (limited, burst) = (
            Some(names::ERROR_RATE_LIMITED),
            Some(names::ERROR_EXCEEDS_BURST),
        );
        let w = shared.clone();
        let tokens = reads.tokens;
        let quota = reads.quota;
        let observers = vec![
            counter(&names::ACQUISITIONS, attrs(ok, None), |m| {
                m.counts.get(CALLS_OK)
            }),
            counter(&names::ACQUISITIONS, attrs(refused, limited), |m| {
                m.counts.get(CALLS_LIMITED)
            }),
            counter(&names::ACQUISITIONS, attrs(refused, burst), |m| {
                m.burst[0].load(Ordering::Relaxed)
            }),
            counter(&names::ACQUISITIONS, attrs(cancelled, None), |m| {
                m.cancelled[0].load(Ordering::Relaxed)
            }),
            counter(&names::TOKENS, attrs(ok, None), |m| {
                m.counts.get(CALLS_OK).wrapping_add(m.counts.get(EXTRA_OK))
            }),
            counter(&names::TOKENS, attrs(refused, limited), |m| {
                m.counts
                    .get(CALLS_LIMITED)
                    .wrapping_add(m.counts.get(EXTRA_LIMITED))
            }),
            counter(&names::TOKENS, attrs(refused, burst), |m| {
                m.burst[1].load(Ordering::Relaxed)
            }),
            counter(&names::TOKENS, attrs(cancelled, None), |m| {
                m.cancelled[1].load(Ordering::Relaxed)
            }),
            counter(&names::CONTENDED, vec![name_kv.clone()], |m| {
                m.counts.get(CONTENDED)
            }),
            t.observable_up_down_counter(&names::WAITER_COUNT, vec![name_kv.clone()], move || {
                w.upgrade()
                    .map(|s| metrics(&s).waiting.load(Ordering::Relaxed))
            }),
            level(
                &names::TOKEN_COUNT,
                Box::new(move |s| Some(tokens(s)).filter(|v| v.is_finite())),
            ),
            level(
                &names::TOKEN_LIMIT,
                Box::new(move |s| Some(f64::from(quota(s).1))),
            ),
            level(&names::LIMIT, Box::new(move |s| quota(s).0)),
        ];
        let hist = |o: &'static str| {
            t.histogram(
                &names::WAIT_DURATION,
                &[name_kv.clone(), KeyValue::new(ATTR_OUTCOME, o)],
            )
        };
        Self {
            counts: Striped::default(),
            burst: Default::default(),
            cancelled: Default::default(),
            waiting: AtomicI64::new(0),
            wait_ok: hist(ok),
            wait_cancelled: hist(cancelled),
            spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, name),
            _observers: observers,
        }
    }

    /// A call granted `n` tokens: one add for a call of one token.
    #[inline]
    pub(super) fn admitted(&self, n: u64) {
        self.counts.add(CALLS_OK, 1);
        if n != 1 {
            self.counts.add(EXTRA_OK, n.wrapping_sub(1));
        }
    }

    /// A `try_` call refused `n` tokens: not in the bucket now.
    #[inline]
    pub(super) fn rate_limited(&self, n: u64) {
        self.counts.add(CALLS_LIMITED, 1);
        if n != 1 {
            self.counts.add(EXTRA_LIMITED, n.wrapping_sub(1));
        }
    }

    /// A call refused `n` tokens: more than the burst.
    pub(super) fn exceeds_burst(&self, n: u64) {
        self.burst[0].fetch_add(1, Ordering::Relaxed);
        self.burst[1].fetch_add(n, Ordering::Relaxed);
    }

    /// A cancelled reservation or wait of `n` tokens (given back, or still spent when
    /// their due time had already passed).
    pub(super) fn cancelled(&self, n: u64) {
        self.cancelled[0].fetch_add(1, Ordering::Relaxed);
        self.cancelled[1].fetch_add(n, Ordering::Relaxed);
    }

    /// A wait for `n` tokens starts: counts a contended call and a waiter, and returns
    /// its span when the caller is in a sampled trace.
    pub(super) fn wait_started(&self, n: u32) -> Option<Context> {
        let span = self.spans.start(n);
        self.counts.add(CONTENDED, 1);
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
