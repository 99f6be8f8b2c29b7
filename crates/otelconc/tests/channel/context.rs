//! The context a message carries and the spans built from it, read from the in-memory
//! exporter: unsampled contexts and baggage travel, the consumer and batch rules pick
//! the parent and link the senders, and producer spans end by the error rule.

use std::time::Duration;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanId, Status, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue, Value};
use otelconc::channel::{self, SendTimeoutError};
use otelconc::telemetry::names::{self, channel as spec};
use otelconc_testkit::{BAGGAGE_VALUE, SpanData, TestTelemetry, UNSAMPLED_TRACE_ID, seen_context};

fn attr_of<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn links_of(span: &SpanData) -> Vec<SpanId> {
    span.links
        .iter()
        .map(|l| l.span_context.span_id())
        .collect()
}

fn span_id(cx: &Context) -> SpanId {
    cx.span().span_context().span_id()
}

#[tokio::test]
async fn under_an_unsampled_parent_a_span_the_consumer_starts_is_not_exported() {
    let tt = TestTelemetry::parent_based();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    tx.send(1)
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    let msg = rx.recv_traced().await.unwrap();
    assert!(!msg.has_span(), "an unsampled message starts no span");
    let cx = msg.context().expect("the sender's context travels");
    assert_eq!(
        cx.span().span_context().trace_id(),
        TraceId::from(UNSAMPLED_TRACE_ID)
    );
    assert!(msg.producer_context().is_some());
    msg.in_span(|_| async { tt.start_user_span("user-work") })
        .await;
    // Had the context been lost, "user-work" would be an exported root.
    assert!(tt.spans().is_empty(), "{:?}", tt.spans());
}

#[tokio::test]
async fn the_senders_trace_id_and_baggage_are_seen_on_the_far_side() {
    let tt = TestTelemetry::parent_based();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    tx.send(1)
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    let seen = rx
        .recv_traced()
        .await
        .unwrap()
        .in_span(|_| async { seen_context() })
        .await;
    assert_eq!(
        seen,
        (
            Some(TraceId::from(UNSAMPLED_TRACE_ID)),
            Some(BAGGAGE_VALUE.to_owned())
        )
    );

    // Baggage alone travels too, to a batch as well.
    let baggage =
        Context::new().with_baggage([KeyValue::new(otelconc_testkit::BAGGAGE_KEY, BAGGAGE_VALUE)]);
    tx.send(2).with_context(baggage).await.unwrap();
    let mut buf = Vec::new();
    let batch = rx.recv_many_traced(&mut buf, 4).await;
    let cx = batch.context().expect("the first carried context").clone();
    let seen = async { seen_context() }.with_context(cx).await;
    assert_eq!(seen, (None, Some(BAGGAGE_VALUE.to_owned())));
}

#[tokio::test]
async fn a_receive_without_an_ambient_span_is_a_child_of_the_sampled_sender_and_links_it() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let sender = tt.root("sender");
    tx.send(1).with_context(sender.clone()).await.unwrap();
    let msg = rx.recv_traced().await.unwrap();
    assert!(msg.has_span());
    drop(msg);
    let span = &tt.spans_named(spec::RECEIVE_SPAN.name)[0];
    assert_eq!(span.parent_span_id, span_id(&sender));
    assert_eq!(links_of(span), [span_id(&sender)]);
}

#[tokio::test]
async fn a_receive_inside_a_sampled_span_is_its_child_and_links_the_sender() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let sender = tt.root("sender");
    tx.send(1).with_context(sender.clone()).await.unwrap();
    // An unsampled sender: the receiver's own sampled span still gets a receive span.
    tx.send(2)
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    let handler = tt.root("handler");
    async {
        for _ in 0..2 {
            let msg = rx.recv_traced().await.unwrap();
            assert!(msg.has_span());
        }
    }
    .with_context(handler.clone())
    .await;
    let spans = tt.spans_named(spec::RECEIVE_SPAN.name);
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span.parent_span_id, span_id(&handler));
        assert_eq!(
            span.span_context.trace_id(),
            handler.span().span_context().trace_id()
        );
    }
    assert_eq!(links_of(&spans[0]), [span_id(&sender)]);
    assert_eq!(links_of(&spans[1]), [SpanId::from(0x5eed_u64)]);
}

#[tokio::test]
async fn a_batch_inside_a_sampled_span_is_its_child_and_links_every_message() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(8);
    let a = tt.root("a");
    tx.send(1)
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    tx.send(2).await.unwrap(); // carries nothing
    tx.send(3).with_context(a.clone()).await.unwrap();
    let handler = tt.root("handler");
    let mut buf = Vec::new();
    let batch = rx
        .recv_many_traced(&mut buf, 8)
        .with_context(handler.clone())
        .await;
    assert_eq!(batch.len(), 3);
    drop(batch);
    let span = &tt.spans_named(spec::RECEIVE_BATCH_SPAN.name)[0];
    assert_eq!(span.parent_span_id, span_id(&handler));
    assert_eq!(links_of(span), [SpanId::from(0x5eed_u64), span_id(&a)]);
    assert_eq!(
        attr_of(span, "otelconc.channel.batch_size"),
        Some(&Value::I64(3))
    );
}

#[tokio::test]
async fn a_batch_with_no_sampled_context_has_no_span_but_the_first_carried_context() {
    let tt = TestTelemetry::parent_based();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(8);
    tx.send(1).await.unwrap(); // carries nothing
    tx.send(2)
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let batch = rx.recv_many_traced(&mut buf, 8).await;
    assert_eq!(batch.len(), 2);
    let cx = batch.context().expect("the first carried context");
    assert_eq!(
        cx.span().span_context().trace_id(),
        TraceId::from(UNSAMPLED_TRACE_ID)
    );
    let cx = batch.into_context().unwrap();
    async { tt.start_user_span("batch-work") }
        .with_context(cx)
        .await;
    assert!(tt.spans().is_empty(), "{:?}", tt.spans());
}

fn assert_failed(span: &SpanData, error_type: &str) {
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{error_type}: {:?}",
        span.status
    );
    assert_eq!(
        attr_of(span, names::ATTR_ERROR_TYPE),
        Some(&Value::from(error_type.to_owned()))
    );
    assert!(span.events.events.is_empty(), "no exception event");
}

fn assert_cancelled(span: &SpanData) {
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        attr_of(span, names::ATTR_OUTCOME),
        Some(&Value::from("cancelled"))
    );
    assert_eq!(attr_of(span, names::ATTR_ERROR_TYPE), None);
}

#[tokio::test(start_paused = true)]
async fn a_failed_send_ends_its_producer_span_with_the_error_type() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .producer_spans(true)
        .bounded::<u32>(1);
    let root = tt.root("sender");
    let _g = root.clone().attach();
    tx.try_send(1).unwrap();
    assert!(tx.try_send(2).unwrap_err().is_full());
    assert!(matches!(
        tx.send_timeout(3, Duration::from_millis(1)).await,
        Err(SendTimeoutError::Timeout(3))
    ));
    rx.close();
    assert!(tx.send(4).await.is_err());
    drop(_g);

    let spans = tt.spans_named(spec::SEND_SPAN.name);
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[0].status, Status::Unset);
    assert_eq!(attr_of(&spans[0], names::ATTR_ERROR_TYPE), None);
    assert_failed(&spans[1], "queue_full");
    assert_failed(&spans[2], "timeout");
    assert_failed(&spans[3], "closed");
    assert!(spans.iter().all(|s| s.parent_span_id == span_id(&root)));
}

#[tokio::test(start_paused = true)]
async fn a_send_cancelled_before_it_completed_ends_its_producer_span_cancelled() {
    let tt = TestTelemetry::new();
    let (tx, _rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .producer_spans(true)
        .bounded::<u32>(1);
    let root = tt.root("sender");
    tx.send(1).with_context(root.clone()).await.unwrap();
    // A plain send dropped while waiting for space.
    let dropped = tokio::time::timeout(
        Duration::from_millis(1),
        tx.send(2).with_context(root.clone()),
    )
    .await;
    assert!(dropped.is_err());
    // A lossless send taken back.
    let mut lossless = tx.send_lossless(3);
    let waited = tokio::time::timeout(
        Duration::from_millis(1),
        (&mut lossless).with_context(root.clone()),
    )
    .await;
    assert!(waited.is_err());
    assert_eq!(lossless.cancel(), Some(3));

    let spans = tt.spans_named(spec::SEND_SPAN.name);
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].status, Status::Unset);
    assert_eq!(attr_of(&spans[0], names::ATTR_OUTCOME), None);
    assert_cancelled(&spans[1]);
    assert_cancelled(&spans[2]);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_in_span_fails_the_receive_span_and_a_dropped_one_cancels_it() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let root = tt.root("sender");
    for i in 0..2 {
        tx.send(i).with_context(root.clone()).await.unwrap();
    }
    let msg = rx.recv_traced().await.unwrap();
    let panicked = tokio::spawn(msg.in_span(|_| async { panic!("boom") })).await;
    assert!(panicked.unwrap_err().is_panic());
    let msg = rx.recv_traced().await.unwrap();
    let stopped = tokio::time::timeout(
        Duration::from_millis(1),
        msg.in_span(|_| std::future::pending::<()>()),
    )
    .await;
    assert!(stopped.is_err());

    let spans = tt.spans_named(spec::RECEIVE_SPAN.name);
    assert_eq!(spans.len(), 2);
    assert_failed(&spans[0], "panic");
    assert_eq!(spans[0].status, Status::error("boom"));
    assert_cancelled(&spans[1]);
}

#[cfg(feature = "tracing")]
#[tokio::test]
async fn a_log_on_the_far_side_carries_the_unsampled_senders_trace_id() {
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let tt = TestTelemetry::parent_based();
    let (dispatch, events) = otelconc_testkit::log_capture(&tt);
    let _default = tracing::dispatcher::set_default(&dispatch);
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let request = tracing::info_span!("request");
    let _ = request.set_parent(TestTelemetry::unsampled_parent());
    tx.send(1).instrument(request).await.unwrap();
    // The far side: no tracing span of its own.
    rx.recv_traced()
        .await
        .unwrap()
        .in_span(|_| async { tracing::info!("handled") })
        .await;
    let handled = events.with_message("handled");
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].trace_id, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
    assert!(tt.spans().is_empty(), "{:?}", tt.spans());
}
