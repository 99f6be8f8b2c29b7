//! The one way a value carries its producer's trace across a queue ([`Carried`],
//! [`Trace`]), and the one rule for the span of the work on the far side
//! ([`Telemetry::consumer_span`]).
//!
//! Every primitive that moves work from one task to another (a channel message, a pool
//! job, a pipeline item, a fan-out item, a fan-in item) wraps the value in a [`Carried`]:
//! the value, plus a boxed [`Trace`] only when there is something to carry. So a value
//! that carries nothing costs one null pointer beside `T`, and a carried one one
//! allocation.
//!
//! # What is carried
//! The producer's context whenever it holds a valid span context, sampled or not, or
//! baggage ([`propagated_context`](super::propagated_context)); the instant the value was
//! queued when something needs it: on tokio's clock for a queue-time sample, and, where a
//! primitive stamps values with [`Trace::stamped`] (channels, pools), on the span clock
//! for the consumer span's `otelconc.queue_wait` attribute, which then ends at the span's
//! start; and, for the pipeline, the item's sequence number.
//!
//! # The consumer span rule (OpenTelemetry messaging conventions)
//! The span of the work on the far side of a hop is started by
//! [`Telemetry::consumer_span`], and only inside a sampled trace:
//! - its **parent** is the consumer's ambient span when the consumer runs inside a sampled
//!   trace (a request handler receiving from a channel), else the producer's context
//!   when that is sampled; with neither, no span is started;
//! - it always **links** to the producer's span context, so the hop is visible from both
//!   ends even when the span's parent is the consumer's ambient span.
//!
//! The work then runs under the span's context when a span was started, else under the
//! producer's carried context, so that work nested in it stays in the producer's trace.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Link, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tokio::time::Instant;

use super::context::is_sampled_context;
use super::handle::{SpanPolicy, Telemetry};
use super::names::SpanSpec;

/// What travels beside a value when there is something to carry.
#[derive(Debug)]
pub(crate) struct Trace {
    /// The producer's context (or its producer span's), when it was worth carrying.
    pub(crate) cx: Option<Context>,
    /// When the value was queued, on tokio's clock, when that is needed (see the module
    /// docs).
    pub(crate) enqueued: Option<Instant>,
    /// When the value was queued, on the clock spans are stamped with
    /// ([`opentelemetry::time::now`]), where a primitive stamps values that will get a
    /// consumer span ([`Trace::stamped`]): the span's queue wait then costs the far side
    /// no clock read of its own, only the span's start, which it hands to the tracer.
    pub(crate) sent: Option<SystemTime>,
    /// Whether the value is in its primitive's 1-in-N timing sample, so its queue time
    /// goes to the histogram (a traced value outside the sample does not: histogram
    /// counts stay a fixed fraction of the traffic).
    pub(crate) timed: bool,
    /// The item's sequence number, where a primitive numbers items (pipeline); else 0.
    pub(crate) seq: u64,
}

/// A value and what it carries of its producer: one pointer beside `T`, null when
/// nothing is carried.
#[derive(Debug)]
pub(crate) struct Carried<T> {
    pub(crate) value: T,
    pub(crate) trace: Option<Box<Trace>>,
}

impl<T> Carried<T> {
    /// A value that carries nothing.
    #[inline]
    pub(crate) fn bare(value: T) -> Self {
        Self { value, trace: None }
    }

    /// A value with the producer's context `cx` (if any), stamped as [`Trace::stamped`]
    /// says: bare when there is neither a context nor a timing sample.
    #[inline]
    pub(crate) fn stamped(value: T, cx: Option<Context>, timed: bool, spanned: bool) -> Self {
        if cx.is_none() && !timed {
            return Self::bare(value);
        }
        Self {
            value,
            trace: Some(Box::new(Trace::stamped(cx, timed, spanned))),
        }
    }
}

impl Trace {
    /// What a value handed over with `cx` carries where its consumer span takes the
    /// queue wait from [`sent`](Self::sent): tokio's clock is read only when the value
    /// is `timed` (its queue time goes to a histogram), the span clock only when it is
    /// `spanned` (a consumer span will be built under `cx`).
    #[inline]
    pub(crate) fn stamped(cx: Option<Context>, timed: bool, spanned: bool) -> Self {
        Self {
            cx,
            enqueued: timed.then(Instant::now),
            sent: spanned.then(opentelemetry::time::now),
            timed,
            seq: 0,
        }
    }
}

/// A consumer span's start, read once, and the queue wait of a value stamped `sent`
/// (see [`Trace::sent`]), measured to it: zero if the wall clock stepped back meanwhile.
#[inline]
pub(crate) fn span_start(sent: Option<SystemTime>) -> (SystemTime, Option<Duration>) {
    let now = opentelemetry::time::now();
    (now, sent.map(|s| now.duration_since(s).unwrap_or_default()))
}

impl Telemetry {
    /// The context a value handed to a primitive carries: the current one when it is
    /// worth carrying (see [`propagated_context`](super::propagated_context)); under
    /// [`SpanPolicy::Always`], the current one even when empty, so the consumer side
    /// still gets its span.
    #[inline]
    pub(crate) fn capture(&self) -> Option<Context> {
        match self.span_policy() {
            SpanPolicy::Always => Some(super::current_context()),
            _ => super::propagated_context(),
        }
    }

    /// `cx`, handed in explicitly (an extracted remote context, say), as a value
    /// carries it: kept when it is worth carrying (a valid span context or baggage);
    /// under [`SpanPolicy::Always`], kept even when empty.
    #[inline]
    pub(crate) fn carried(&self, cx: &Context) -> Option<Context> {
        match self.span_policy() {
            SpanPolicy::Always => Some(cx.clone()),
            _ => super::context::is_worth_carrying(cx).then(|| cx.clone()),
        }
    }

    /// `value` with the producer's context `cx` (if any) and, when a consumer span may
    /// be built under `cx` ([`spans_under`](Self::spans_under)), the instant it is
    /// queued, for that span's queue wait: a value that carries a context no span will
    /// be built under reads no clock. It is not in the timing sample
    /// ([`Carried::stamped`] makes one that is).
    #[inline]
    pub(crate) fn carry<T>(&self, value: T, cx: Option<Context>) -> Carried<T> {
        let Some(cx) = cx else {
            return Carried::bare(value);
        };
        let clocked = self.spans_under(&cx);
        Carried {
            value,
            trace: Some(Box::new(Trace {
                cx: Some(cx),
                enqueued: clocked.then(Instant::now),
                sent: None,
                timed: false,
                seq: 0,
            })),
        }
    }

    /// Whether a span may be a child of `cx` under this span policy.
    #[inline]
    pub(crate) fn spans_under(&self, cx: &Context) -> bool {
        match self.span_policy() {
            SpanPolicy::Sampled => is_sampled_context(cx),
            SpanPolicy::Always => true,
            SpanPolicy::Never => false,
        }
    }

    /// The consumer span of one hop, by the rule in the module docs: a child of the
    /// ambient sampled span, else of the producer's sampled context, linked to the
    /// producer's span context. `None` when neither is sampled (or spans are off).
    pub(crate) fn consumer_span(
        &self,
        spec: &SpanSpec,
        producer: Option<&Context>,
        attributes: Vec<KeyValue>,
    ) -> Option<Context> {
        self.consumer_span_with(spec, producer, || attributes)
    }

    /// [`consumer_span`](Self::consumer_span), building the attributes only when a span
    /// is started: a hop outside any sampled trace then costs no attribute vector (nor
    /// the clock read or `Arc` clones that go into one).
    pub(crate) fn consumer_span_with(
        &self,
        spec: &SpanSpec,
        producer: Option<&Context>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<Context> {
        self.consumer_span_at(spec, producer, None, attributes)
    }

    /// [`consumer_span_with`](Self::consumer_span_with) with the span's start time when
    /// the caller has read the clock for it already (see [`span_start`]).
    pub(crate) fn consumer_span_at(
        &self,
        spec: &SpanSpec,
        producer: Option<&Context>,
        start: Option<SystemTime>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<Context> {
        let ambient = self
            .span_parent()
            .filter(|a| a.span().span_context().is_valid());
        let parent = match &ambient {
            Some(ambient) => ambient,
            None => producer.filter(|p| self.spans_under(p))?,
        };
        // The link is built only for a span that starts: nothing is cloned otherwise.
        let links = producer
            .and_then(link_to)
            .map(|l| vec![l])
            .unwrap_or_default();
        Some(self.start_span_at(spec, parent, links, attributes(), start))
    }
}

/// A link to `cx`'s span context, when it is valid.
pub(crate) fn link_to(cx: &Context) -> Option<Link> {
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| Link::with_context(sc))
}
