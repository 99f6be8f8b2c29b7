//! What the channel reports, read from the in-memory exporters: counts equal to the
//! real counts, depth and capacity right, spans only inside sampled traces and with the
//! right parents.

use std::time::{Duration, SystemTime};

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, Value};
use otelconc::channel::{self, RecvTimeoutError, SendTimeoutError, TryRecvError};
use otelconc::telemetry::names::{self, channel as spec};
use otelconc_testkit::{SpanData, TestTelemetry, attr};

fn value(tt: &TestTelemetry, name: &str, outcome: Option<&'static str>) -> Option<f64> {
    let m = tt.metrics();
    match outcome {
        Some(o) => m.value(
            name,
            &[
                attr(names::ATTR_NAME, "orders"),
                attr(names::ATTR_OUTCOME, o),
            ],
        ),
        None => m.value(name, &[attr(names::ATTR_NAME, "orders")]),
    }
}

fn attr_of<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[tokio::test(start_paused = true)]
async fn counts_depth_and_capacity_equal_what_happened() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(3);
    let tx2 = tx.clone();
    tx.send(1).await.unwrap();
    tx2.send(2).await.unwrap();
    tx.try_send(3).unwrap();
    assert!(tx.try_send(4).unwrap_err().is_full());
    assert!(matches!(
        tx.send_timeout(5, Duration::from_millis(1)).await,
        Err(SendTimeoutError::Timeout(5))
    ));
    let mut lossless = tx.send_lossless(6);
    tokio::select! {
        _ = &mut lossless => unreachable!("full"),
        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
    }
    assert_eq!(lossless.cancel(), Some(6));
    // A plain send dropped while waiting.
    let _ = tokio::time::timeout(Duration::from_millis(1), tx.send(7)).await;

    assert_eq!(value(&tt, spec::SIZE.name, None), Some(3.0));
    assert_eq!(value(&tt, spec::CAPACITY.name, None), Some(3.0));

    assert_eq!(rx.recv().await, Ok(1));
    let rx2 = rx.clone();
    assert_eq!(rx2.try_recv(), Ok(2));
    assert_eq!(value(&tt, spec::SIZE.name, None), Some(1.0));
    let mut buf = Vec::new();
    assert_eq!(rx.recv_many(&mut buf, 10).await, 1);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(1)).await,
        Err(RecvTimeoutError::Timeout)
    );
    let _ = tokio::time::timeout(Duration::from_millis(1), rx2.recv()).await;
    drop(rx2); // its counts must survive it
    drop(tx2);
    tx.close();
    assert!(tx.send(8).await.is_err());
    assert!(rx.recv().await.is_err());

    for (outcome, want) in [
        ("ok", 3.0),
        ("full", 1.0),
        ("timeout", 1.0),
        ("cancelled", 2.0),
        ("closed", 1.0),
    ] {
        assert_eq!(
            value(&tt, spec::SENT.name, Some(outcome)),
            Some(want),
            "sent {outcome}"
        );
    }
    // Failed sends carry error.type; a cancelled one is not a failure.
    let m = tt.metrics();
    for (outcome, error) in [
        ("full", Some("queue_full")),
        ("timeout", Some("timeout")),
        ("closed", Some("closed")),
        ("ok", None),
        ("cancelled", None),
    ] {
        let sets = m.attribute_sets(spec::SENT.name);
        let set = sets
            .iter()
            .find(|s| {
                s.iter().any(|kv| {
                    kv.key.as_str() == names::ATTR_OUTCOME && kv.value.as_str() == outcome
                })
            })
            .unwrap_or_else(|| panic!("sent {outcome}"));
        let e = set
            .iter()
            .find(|kv| kv.key.as_str() == names::ATTR_ERROR_TYPE)
            .map(|kv| kv.value.as_str().into_owned());
        assert_eq!(e.as_deref(), error, "error.type of sent {outcome}");
    }
    // Received counts the messages taken, and only them: the empty, timed-out,
    // cancelled and closed receives above are polls, counted nowhere.
    assert_eq!(value(&tt, spec::RECEIVED.name, None), Some(3.0));
    assert_eq!(
        m.attribute_sets(spec::RECEIVED.name),
        vec![vec![attr(names::ATTR_NAME, "orders")]],
        "one series, no outcome"
    );
    assert_eq!(value(&tt, spec::SIZE.name, None), Some(0.0));
    // Waits: the timed-out, cancelled sends and receives and the `recv_many`... each
    // waited; none of the immediate operations did.
    let m = tt.metrics();
    let attrs = [attr(names::ATTR_NAME, "orders")];
    let (send_waits, _) = m
        .histogram(spec::SEND_WAIT_DURATION.name, &attrs)
        .unwrap_or_default();
    assert_eq!(send_waits, 0, "no send that waited ever completed");
    let (recv_waits, _) = m
        .histogram(spec::RECEIVE_WAIT_DURATION.name, &attrs)
        .unwrap_or_default();
    assert_eq!(recv_waits, 0, "no receive that waited ever completed");
    tt.assert_all_cataloged();
}

/// The oldest message's age counts from the first collection after it was sent, and
/// follows the head of the queue as receivers take messages.
#[tokio::test(start_paused = true)]
async fn the_oldest_message_age_follows_the_head_of_the_queue() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(8);
    let age = || value(&tt, spec::OLDEST_AGE.name, None);
    assert_eq!(age(), Some(0.0));
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    assert_eq!(age(), Some(0.0), "sent since the last collection");
    tokio::time::advance(Duration::from_secs(5)).await;
    tx.send(3).await.unwrap();
    assert_eq!(age(), Some(5.0));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(rx.recv().await, Ok(1));
    // Message 2 is as old as message 1 was.
    assert_eq!(age(), Some(7.0));
    assert_eq!(rx.recv().await, Ok(2));
    // Message 3 was sent between the collections at 0 s and 5 s.
    assert_eq!(age(), Some(2.0));
    assert_eq!(rx.recv().await, Ok(3));
    assert_eq!(age(), Some(0.0));
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn waits_are_recorded_only_when_an_operation_really_waited() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(1);
    let consumer = tokio::spawn(async move {
        let first = rx.recv().await; // waits 2 s for the first message
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = rx.recv().await; // ready
        tokio::time::sleep(Duration::from_secs(1)).await;
        (first, second, rx.recv().await) // ready: the blocked send went in meanwhile
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    tx.send(1).await.unwrap(); // no wait
    tokio::time::sleep(Duration::from_secs(1)).await; // t = 3 s
    tx.send(2).await.unwrap(); // no wait: the consumer took 1
    tx.send(3).await.unwrap(); // waits for space until t = 5 s
    let (a, b, c) = consumer.await.unwrap();
    assert_eq!((a, b, c), (Ok(1), Ok(2), Ok(3)));

    let m = tt.metrics();
    let attrs = [attr(names::ATTR_NAME, "orders")];
    let (n, sum) = m.histogram(spec::SEND_WAIT_DURATION.name, &attrs).unwrap();
    assert_eq!(n, 1);
    assert!((1.9..=2.1).contains(&sum), "send waited {sum} s");
    let (n, sum) = m
        .histogram(spec::RECEIVE_WAIT_DURATION.name, &attrs)
        .unwrap();
    assert_eq!(n, 1);
    assert!((1.9..=2.1).contains(&sum), "recv waited {sum} s");
}

#[tokio::test]
async fn queue_time_is_sampled_one_in_256_per_sending_thread() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .unbounded::<u32>();
    for i in 0..520 {
        tx.send(i).await.unwrap();
    }
    let tx2 = tx.clone();
    // Another handle of the channel used on the same thread continues the thread's
    // stride: 768 messages from this thread, whatever the channel's offset, are three
    // strides of 256, so exactly three are timed.
    for i in 520..768 {
        tx2.send(i).await.unwrap();
    }
    let mut buf = Vec::new();
    while buf.len() < 768 && rx.recv_many(&mut buf, 1000).await > 0 {}
    let (n, _) = tt
        .metrics()
        .histogram(
            spec::QUEUE_DURATION.name,
            &[attr(names::ATTR_NAME, "orders")],
        )
        .unwrap();
    assert_eq!(n, 3, "one message in each stride of 256");
}

#[tokio::test]
async fn a_channel_built_per_request_does_not_always_time_its_first_message() {
    let tt = TestTelemetry::new();
    // 64 channels of one name, one message each: with the stride starting at each
    // channel's random offset, about one in 256 of them times its message (the chance
    // that more than 8 do is below 1e-12); timing every first message would give 64.
    for i in 0..64 {
        let (tx, rx) = channel::builder("per-request")
            .telemetry(tt.telemetry())
            .bounded::<u32>(1);
        tx.send(i).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), i);
    }
    let n = tt
        .metrics()
        .histogram(
            spec::QUEUE_DURATION.name,
            &[attr(names::ATTR_NAME, "per-request")],
        )
        .map_or(0, |(n, _)| n);
    assert!(n <= 8, "{n} of 64 first messages timed");
}

#[tokio::test]
async fn traced_messages_are_not_added_to_the_queue_time_sample() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .unbounded::<u32>();
    let root = tt.root("submitter");
    for i in 0..10 {
        tx.send(i).with_context(root.clone()).await.unwrap();
    }
    for _ in 0..10 {
        let msg = rx.recv_traced().await.unwrap();
        assert!(msg.queue_wait().is_some(), "a traced message is timed");
    }
    let n = tt
        .metrics()
        .histogram(
            spec::QUEUE_DURATION.name,
            &[attr(names::ATTR_NAME, "orders")],
        )
        .map_or(0, |(n, _)| n);
    // Ten messages from one thread fall in one stride of 256: at most one of them is
    // in the sample (which one depends on the channel's random offset), traced or not.
    assert!(n <= 1, "{n} of 10 traced messages in the 1-in-256 sample");
    let spans = tt.spans_named(spec::RECEIVE_SPAN.name);
    assert_eq!(spans.len(), 10);
    assert!(
        spans
            .iter()
            .all(|s| attr_of(s, names::ATTR_QUEUE_WAIT).is_some()),
        "every traced message's queue wait is on its span"
    );
}

/// The queue wait on a consumer span is on the span's own timeline: the span starts when
/// the wait ends, so its start minus the wait is the instant the message was sent, even
/// when tokio's clock was paused and moved on meanwhile.
#[tokio::test(start_paused = true)]
async fn a_consumer_spans_queue_wait_ends_at_its_start() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let root = tt.root("submitter");
    let before = SystemTime::now();
    tx.send(7).with_context(root.clone()).await.unwrap();
    let after = SystemTime::now();
    tokio::time::advance(Duration::from_secs(60)).await;
    let msg = rx.recv_traced().await.unwrap();
    let waited = msg.queue_wait().expect("a traced message is timed");
    drop(msg);
    let spans = tt.spans_named(spec::RECEIVE_SPAN.name);
    let span = &spans[0];
    assert_eq!(
        attr_of(span, names::ATTR_QUEUE_WAIT),
        Some(&Value::F64(waited.as_secs_f64()))
    );
    let sent = span.start_time - waited;
    assert!(
        before <= sent && sent <= after,
        "sent at {sent:?}, not within the send ({before:?} to {after:?})"
    );
}

#[tokio::test]
async fn outside_a_sampled_trace_no_span_is_built() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .producer_spans(true)
        .bounded::<u32>(4);
    tx.send(1).await.unwrap();
    let msg = rx.recv_traced().await.unwrap();
    assert!(msg.context().is_none());
    drop(msg);
    assert!(tt.spans().is_empty());
}

#[tokio::test]
async fn the_consumer_span_is_a_child_of_the_sender() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(4);
    let root = tt.root("submitter");
    tx.send(7).with_context(root.clone()).await.unwrap();
    root.span().end();
    // Received from a task with no trace of its own: the span still joins the sender's.
    let got = tokio::spawn(async move {
        let msg = rx.recv_traced().await.unwrap();
        assert!(msg.queue_wait().is_some());
        msg.in_span(|v| async move {
            assert!(Context::current().has_active_span());
            v
        })
        .await
    })
    .await
    .unwrap();
    assert_eq!(got, 7);

    let root_span = &tt.spans_named("submitter")[0];
    let consumer = tt.spans_named(spec::RECEIVE_SPAN.name);
    assert_eq!(consumer.len(), 1);
    let consumer = &consumer[0];
    assert_eq!(consumer.span_kind, SpanKind::Internal);
    assert_eq!(
        consumer.span_context.trace_id(),
        root_span.span_context.trace_id()
    );
    assert_eq!(consumer.parent_span_id, root_span.span_context.span_id());
    let linked: Vec<_> = consumer
        .links
        .iter()
        .map(|l| l.span_context.span_id())
        .collect();
    assert_eq!(linked, [root_span.span_context.span_id()]);
    assert!(attr_of(consumer, names::ATTR_QUEUE_WAIT).is_some());
    assert_eq!(
        attr_of(consumer, names::ATTR_NAME),
        Some(&Value::from("orders"))
    );
    assert!(tt.spans_named(spec::SEND_SPAN.name).is_empty());
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn with_producer_spans_the_chain_is_sender_producer_consumer() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .producer_spans(true)
        .bounded::<u32>(4);
    let root = tt.root("submitter");
    tx.send(1).with_context(root.clone()).await.unwrap();
    root.span().end();
    // Plain recv drops the context: no consumer span.
    assert_eq!(rx.recv().await, Ok(1));
    tx.send(2).with_context(root.clone()).await.unwrap();
    let msg = rx.recv_traced().await.unwrap();
    assert_eq!(msg.into_inner(), 2);

    let root_span = &tt.spans_named("submitter")[0];
    let producers = tt.spans_named(spec::SEND_SPAN.name);
    assert_eq!(producers.len(), 2, "one producer span per traced send");
    for p in &producers {
        assert_eq!(p.span_kind, SpanKind::Internal);
        assert_eq!(p.status, opentelemetry::trace::Status::Unset);
        assert_eq!(p.parent_span_id, root_span.span_context.span_id());
    }
    let consumers = tt.spans_named(spec::RECEIVE_SPAN.name);
    assert_eq!(consumers.len(), 1);
    assert_eq!(
        consumers[0].parent_span_id,
        producers[1].span_context.span_id()
    );
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn a_batch_span_without_an_ambient_span_is_a_child_of_the_first_sampled_message() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(8);
    let a = tt.root("a");
    let b = tt.root("b");
    tx.send(1).with_context(a.clone()).await.unwrap();
    tx.send(2).await.unwrap(); // untraced
    tx.send(3).with_context(b.clone()).await.unwrap();
    a.span().end();
    b.span().end();
    let mut buf = Vec::new();
    let batch = rx.recv_many_traced(&mut buf, 8).await;
    assert_eq!((batch.len(), buf.as_slice()), (3, &[1, 2, 3][..]));
    assert!(batch.context().is_some());
    drop(batch);

    let spans = tt.spans_named(spec::RECEIVE_BATCH_SPAN.name);
    assert_eq!(spans.len(), 1);
    let batch = &spans[0];
    assert_eq!(batch.span_kind, SpanKind::Internal);
    let a_span = &tt.spans_named("a")[0];
    assert_eq!(batch.parent_span_id, a_span.span_context.span_id());
    assert_eq!(
        batch.span_context.trace_id(),
        a_span.span_context.trace_id()
    );
    let linked: Vec<_> = batch
        .links
        .iter()
        .map(|l| l.span_context.span_id())
        .collect();
    let want = [
        tt.spans_named("a")[0].span_context.span_id(),
        tt.spans_named("b")[0].span_context.span_id(),
    ];
    assert_eq!(linked, want);
    assert_eq!(
        attr_of(batch, "otelconc.channel.batch_size"),
        Some(&Value::I64(3))
    );
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn a_dropped_channel_stops_reporting() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(2);
    tx.send(1).await.unwrap();
    assert_eq!(value(&tt, spec::SIZE.name, None), Some(1.0));
    drop((tx, rx));
    assert_eq!(value(&tt, spec::SIZE.name, None), None);
    assert_eq!(value(&tt, spec::SENT.name, Some("ok")), None);
}

#[tokio::test]
async fn a_dropped_channel_frees_its_queued_messages_while_the_meter_lives_on() {
    let tt = TestTelemetry::new();
    let token = std::sync::Arc::new(());
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<std::sync::Arc<()>>(4);
    for _ in 0..3 {
        tx.send(token.clone()).await.unwrap();
    }
    assert_eq!(value(&tt, spec::SIZE.name, None), Some(3.0));
    drop(rx);
    assert_eq!(std::sync::Arc::strong_count(&token), 4, "still queued");
    drop(tx);
    assert_eq!(
        std::sync::Arc::strong_count(&token),
        1,
        "the metric callbacks must not keep the channel alive"
    );
    let _ = tt.metrics();
}

#[tokio::test]
async fn every_consumer_span_ends_however_the_message_is_let_go() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .bounded::<u32>(8);
    let root = tt.root("submitter");
    for i in 0..3 {
        tx.send(i).with_context(root.clone()).await.unwrap();
    }
    root.span().end();
    drop(rx.recv_traced().await.unwrap()); // dropped unprocessed
    assert_eq!(rx.recv_traced().await.unwrap().into_inner(), 1);
    let (v, cx) = rx.recv_traced().await.unwrap().into_parts();
    assert_eq!(v, 2);
    assert_eq!(tt.spans_named(spec::RECEIVE_SPAN.name).len(), 2);
    drop(cx); // the last holder of the third span's context
    let spans = tt.spans_named(spec::RECEIVE_SPAN.name);
    assert_eq!(spans.len(), 3, "every consumer span ended");
    let root_id = tt.spans_named("submitter")[0].span_context.span_id();
    assert!(spans.iter().all(|s| s.parent_span_id == root_id));
}

#[test]
fn counts_stay_exact_when_one_handle_is_shared_by_threads() {
    let tt = TestTelemetry::new();
    let (tx, rx) = channel::builder("orders")
        .telemetry(tt.telemetry())
        .unbounded::<u32>();
    std::thread::scope(|s| {
        for _ in 0..4 {
            // One handle, used by reference from four threads at once.
            s.spawn(|| {
                for i in 0..10_000 {
                    tx.try_send(i).unwrap();
                }
            });
        }
    });
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 40_000);
    assert_eq!(value(&tt, spec::SENT.name, Some("ok")), Some(40_000.0));
    assert_eq!(value(&tt, spec::RECEIVED.name, None), Some(40_000.0));
}

#[tokio::test]
async fn with_no_sdk_nothing_is_carried_even_inside_a_trace() {
    use opentelemetry::metrics::noop::NoopMeterProvider;
    use opentelemetry::trace::noop::NoopTracerProvider;
    let tt = TestTelemetry::new();
    let t =
        otelconc::telemetry::Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
    let (tx, rx) = channel::builder("orders").telemetry(t).bounded::<u32>(4);
    let root = tt.root("submitter");
    tx.send(1).with_context(root.clone()).await.unwrap();
    let msg = rx.recv_traced().await.unwrap();
    assert!(
        msg.context().is_none(),
        "a no-op tracer: no context travels"
    );
    assert!(msg.queue_wait().is_none(), "no meter: nothing is timed");
}

#[tokio::test]
async fn building_channels_exports_nothing_even_under_an_always_on_sampler() {
    use opentelemetry::metrics::noop::NoopMeterProvider;
    use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_simple_exporter(exporter.clone())
        .build();
    let t = otelconc::telemetry::Telemetry::new(&NoopMeterProvider::new(), &provider);
    for i in 0..5 {
        let _ = otelconc::channel::builder(format!("c{i}"))
            .telemetry(t.clone())
            .bounded::<u8>(4);
    }
    assert!(
        exporter.get_finished_spans().unwrap().is_empty(),
        "building a channel must not export anything"
    );

    // The tracer is still recognised as real: a traced message gets a consumer span.
    let (tx, rx) = otelconc::channel::builder("traced")
        .telemetry(t)
        .bounded::<u8>(4);
    let tracer = provider.tracer("test");
    let root = opentelemetry::Context::current().with_span(tracer.start("root"));
    {
        let _g = root.clone().attach();
        tx.send(1).await.unwrap();
    }
    rx.recv_traced().await.unwrap().in_span(|_| async {}).await;
    root.span().end();
    let names: Vec<_> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, ["otelconc.channel.receive", "root"]);
}
