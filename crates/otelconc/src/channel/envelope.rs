//! What travels with a message when it is sampled or traced ([`Env`], [`Meta`]), and
//! the spans built from it: the optional producer span at the send, the consumer span
//! at the receive.

use std::time::Duration;

use tokio::time::Instant;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};

use super::metrics::{Counts, Outcome};
use super::state::Shared;
use crate::telemetry::names::{self, channel as spec};
use crate::telemetry::record_error;

/// What travels beside a message only when it is sampled or traced.
pub(super) struct Meta {
    /// The sender's context, or its producer span's with `producer_spans` (`None` for a
    /// message sampled only for queue time).
    pub(super) cx: Option<Context>,
    pub(super) sent_at: Instant,
}

/// What the underlying channel carries: the message plus, for 1 in 256 messages and for
/// messages sent inside a sampled trace, a boxed [`Meta`]. One pointer wide beside `T`,
/// and `None` (no allocation) for every other message.
pub(super) struct Env<T> {
    pub(super) value: T,
    pub(super) meta: Option<Box<Meta>>,
}

impl<T> Env<T> {
    /// A message with nothing beside it.
    #[inline]
    pub(super) fn bare(value: T) -> Self {
        Self { value, meta: None }
    }
}

impl Shared {
    /// The envelope of `value` sent from the handle owning `counts`: inside a
    /// sampled trace the sender's context (or its producer span's) and a timestamp; a
    /// timestamp for 1 in 256 (when metrics are observed); else nothing.
    #[inline]
    pub(super) fn envelope<T>(&self, value: T, counts: &Counts) -> Env<T> {
        let parent = if self.traced {
            self.telemetry.span_parent()
        } else {
            None
        };
        let meta = match parent {
            Some(parent) => Some(self.traced_meta(parent)),
            None if counts.sample_message() => Some(Box::new(Meta {
                cx: None,
                sent_at: Instant::now(),
            })),
            None => None,
        };
        Env { value, meta }
    }

    #[cold]
    fn traced_meta(&self, parent: Context) -> Box<Meta> {
        let cx = if self.producer_spans {
            self.telemetry
                .start_span(&spec::SEND_SPAN, &parent, vec![self.name.clone()])
        } else {
            parent
        };
        Box::new(Meta {
            cx: Some(cx),
            sent_at: Instant::now(),
        })
    }

    /// The context to end after the send, when this message has a producer span.
    #[inline]
    pub(super) fn producer_of<T>(&self, env: &Env<T>) -> Option<Context> {
        if self.producer_spans {
            env.meta.as_ref().and_then(|m| m.cx.clone())
        } else {
            None
        }
    }

    /// Queue time of a message that carried metadata; returns it for span attributes.
    #[cold]
    pub(super) fn arrived(&self, meta: &Meta) -> Duration {
        self.metrics.queue_time(meta.sent_at)
    }

    /// Starts the consumer span of a traced message, child of the context it carried.
    #[cold]
    pub(super) fn consumer_span(&self, producer: &Context, waited: Duration) -> Context {
        self.telemetry.start_span(
            &spec::RECEIVE_SPAN,
            producer,
            vec![
                self.name.clone(),
                KeyValue::new(names::ATTR_QUEUE_WAIT, waited.as_secs_f64()),
            ],
        )
    }
}

/// Ends a producer span; a send that did not end in `Ok` marks it as an error first,
/// of the kind its outcome is named in `SEND_OUTCOMES` (`full`, `closed`, ...).
#[cold]
pub(super) fn end_producer(cx: Context, outcome: Outcome) {
    if outcome != Outcome::Ok {
        let kind = outcome.send_name();
        record_error(&cx, kind, format!("send failed: {kind}"));
    }
    cx.span().end();
}
