//! The spans and metrics an exporter receives from fan-out and fan-in.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use opentelemetry::Value;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use otelconc::fan::{FanIn, FanOut, Traced};
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, fan::ATTR_INPUT};
use otelconc_testkit::{SpanData, TestTelemetry, attr};

/// The value of `span`'s attribute `key`.
fn attr_of<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}
use tokio::time::sleep;

#[tokio::test]
async fn item_spans_are_children_of_the_caller_and_items_are_counted_by_outcome() {
    let tt = TestTelemetry::new();
    let fan = FanOut::builder("resize").telemetry(tt.telemetry()).build();
    let root = tt.root("request");
    let out: Vec<_> = async {
        fan.items(0..4u32, 2, |i| async move {
            if i == 3 {
                Err(format!("item {i} too big"))
            } else {
                Ok(i)
            }
        })
        .unwrap()
        .collect()
        .await
    }
    .with_context(root.clone())
    .await;
    assert_eq!(out.len(), 4);
    // Outside a sampled trace: counted, no span.
    let n = fan
        .items_unordered(0..3u32, 2, |i| async move { Ok::<_, String>(i) })
        .unwrap()
        .count()
        .await;
    assert_eq!(n, 3);
    root.span().end();

    let root_id = root.span().span_context().span_id();
    let spans = tt.spans_named("otelconc.fan_out.item");
    assert_eq!(spans.len(), 4);
    assert!(spans.iter().all(|s| s.parent_span_id == root_id));
    let failed: Vec<_> = spans
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, Status::error("item 3 too big"));
    assert_eq!(
        attr_of(failed[0], ATTR_ERROR_TYPE),
        Some(&Value::from(std::any::type_name::<String>()))
    );
    assert!(
        spans.iter().all(|s| s.events.events.is_empty()),
        "no exception event"
    );

    let m = tt.metrics();
    let count = |outcome: &'static str| {
        m.value(
            "otelconc.fan_out.items",
            &[attr(ATTR_NAME, "resize"), attr(ATTR_OUTCOME, outcome)],
        )
    };
    assert_eq!(count("ok"), Some(6.0));
    assert_eq!(count("error"), Some(1.0));
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn fan_out_workers_are_children_of_the_fan_out_span() {
    let tt = TestTelemetry::new();
    let fan = FanOut::builder("probe").telemetry(tt.telemetry()).build();
    let root = tt.root("request");
    fan.run(1u8, 3, |x, _, _| async move { Ok::<_, String>(x) })
        .with_context(root.clone())
        .await
        .unwrap();
    root.span().end();
    let parent = tt.spans_named("otelconc.fan_out");
    assert_eq!(parent.len(), 1);
    assert_eq!(
        parent[0].parent_span_id,
        root.span().span_context().span_id()
    );
    let workers = tt.spans_named("otelconc.group.task");
    assert_eq!(workers.len(), 3);
    assert!(
        workers
            .iter()
            .all(|s| s.parent_span_id == parent[0].span_context.span_id())
    );
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn a_failed_fan_out_span_has_the_workers_error_type_and_no_event() {
    let tt = TestTelemetry::new();
    let fan = FanOut::builder("probe").telemetry(tt.telemetry()).build();
    let root = tt.root("request");
    let err = fan
        .run(1u8, 2, |_, i, _| async move {
            if i == 1 { Err(std::fmt::Error) } else { Ok(i) }
        })
        .with_context(root.clone())
        .await
        .unwrap_err();
    assert_eq!(err.len(), 1);
    let span = tt.spans_named("otelconc.fan_out");
    assert_eq!(span.len(), 1);
    assert!(matches!(span[0].status, Status::Error { .. }));
    assert_eq!(
        attr_of(&span[0], ATTR_ERROR_TYPE),
        Some(&Value::from(std::any::type_name::<std::fmt::Error>()))
    );
    assert!(span[0].events.events.is_empty());
}

#[tokio::test]
async fn a_consumer_outside_any_trace_continues_each_items_trace_through_the_fan_in() {
    let tt = TestTelemetry::new();
    let producer_a = tt.root("producer-a");
    let producer_b = tt.root("producer-b");
    let traced = stream::iter(vec![
        Traced::with_context(1, Some(producer_a.clone())),
        Traced::with_context(2, Some(producer_b.clone())),
    ]);
    let mut out = FanIn::builder("merge")
        .telemetry(tt.telemetry())
        .traced_input("traced", traced)
        .build()
        .unwrap();
    let mut received = 0;
    while let Some(m) = out.next().await {
        let producer = m.producer_context().expect("traced item").clone();
        let receive = m
            .context()
            .expect("a receive span")
            .span()
            .span_context()
            .clone();
        assert_eq!(
            receive.trace_id(),
            producer.span().span_context().trace_id(),
            "the receive span is in the item's own trace"
        );
        received += 1;
    }
    assert_eq!(received, 2);
    let spans = tt.spans_named("otelconc.fan_in.receive");
    assert_eq!(spans.len(), 2);
    for p in [&producer_a, &producer_b] {
        let sc = p.span().span_context().clone();
        let s = spans
            .iter()
            .find(|s| s.parent_span_id == sc.span_id())
            .expect("a receive span whose parent is the producer");
        assert_eq!(s.span_context.trace_id(), sc.trace_id());
        assert!(
            s.links
                .links
                .iter()
                .any(|l| l.span_context.span_id() == sc.span_id())
        );
    }
}

#[tokio::test]
async fn fan_in_links_each_item_to_its_producer_and_counts_by_input() {
    let tt = TestTelemetry::new();
    let producer_a = tt.root("producer-a");
    let producer_b = tt.root("producer-b");
    let traced = stream::iter(vec![
        Traced::with_context(1, Some(producer_a.clone())),
        Traced::with_context(2, Some(producer_b.clone())),
    ]);
    let plain = stream::iter(vec![10, 11, 12]);
    let builder = FanIn::builder("merge").telemetry(tt.telemetry());
    // The plain input's items carry the context current when it was added.
    let builder = {
        let _g = producer_a.clone().attach();
        builder.input("plain", plain)
    };
    let mut out = builder.traced_input("traced", traced).build().unwrap();
    let consumer = tt.root("consumer");
    let mut received = 0;
    async {
        while let Some(m) = out.next().await {
            assert!(m.producer_context().is_some());
            assert!(m.context().is_some());
            received += 1;
        }
    }
    .with_context(consumer.clone())
    .await;
    assert_eq!(received, 5);

    let spans = tt.spans_named("otelconc.fan_in.receive");
    assert_eq!(spans.len(), 5, "every receive span ended");
    assert!(spans.iter().all(|s| s.span_kind == SpanKind::Internal));
    let consumer_id = consumer.span().span_context().span_id();
    assert!(spans.iter().all(|s| s.parent_span_id == consumer_id));
    let linked = |p: &opentelemetry::Context| {
        let id = p.span().span_context().span_id();
        spans
            .iter()
            .filter(|s| s.links.links.iter().any(|l| l.span_context.span_id() == id))
            .count()
    };
    assert_eq!(linked(&producer_a), 4);
    assert_eq!(linked(&producer_b), 1);

    let m = tt.metrics();
    let merged = |input: &'static str| {
        m.value(
            "otelconc.fan_in.items",
            &[attr(ATTR_NAME, "merge"), attr(ATTR_INPUT, input)],
        )
    };
    assert_eq!(merged("plain"), Some(3.0));
    assert_eq!(merged("traced"), Some(2.0));
    // Named inputs label their items' spans too.
    assert!(spans.iter().all(|s| attr_of(s, ATTR_INPUT).is_some()));
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn unnamed_inputs_add_no_input_attribute_to_metrics_or_spans() {
    let tt = TestTelemetry::new();
    let producer = tt.root("producer");
    let builder = FanIn::builder("shards").telemetry(tt.telemetry());
    let builder = {
        let _g = producer.clone().attach();
        (0..20).fold(builder, |b, i| b.unnamed_input(stream::iter([i])))
    };
    let out = builder.build().unwrap();
    assert_eq!(out.count().await, 20);
    let spans = tt.spans_named("otelconc.fan_in.receive");
    assert_eq!(spans.len(), 20);
    assert!(spans.iter().all(|s| attr_of(s, ATTR_INPUT).is_none()));
    let m = tt.metrics();
    assert_eq!(
        m.attribute_sets("otelconc.fan_in.items"),
        [vec![attr(ATTR_NAME, "shards")]]
    );
    assert_eq!(
        m.value("otelconc.fan_in.items", &[attr(ATTR_NAME, "shards")]),
        Some(20.0)
    );
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn items_cancelled_by_fail_fast_end_their_spans_unset_and_cancelled_and_the_failure_is_counted()
 {
    let tt = TestTelemetry::new();
    let fan = FanOut::builder("batch").telemetry(tt.telemetry()).build();
    let root = tt.root("request");
    let out: Result<Vec<u64>, _> = async {
        fan.items(0..10u64, 3, |i| async move {
            if i == 1 {
                return Err("bad item".to_owned());
            }
            sleep(Duration::from_secs(3600)).await;
            Ok(i)
        })
        .unwrap()
        .fail_fast()
        .try_collect()
        .await
    }
    .with_context(root.clone())
    .await;
    assert_eq!(out.unwrap_err().index(), 1);
    let spans = tt.spans_named("otelconc.fan_out.item");
    // Items 0, 1 and 2 started; 0 and 2 were cancelled, 1 failed: all three ended.
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for s in &spans {
        let index = attr_of(s, "otelconc.fan_out.index");
        if index == Some(&Value::I64(1)) {
            assert_eq!(s.status, Status::error("bad item"));
            assert_eq!(
                attr_of(s, ATTR_ERROR_TYPE),
                Some(&Value::from(std::any::type_name::<String>()))
            );
        } else {
            // Cancellation is not an error.
            assert_eq!(s.status, Status::Unset, "item {index:?}");
            assert_eq!(attr_of(s, ATTR_OUTCOME), Some(&Value::from("cancelled")));
            assert_eq!(attr_of(s, ATTR_ERROR_TYPE), None);
        }
        assert!(s.events.events.is_empty(), "no exception event");
    }
    // The stream was dropped right after the error: its counts were flushed.
    let m = tt.metrics();
    assert_eq!(
        m.value(
            "otelconc.fan_out.items",
            &[attr(ATTR_NAME, "batch"), attr(ATTR_OUTCOME, "error")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_panicked_item_is_counted_with_error_type_panic() {
    let tt = TestTelemetry::new();
    let fan = FanOut::builder("risky").telemetry(tt.telemetry()).build();
    let results: Vec<_> = fan
        .items(0..3u32, 2, |i| async move {
            assert!(i != 1, "item 1 panics");
            Ok::<_, String>(i)
        })
        .unwrap()
        .collect()
        .await;
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    let m = tt.metrics();
    assert_eq!(
        m.value(
            "otelconc.fan_out.items",
            &[
                attr(ATTR_NAME, "risky"),
                attr(ATTR_OUTCOME, "panic"),
                attr(ATTR_ERROR_TYPE, "panic")
            ]
        ),
        Some(1.0)
    );
    tt.assert_all_cataloged();
}
