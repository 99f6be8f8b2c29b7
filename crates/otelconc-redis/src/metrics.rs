//! The crate's metrics: counts and durations recorded as jobs pass, and the queue's
//! levels (pending entries, lag, age of the oldest pending entry) read from Redis by a
//! background refresh, not per job.
//!
//! Instruments come from the [`Telemetry`] handle's meter (scope `otelconc`), created
//! once per [`Queue`](crate::Queue) and [`Worker`](crate::Worker); attributes are built
//! once per instance (their values are `Arc<str>` clones or static strings), so a
//! record allocates nothing. With no SDK installed the instruments are no-ops.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram, ObservableGauge};
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use otelconc::telemetry::{SECONDS_BOUNDARIES, Telemetry};

/// Every metric instrument this crate registers, as `(name, kind, unit)`.
/// `docs/telemetry.md` lists exactly these, with their attributes and meaning (a test
/// checks the table against this list, and this list against what an SDK reader
/// collects).
///
/// # Examples
/// ```
/// assert!(otelconc_redis::INSTRUMENTS.iter().any(|(name, _, _)| *name == "messaging.process.duration"));
/// ```
pub const INSTRUMENTS: &[(&str, &str, &str)] = &[
    (SENT, "counter", "{message}"),
    (CONSUMED, "counter", "{message}"),
    (PROCESS_DURATION, "histogram", "s"),
    (JOBS, "counter", "{job}"),
    (REDELIVERED, "counter", "{message}"),
    (PENDING, "observable gauge", "{message}"),
    (LAG, "observable gauge", "{message}"),
    (OLDEST_AGE, "observable gauge", "s"),
];

pub(crate) const SENT: &str = "messaging.client.sent.messages";
pub(crate) const CONSUMED: &str = "messaging.client.consumed.messages";
pub(crate) const PROCESS_DURATION: &str = "messaging.process.duration";
pub(crate) const JOBS: &str = "otelconc.queue.jobs";
pub(crate) const REDELIVERED: &str = "otelconc.queue.redelivered";
pub(crate) const PENDING: &str = "otelconc.queue.pending";
pub(crate) const LAG: &str = "otelconc.queue.lag";
pub(crate) const OLDEST_AGE: &str = "otelconc.queue.pending.oldest.age";

/// An attribute with static key and value: no allocation.
fn kv(key: &'static str, value: &'static str) -> KeyValue {
    KeyValue::new(key, value)
}

fn system() -> KeyValue {
    kv("messaging.system", "redis")
}

fn destination(queue: &Arc<str>) -> KeyValue {
    KeyValue::new("messaging.destination.name", queue.clone())
}

fn name(queue: &Arc<str>) -> KeyValue {
    KeyValue::new(ATTR_NAME, queue.clone())
}

fn group() -> KeyValue {
    kv("messaging.consumer.group.name", crate::keys::GROUP)
}

/// How a delivery ended, the `otelconc.outcome` of [`JOBS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Duplicate,
    Retried,
    DeadLettered,
    Released,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Duplicate => "duplicate",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Released => "released",
        }
    }
}

/// The producer's instruments.
pub(crate) struct QueueMetrics {
    sent: Counter<u64>,
    attrs: [KeyValue; 3],
}

impl QueueMetrics {
    pub(crate) fn new(t: &Telemetry, queue: &Arc<str>) -> Self {
        let sent = t
            .meter()
            .u64_counter(SENT)
            .with_unit("{message}")
            .with_description(
                "Entries a Queue added to the stream (XADD), by outcome: error.type set when the XADD failed",
            )
            .build();
        Self {
            sent,
            attrs: [
                system(),
                destination(queue),
                kv("messaging.operation.name", "send"),
            ],
        }
    }

    pub(crate) fn sent(&self, n: u64, error: Option<&'static str>) {
        match error {
            None => self.sent.add(n, &self.attrs),
            Some(e) => {
                let [a, b, c] = self.attrs.clone();
                self.sent.add(n, &[a, b, c, kv(ATTR_ERROR_TYPE, e)]);
            }
        }
    }
}

/// The levels the refresh task last read; `valid` is false until a read succeeded.
#[derive(Default)]
pub(crate) struct Levels {
    pub(crate) valid: AtomicBool,
    pub(crate) pending: AtomicI64,
    pub(crate) lag: AtomicI64,
    /// Milliseconds; `-1` when no entry is pending.
    pub(crate) oldest_ms: AtomicI64,
}

/// A consumer's instruments.
pub(crate) struct WorkerMetrics {
    consumed: Counter<u64>,
    process: Histogram<f64>,
    jobs: Counter<u64>,
    redelivered: Counter<u64>,
    /// system, destination, group, operation name: the `messaging.*` instruments'.
    msg: [KeyValue; 4],
    /// `otelconc.name`: the `otelconc.queue.*` instruments'.
    own: KeyValue,
    pub(crate) levels: Arc<Levels>,
    /// The two measurements every completed job makes, bound to their attributes when
    /// the handle records through bound instruments (see
    /// [`Telemetry::bound_instruments`]).
    hot: Option<Hot>,
    _gauges: [ObservableGauge<f64>; 1],
    _levels: [ObservableGauge<i64>; 2],
}

/// `messaging.process.duration` of a job that succeeded, and `otelconc.queue.jobs` with
/// `otelconc.outcome = completed`, bound.
struct Hot {
    processed: BoundHistogram<f64>,
    completed: BoundCounter<u64>,
}

impl WorkerMetrics {
    pub(crate) fn new(t: &Telemetry, queue: &Arc<str>) -> Self {
        let m = t.meter();
        let levels = Arc::new(Levels::default());
        let own = name(queue);
        let level = |n: &'static str, what: &'static str, read: fn(&Levels) -> i64| {
            let w: Weak<Levels> = Arc::downgrade(&levels);
            let attrs = [own.clone()];
            m.i64_observable_gauge(n)
                .with_unit("{message}")
                .with_description(what)
                .with_callback(move |o| {
                    if let Some(l) = w.upgrade()
                        && l.valid.load(Ordering::Acquire)
                    {
                        let v = read(&l);
                        if v >= 0 {
                            o.observe(v, &attrs);
                        }
                    }
                })
                .build()
        };
        let pending = level(
            PENDING,
            "Entries delivered to a consumer of the queue's group and not yet acked (XPENDING), as last read by the worker's refresh (at most one refresh interval old)",
            |l| l.pending.load(Ordering::Relaxed),
        );
        let lag = level(
            LAG,
            "Entries in the stream not yet delivered to any consumer of the group (XINFO GROUPS lag; when Redis does not report it, the stream's length less the pending entries), as last read by the worker's refresh",
            |l| l.lag.load(Ordering::Relaxed),
        );
        let w: Weak<Levels> = Arc::downgrade(&levels);
        let attrs = [own.clone()];
        let oldest = m
            .f64_observable_gauge(OLDEST_AGE)
            .with_unit("s")
            .with_description(
                "Seconds since the oldest pending entry was submitted (the time in its entry id), as last read by the worker's refresh; 0 when none is pending",
            )
            .with_callback(move |o| {
                if let Some(l) = w.upgrade()
                    && l.valid.load(Ordering::Acquire)
                {
                    let ms = l.oldest_ms.load(Ordering::Relaxed).max(0);
                    o.observe(ms as f64 / 1000.0, &attrs);
                }
            })
            .build();
        let process = m
            .f64_histogram(PROCESS_DURATION)
            .with_unit("s")
            .with_description(
                "Seconds a handler ran on one delivery, from its start until it returned, failed, panicked or timed out; error.type set on failure",
            )
            .with_boundaries(SECONDS_BOUNDARIES.to_vec())
            .build();
        let jobs = m
            .u64_counter(JOBS)
            .with_unit("{job}")
            .with_description(
                "Deliveries a worker settled, by otelconc.outcome: completed (committed with its effects), duplicate (committed by another delivery before; acked only), retried (failed, left pending for a retry after backoff), dead_lettered (moved to the dead-letter stream), released (left pending for another consumer: shutdown deadline or Redis unreachable); error.type on retried and dead_lettered: job, panic, timeout, decode, effect, lost",
            )
            .build();
        let msg = [
            system(),
            destination(queue),
            group(),
            kv("messaging.operation.name", "process"),
        ];
        let hot = t.bound_instruments().then(|| Hot {
            processed: process.bind(&msg),
            completed: jobs.bind(&[own.clone(), kv(ATTR_OUTCOME, Outcome::Completed.as_str())]),
        });
        Self {
            consumed: m
                .u64_counter(CONSUMED)
                .with_unit("{message}")
                .with_description(
                    "Entries a worker took from the stream: new ones (XREADGROUP) and reclaimed ones (XAUTOCLAIM)",
                )
                .build(),
            process,
            jobs,
            redelivered: m
                .u64_counter(REDELIVERED)
                .with_unit("{message}")
                .with_description(
                    "Entries a worker reclaimed (XAUTOCLAIM): a crashed or stalled consumer's, or a failed one's after its backoff",
                )
                .build(),
            msg,
            own,
            levels,
            hot,
            _gauges: [oldest],
            _levels: [pending, lag],
        }
    }

    pub(crate) fn consumed(&self, n: u64, reclaimed: bool) {
        self.consumed.add(n, &self.msg);
        if reclaimed {
            self.redelivered.add(n, std::slice::from_ref(&self.own));
        }
    }

    pub(crate) fn processed(&self, seconds: f64, error: Option<&'static str>) {
        match error {
            None => match &self.hot {
                Some(hot) => hot.processed.record(seconds),
                None => self.process.record(seconds, &self.msg),
            },
            Some(e) => {
                let [a, b, c, d] = self.msg.clone();
                self.process
                    .record(seconds, &[a, b, c, d, kv(ATTR_ERROR_TYPE, e)]);
            }
        }
    }

    pub(crate) fn settled(&self, outcome: Outcome, error: Option<&'static str>) {
        if let (Outcome::Completed, None, Some(hot)) = (outcome, error, &self.hot) {
            hot.completed.add(1);
            return;
        }
        let o = kv(ATTR_OUTCOME, outcome.as_str());
        match error {
            None => self.jobs.add(1, &[self.own.clone(), o]),
            Some(e) => self
                .jobs
                .add(1, &[self.own.clone(), o, kv(ATTR_ERROR_TYPE, e)]),
        }
    }
}
