//! The messaging spans: `send {queue}` (PRODUCER) and `process {queue}` (CONSUMER),
//! built with the tracer of the [`Telemetry`] handle the queue or worker was given (as
//! its metrics are), so one handle decides where both go.

use std::sync::Arc;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use otelconc::telemetry::{SpanPolicy, Telemetry};

fn common(
    queue: impl Into<opentelemetry::Value>,
    operation: &'static str,
    kind: &'static str,
    room: usize,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(4 + room);
    attrs.extend([
        KeyValue::new("messaging.system", "redis"),
        KeyValue::new("messaging.operation.name", operation),
        KeyValue::new("messaging.operation.type", kind),
        KeyValue::new("messaging.destination.name", queue),
    ]);
    attrs
}

/// A context holding a started `send {queue}` span, child of `parent`; `batch` is the
/// number of entries of a batch send (`messaging.batch.message_count`). `None` when the
/// handle's span policy is [`SpanPolicy::Never`].
pub(crate) fn send_span(
    t: &Telemetry,
    parent: &Context,
    queue: &str,
    batch: Option<usize>,
) -> Option<Context> {
    if t.span_policy() == SpanPolicy::Never {
        return None;
    }
    let tracer = t.tracer();
    let mut attrs = common(queue.to_string(), "send", "send", 1);
    if let Some(n) = batch {
        attrs.push(KeyValue::new("messaging.batch.message_count", n as i64));
    }
    let span = tracer
        .span_builder(format!("send {queue}"))
        .with_kind(SpanKind::Producer)
        .with_attributes(attrs)
        .start_with_context(tracer, parent);
    Some(parent.with_span(span))
}

/// A context holding a started `process {queue}` span (named `name`), child of the
/// entry's creation context `creation` and linked to it; `None` when the handle's span
/// policy is [`SpanPolicy::Never`]. The strings are shared, not copied, into the span.
pub(crate) fn process_span(
    t: &Telemetry,
    creation: &Context,
    name: &str,
    queue: &Arc<str>,
    id: &Arc<str>,
    consumer: &Arc<str>,
    attempt: u64,
) -> Option<Context> {
    if t.span_policy() == SpanPolicy::Never {
        return None;
    }
    let tracer = t.tracer();
    let mut attrs = common(queue.clone(), "process", "process", 4);
    attrs.extend([
        KeyValue::new("messaging.message.id", id.clone()),
        KeyValue::new("messaging.consumer.group.name", crate::keys::GROUP),
        KeyValue::new("messaging.client.id", consumer.clone()),
        KeyValue::new("otelconc.job.attempt", attempt as i64),
    ]);
    let sc = creation.span().span_context().clone();
    let mut builder = tracer
        .span_builder(name.to_owned())
        .with_kind(SpanKind::Consumer)
        .with_attributes(attrs);
    if sc.is_valid() {
        builder = builder.with_links(vec![Link::with_context(sc)]);
    }
    let span = builder.start_with_context(tracer, creation);
    Some(creation.with_span(span))
}
