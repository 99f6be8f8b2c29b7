//! The messaging spans: `send {queue}` (PRODUCER) and `process {queue}` (CONSUMER).

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};

/// The instrumentation scope of this crate's spans.
pub(crate) const SCOPE: &str = "otelconc-redis";

fn common(queue: &str, operation: &'static str, kind: &'static str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "redis"),
        KeyValue::new("messaging.operation.name", operation),
        KeyValue::new("messaging.operation.type", kind),
        KeyValue::new("messaging.destination.name", queue.to_string()),
    ]
}

/// A context holding a started `send {queue}` span, child of `parent`; `batch` is the
/// number of entries of a batch send (`messaging.batch.message_count`).
pub(crate) fn send_span(parent: &Context, queue: &str, batch: Option<usize>) -> Context {
    let tracer = global::tracer(SCOPE);
    let mut attrs = common(queue, "send", "send");
    if let Some(n) = batch {
        attrs.push(KeyValue::new("messaging.batch.message_count", n as i64));
    }
    let span = tracer
        .span_builder(format!("send {queue}"))
        .with_kind(SpanKind::Producer)
        .with_attributes(attrs)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// A context holding a started `process {queue}` span, child of the entry's creation
/// context `creation` and linked to it.
pub(crate) fn process_span(
    creation: &Context,
    queue: &str,
    id: &str,
    consumer: &str,
    attempt: u64,
) -> Context {
    let tracer = global::tracer(SCOPE);
    let mut attrs = common(queue, "process", "process");
    attrs.push(KeyValue::new("messaging.message.id", id.to_string()));
    attrs.push(KeyValue::new(
        "messaging.consumer.group.name",
        crate::keys::GROUP,
    ));
    attrs.push(KeyValue::new("messaging.client.id", consumer.to_string()));
    attrs.push(KeyValue::new("otelconc.job.attempt", attempt as i64));
    let sc = creation.span().span_context().clone();
    let mut builder = tracer
        .span_builder(format!("process {queue}"))
        .with_kind(SpanKind::Consumer)
        .with_attributes(attrs);
    if sc.is_valid() {
        builder = builder.with_links(vec![Link::with_context(sc)]);
    }
    let span = builder.start_with_context(&tracer, creation);
    creation.with_span(span)
}
