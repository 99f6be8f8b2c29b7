//! Every instrument and span otelconc registers, and the attribute keys they use.
//!
//! Each primitive lists its own in a submodule; [`instruments`], [`spans`] and
//! [`attributes`] chain them into the catalogue, and [`markdown`] renders the catalogue
//! as the repository's `docs/telemetry.md` (a test keeps that file equal to it). A
//! primitive creates an instrument or a span only from one of these specs.
//!
//! Public are the names a user writes in a query, a dashboard or a metrics `View`: every
//! instrument and span spec (use its `name`), every attribute key that metrics carry, and
//! the span attribute keys that hold the user's own values or span primitives
//! ([`ATTR_QUEUE_WAIT`], [`pool::ATTR_JOB_NAME`], [`pool::ATTR_JOB_ID`]). The other span
//! attribute keys and the value sets are listed by [`attributes`] and in
//! `docs/telemetry.md`.

use opentelemetry::trace::SpanKind;

pub mod channel;
pub mod fan;
pub mod group;
pub mod pipeline;
pub mod pool;
pub mod rate;
pub mod semaphore;
pub mod sync;

mod markdown;

pub use markdown::markdown;

/// Metric and span attribute: the name the user gave the primitive instance.
pub const ATTR_NAME: &str = "otelconc.name";
/// Metric attribute: how an operation ended, from a closed set per instrument.
pub const ATTR_OUTCOME: &str = "otelconc.outcome";
/// Span and metric attribute: the kind of error a failed operation ended with, from a
/// small closed set (`panic`, `timeout`, `queue_full`, `closed`, `would_block`,
/// `rate_limited`, `exceeds_burst`, `exceeds_total`, the type name of the user's error);
/// the OpenTelemetry `error.type` attribute.
pub const ATTR_ERROR_TYPE: &str = "error.type";
/// Span attribute: seconds the item waited in a queue before this span began.
pub const ATTR_QUEUE_WAIT: &str = "otelconc.queue_wait";
/// Metric attribute: what a pool's or a pipeline stage's workers are doing, `busy` or
/// `idle`.
pub const ATTR_WORKER_STATE: &str = "otelconc.worker.state";

/// The attributes every primitive shares.
const ATTRIBUTES: &[AttributeSpec] = &[
    AttributeSpec {
        key: ATTR_NAME,
        description: "The name the user gave the primitive instance (the pipeline's name for its stages)",
    },
    AttributeSpec {
        key: ATTR_OUTCOME,
        description: "How an operation ended; the closed set of values is in each instrument's meaning",
    },
    AttributeSpec {
        key: ATTR_ERROR_TYPE,
        description: "The kind of error a failed operation ended with: `panic`, `timeout`, `queue_full`, `closed`, `would_block` (a `try_` call refused), `rate_limited` (a rate limiter's `try_` call refused), `exceeds_burst` / `exceeds_total` (a call asking for more than a rate limiter's burst or a semaphore's total), or the type name of the user's error",
    },
    AttributeSpec {
        key: ATTR_QUEUE_WAIT,
        description: "Seconds the item waited in a queue before the span began (f64)",
    },
    AttributeSpec {
        key: ATTR_WORKER_STATE,
        description: "What the workers of a pool or a pipeline stage are doing: `busy` (running a job or an item) or `idle`",
    },
];

/// The kind of a metric instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstrumentKind {
    /// Synchronous monotonic counter.
    Counter,
    /// Synchronous up-down counter.
    UpDownCounter,
    /// Synchronous histogram.
    Histogram,
    /// Asynchronous (callback) monotonic counter.
    ObservableCounter,
    /// Asynchronous (callback) up-down counter.
    ObservableUpDownCounter,
    /// Asynchronous (callback) gauge.
    ObservableGauge,
}

impl InstrumentKind {
    /// The name `docs/telemetry.md` uses for this kind.
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::InstrumentKind;
    /// assert_eq!(InstrumentKind::ObservableGauge.as_str(), "observable gauge");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::UpDownCounter => "up-down counter",
            Self::Histogram => "histogram",
            Self::ObservableCounter => "observable counter",
            Self::ObservableUpDownCounter => "observable up-down counter",
            Self::ObservableGauge => "observable gauge",
        }
    }
}

/// One metric instrument: its name, kind, unit, attributes and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// `otelconc.<primitive>.<measure>`.
    pub name: &'static str,
    /// Instrument kind.
    pub kind: InstrumentKind,
    /// UCUM unit.
    pub unit: &'static str,
    /// What it measures.
    pub description: &'static str,
    /// Attribute keys it is recorded with (closed set of values each).
    pub attributes: &'static [&'static str],
}

/// One span: its name, kind, attributes, the rule for its parent and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanSpec {
    /// Span name.
    pub name: &'static str,
    /// Span kind.
    pub kind: SpanKind,
    /// Attribute keys it carries.
    pub attributes: &'static [&'static str],
    /// Which context is its parent (or what it links to).
    pub parent: &'static str,
    /// What it covers, from its start to its end, and when it is built.
    pub description: &'static str,
}

/// One attribute key and what its values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeSpec {
    /// The key, `otelconc.` followed by the primitive for keys of one primitive.
    pub key: &'static str,
    /// What the value is.
    pub description: &'static str,
}

/// Every instrument the crate registers.
///
/// # Examples
/// ```
/// let names: Vec<_> = otelconc::telemetry::names::instruments().map(|i| i.name).collect();
/// assert!(names.iter().all(|n| n.starts_with("otelconc.")));
/// ```
pub fn instruments() -> impl Iterator<Item = &'static InstrumentSpec> {
    channel::INSTRUMENTS
        .iter()
        .chain(pool::INSTRUMENTS)
        .chain(pipeline::INSTRUMENTS)
        .chain(fan::INSTRUMENTS)
        .chain(group::INSTRUMENTS)
        .chain(rate::INSTRUMENTS)
        .chain(semaphore::INSTRUMENTS)
        .chain(sync::INSTRUMENTS)
}

/// Every span the crate builds.
///
/// # Examples
/// ```
/// let n = otelconc::telemetry::names::spans().count();
/// # let _ = n;
/// ```
pub fn spans() -> impl Iterator<Item = &'static SpanSpec> {
    channel::SPANS
        .iter()
        .chain(pool::SPANS)
        .chain(pipeline::SPANS)
        .chain(fan::SPANS)
        .chain(group::SPANS)
        .chain(rate::SPANS)
        .chain(semaphore::SPANS)
        .chain(sync::SPANS)
}

/// Every attribute key an instrument or a span of the crate carries.
///
/// # Examples
/// ```
/// use otelconc::telemetry::names;
/// assert!(names::attributes().any(|a| a.key == names::ATTR_OUTCOME));
/// ```
pub fn attributes() -> impl Iterator<Item = &'static AttributeSpec> {
    ATTRIBUTES
        .iter()
        .chain(channel::ATTRIBUTES)
        .chain(pool::ATTRIBUTES)
        .chain(pipeline::ATTRIBUTES)
        .chain(fan::ATTRIBUTES)
        .chain(group::ATTRIBUTES)
        .chain(rate::ATTRIBUTES)
        .chain(semaphore::ATTRIBUTES)
        .chain(sync::ATTRIBUTES)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_follow_the_convention() {
        let mut seen = HashSet::new();
        for i in super::instruments() {
            assert!(seen.insert(i.name), "duplicate instrument {}", i.name);
            assert!(i.name.starts_with("otelconc."), "{}", i.name);
            assert!(!i.name.ends_with("_total"), "{}", i.name);
            assert!(!i.unit.is_empty(), "{} has no unit", i.name);
            assert!(
                !i.unit.contains("ms"),
                "{}: durations are in seconds",
                i.name
            );
            assert!(
                !i.attributes.iter().any(|a| a.ends_with(".id")),
                "{}: ids go on spans, never on metrics",
                i.name
            );
        }
        let mut seen = HashSet::new();
        for s in super::spans() {
            assert!(seen.insert(s.name), "duplicate span {}", s.name);
        }
    }

    /// Only values that do not add up are gauges: ages and maxima of ages (the sum of two
    /// queues' oldest ages means nothing) and ratios (unit `1`). Every additive level
    /// (a size, a capacity, a limit, workers, waiters, permits, tokens) is an up-down
    /// counter, so that a sum over instances and attributes means something
    /// (OpenTelemetry `metrics.md`, "Instrument types"). Over every primitive's
    /// instruments: what the code registers is the catalogue's kind (the registration
    /// asserts it, and `TestTelemetry::assert_all_cataloged` checks what the SDK
    /// exported).
    #[test]
    fn only_ages_and_ratios_are_gauges() {
        let is_age = |name: &str| {
            let last = name.rsplit('.').next().unwrap_or(name);
            last == "age" || last.ends_with("_age")
        };
        let additive: Vec<&str> = super::instruments()
            .filter(|i| i.kind == super::InstrumentKind::ObservableGauge)
            .filter(|i| !(is_age(i.name) && i.unit == "s") && i.unit != "1")
            .map(|i| i.name)
            .collect();
        assert!(
            additive.is_empty(),
            "additive levels registered as gauges (make them up-down counters): {additive:?}"
        );
        for i in super::instruments().filter(|i| is_age(i.name)) {
            assert_eq!(
                (i.kind, i.unit),
                (super::InstrumentKind::ObservableGauge, "s"),
                "{}: an age is a gauge in seconds",
                i.name
            );
        }
    }

    /// Attribute keys of the OpenTelemetry semantic conventions the catalogue uses.
    const SEMCONV_KEYS: &[&str] = &[super::ATTR_ERROR_TYPE];

    #[test]
    fn every_attribute_used_is_described_and_every_one_described_is_used() {
        let described: Vec<&str> = super::attributes().map(|a| a.key).collect();
        let mut unique = HashSet::new();
        for key in &described {
            assert!(unique.insert(*key), "attribute {key} is described twice");
            // Our own keys are namespaced; the rest are OpenTelemetry's own.
            assert!(
                key.starts_with("otelconc.") || SEMCONV_KEYS.contains(key),
                "{key}"
            );
        }
        let used: HashSet<&str> = super::instruments()
            .flat_map(|i| i.attributes.iter().copied())
            .chain(super::spans().flat_map(|s| s.attributes.iter().copied()))
            .collect();
        for key in &used {
            assert!(
                unique.contains(key),
                "attribute {key} is used but not described"
            );
        }
        for key in &unique {
            assert!(
                used.contains(key),
                "attribute {key} is described but never used"
            );
        }
    }
}
