//! What a message carries of its sender ([`Carried`]) and the spans built from it: the
//! optional producer span at the send, the consumer span at a traced receive.
//!
//! A channel that anything observes (an SDK reads its metrics, or its tracer builds
//! spans) carries each message as a [`Carried`]: the message plus one pointer, null
//! unless there is something to carry. A message carries:
//! - the sender's context whenever it is worth carrying
//!   ([`Telemetry::capture`](crate::telemetry::Telemetry)): a valid span context, sampled
//!   or not, or baggage; on a channel built with `producer_spans(true)` and inside a
//!   sampled trace, its `otelconc.channel.send` span's context instead;
//! - the instant it was queued: on tokio's clock when its queue time is in the sampled 1
//!   message in 256 of its sending thread (then it goes to the histogram); on the clock
//!   spans are stamped with when it was sent inside a sampled trace (then it goes on its
//!   consumer span only, measured to the span's start, so the traced receive reads the
//!   clock once for both). No clock is read for a message that only carries an
//!   unsampled context or baggage, nor at a plain receive of a message outside the
//!   sample.
//!
//! A channel nothing observes carries bare messages and no context at all (see
//! [`queue`](super::queue)).

use std::time::{Duration, SystemTime};

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};

use super::metrics::Outcome;
use super::received::Received;
use super::state::Shared;
use crate::telemetry::names::{self, channel as spec};
use crate::telemetry::{Carried, EndingSpan, Trace, link_to, span_start};

impl Shared {
    /// `value` as it goes into the channel, and its producer span (`None` unless the
    /// channel has producer spans and the send is inside a sampled trace). Counts the
    /// message in its thread's queue-time sample.
    #[inline]
    pub(super) fn carry<T>(&self, value: T) -> (Carried<T>, Option<EndingSpan>) {
        if !self.is_observed() {
            // A bare channel: nothing is carried.
            return (Carried::bare(value), None);
        }
        let timed = self.metrics.sends.sample_message();
        let cx = self.telemetry.capture();
        if cx.is_none() && !timed {
            return (Carried::bare(value), None);
        }
        self.carry_traced(value, cx, timed)
    }

    /// As [`carry`](Self::carry), with the context `cx` handed in by the caller instead
    /// of the current one.
    pub(super) fn carry_with<T>(&self, value: T, cx: &Context) -> (Carried<T>, Option<EndingSpan>) {
        if !self.is_observed() {
            return (Carried::bare(value), None);
        }
        let timed = self.metrics.sends.sample_message();
        let cx = self.telemetry.carried(cx);
        if cx.is_none() && !timed {
            return (Carried::bare(value), None);
        }
        self.carry_traced(value, cx, timed)
    }

    #[cold]
    fn carry_traced<T>(
        &self,
        value: T,
        cx: Option<Context>,
        timed: bool,
    ) -> (Carried<T>, Option<EndingSpan>) {
        let spans = self.traced && cx.as_ref().is_some_and(|c| self.telemetry.spans_under(c));
        let (cx, producer) = match cx {
            Some(parent) if spans && self.producer_spans => {
                let span =
                    self.telemetry
                        .start_span(&spec::SEND_SPAN, &parent, vec![self.name.clone()]);
                (Some(span.clone()), Some(EndingSpan::new(Some(span), None)))
            }
            cx => (cx, None),
        };
        let carried = Carried {
            value,
            trace: Some(Box::new(Trace::stamped(cx, timed, spans))),
        };
        (carried, producer)
    }

    /// The message of `carried`, taken by a plain receive: its queue time goes to the
    /// histogram when it is in the sample; its context is dropped.
    #[inline]
    pub(super) fn arrived<T>(&self, carried: Carried<T>) -> T {
        let Carried { value, trace } = carried;
        if let Some(trace) = trace {
            self.arrived_trace(trace);
        }
        value
    }

    /// The out-of-line part of [`arrived`](Self::arrived): keeps the trace's drop off
    /// the receive path of messages that carry nothing.
    #[cold]
    #[inline(never)]
    fn arrived_trace(&self, trace: Box<Trace>) {
        self.queue_wait(&trace);
    }

    /// How long the message of `trace` was queued, on tokio's clock, when it is in the
    /// queue-time sample (recorded into the histogram then); no clock is read otherwise.
    #[cold]
    pub(super) fn queue_wait(&self, trace: &Trace) -> Option<Duration> {
        let waited = trace.enqueued?.elapsed();
        if trace.timed {
            self.metrics.record_queue_time(waited, trace.cx.as_ref());
        }
        Some(waited)
    }

    /// The message of `carried`, taken by a traced receive: with its consumer span when
    /// [`Telemetry::consumer_span`](crate::telemetry::Telemetry) starts one (the
    /// receiver's sampled span is the parent, else the sender's sampled context; the
    /// sender's span context is linked), else under the context the sender carried.
    pub(super) fn received<T>(&self, carried: Carried<T>) -> Received<T> {
        let Carried { value, trace } = carried;
        let (producer, sampled_wait, sent) = match trace {
            Some(trace) => {
                let waited = self.queue_wait(&trace);
                (trace.cx, waited, trace.sent)
            }
            None => (None, None, None),
        };
        let (span, queue_wait) = if self.may_span(producer.as_ref()) {
            // One clock read: the span's start, and the end of the queue wait of a
            // message sent inside a sampled trace (stamped on the same clock).
            let (start, waited) = span_start(sent);
            let queue_wait = waited.or(sampled_wait);
            (
                self.consumer_span(producer.as_ref(), start, queue_wait),
                queue_wait,
            )
        } else {
            (None, sampled_wait)
        };
        let ending = EndingSpan::new(span, producer.as_ref());
        Received::new(value, ending, producer, queue_wait, 0)
    }

    /// Whether a consumer span may be started for a message from `producer`: a cheap
    /// check, so that a message outside any sampled trace costs no attribute list.
    #[inline]
    fn may_span(&self, producer: Option<&Context>) -> bool {
        self.traced
            && (producer.is_some_and(|p| self.telemetry.spans_under(p))
                || self.telemetry.span_parent().is_some())
    }

    #[cold]
    fn consumer_span(
        &self,
        producer: Option<&Context>,
        start: SystemTime,
        queue_wait: Option<Duration>,
    ) -> Option<Context> {
        self.telemetry
            .consumer_span_at(&spec::RECEIVE_SPAN, producer, Some(start), || {
                let mut attributes = Vec::with_capacity(2);
                attributes.push(self.name.clone());
                if let Some(waited) = queue_wait {
                    attributes.push(KeyValue::new(names::ATTR_QUEUE_WAIT, waited.as_secs_f64()));
                }
                attributes
            })
    }

    /// The span of a batch of `len` messages whose contexts `batch` gathered, by the
    /// batch rule: its parent is the receiver's sampled span, else the first message's
    /// sampled context; it links every message's span context. `None` when neither is
    /// sampled (or the tracer builds no spans).
    pub(super) fn batch_span(&self, len: usize, batch: &Batch) -> Option<Context> {
        if !self.traced {
            return None;
        }
        let ambient = self
            .telemetry
            .span_parent()
            .filter(|a| a.span().span_context().is_valid());
        let parent = ambient.as_ref().or(batch.parent.as_ref())?;
        let links = batch.cx.iter().filter_map(link_to).collect();
        let attributes = vec![
            self.name.clone(),
            KeyValue::new(
                spec::ATTR_BATCH_SIZE,
                i64::try_from(len).unwrap_or(i64::MAX),
            ),
        ];
        Some(
            self.telemetry
                .start_linked_span(&spec::RECEIVE_BATCH_SPAN, parent, links, attributes),
        )
    }
}

/// The contexts a traced batch's messages carried.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Every context carried, in the order the messages were taken.
    pub(super) cx: Vec<Context>,
    /// The first one a span may be a child of (sampled), for the batch span's parent.
    pub(super) parent: Option<Context>,
}

impl Batch {
    /// Adds the context one message carried.
    pub(super) fn add(&mut self, shared: &Shared, cx: Context) {
        if self.parent.is_none() && shared.traced && shared.telemetry.spans_under(&cx) {
            self.parent = Some(cx.clone());
        }
        self.cx.push(cx);
    }

    /// The first context carried, for a batch that has no span of its own.
    pub(super) fn first(&self) -> Option<&Context> {
        self.cx.first()
    }
}

/// Ends a producer span by how its send ended (see [`Outcome::send_end`]).
#[cold]
pub(super) fn end_producer(mut span: EndingSpan, outcome: Outcome) {
    span.finish(outcome.send_end());
}
