//! [`Metrics`]: a limiter's instruments and the counts they export.
//!
//! The hot path adds to [`Metrics::grants`], one stripe per thread with plain stores
//! ([`Grants`]); observable counters sum the stripes when a reader collects. A call
//! that takes one token adds once: the token count is the call count plus the tokens
//! beyond the first of each call, which only `_many` calls of more than one token add.
//! Waits, which are slow anyway, record a histogram point and (inside a sampled trace) a
//! span. The levels (waiters, tokens, burst, rate) are read when a reader collects.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use opentelemetry::{Context, KeyValue};

use crate::telemetry::names::rate as names;
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use crate::telemetry::{GrantNames, Grants, Histogram, Observation, Telemetry, WaitSpans};

/// The limiter's names for its grants: tokens, refused as rate-limited or above the
/// burst.
const GRANT_NAMES: GrantNames = GrantNames {
    acquisitions: &names::ACQUISITIONS,
    units: &names::TOKENS,
    contended: &names::CONTENDED,
    ok: names::OUTCOME_OK,
    refused: names::OUTCOME_REFUSED,
    cancelled: names::OUTCOME_CANCELLED,
    unavailable: names::ERROR_RATE_LIMITED,
    too_large: names::ERROR_EXCEEDS_BURST,
};

/// A limiter's telemetry: calls and tokens by outcome, waiters, waits and their spans.
pub(super) struct Metrics {
    /// Calls and tokens granted, refused (rate-limited: not in the bucket now; above
    /// the burst) and cancelled (reservations and waits given back, or still spent when
    /// their due time had already passed); calls that waited.
    pub(super) grants: Grants,
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
        let level = |spec, f: Level<S>| {
            let w = shared.clone();
            t.observable_up_down_counter_f64(spec, vec![name_kv.clone()], move || f(&*w.upgrade()?))
        };
        let w = shared.clone();
        let tokens = reads.tokens;
        let quota = reads.quota;
        let mut observers = Grants::observe(
            t,
            &name_kv,
            shared,
            move |s| &metrics(s).grants,
            &GRANT_NAMES,
        );
        observers.extend([
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
        ]);
        let hist = |o: &'static str| {
            t.histogram(
                &names::WAIT_DURATION,
                &[name_kv.clone(), KeyValue::new(ATTR_OUTCOME, o)],
            )
        };
        Self {
            grants: Grants::default(),
            waiting: AtomicI64::new(0),
            wait_ok: hist(names::OUTCOME_OK),
            wait_cancelled: hist(names::OUTCOME_CANCELLED),
            spans: WaitSpans::new(t, &names::WAIT_SPAN, names::ATTR_REQUESTED, name),
            _observers: observers,
        }
    }

    /// A wait for `n` tokens starts: counts a contended call and a waiter, and returns
    /// its span when the caller is in a sampled trace.
    pub(super) fn wait_started(&self, n: u32) -> Option<Context> {
        let span = self.spans.start(n);
        self.grants.contended();
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
