//! The telemetry an in-memory exporter receives from a pipeline: stage counters, the
//! duration histogram, and each item's chain of stage spans.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanId, Status, TraceContextExt};
use opentelemetry::{KeyValue, Value};
use otelconc::pipeline::{ErrorPolicy, Pipeline};
use otelconc::telemetry::SpanPolicy;
use otelconc::telemetry::names::pipeline::ATTR_STAGE;
use otelconc::telemetry::names::{
    ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT, ATTR_WORKER_STATE,
};
use otelconc_testkit::{SpanData, TestTelemetry, attr};

use crate::attr_of;

/// The span attribute of an item's sequence number in its run.
const ATTR_SEQ: &str = "otelconc.pipeline.seq";

/// A run holds what it needs: dropping the `Pipeline` value while its output is still
/// being read stops neither the run nor its stage metrics (they stop once the run is
/// over too).
#[tokio::test]
async fn a_run_that_outlives_its_pipeline_value_is_still_reported() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("outlived")
        .stage("only", 2, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let mut out = pipeline.run(stream::iter(0..100_u64));
    drop(pipeline);
    for _ in 0..50 {
        out.next().await.expect("an item").expect("ok");
    }
    let attrs = [attr(ATTR_NAME, "outlived"), attr(ATTR_STAGE, "only")];
    let received = tt
        .metrics()
        .value("otelconc.pipeline.stage.received", &attrs)
        .expect("still reported while the run lives");
    assert!(received >= 50.0, "{received}");
    assert_eq!(out.count().await, 50);
}

#[tokio::test]
async fn stage_metrics_count_every_item_and_time_it() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("metrics")
        .stage("one", 2, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .stage("two", 2, 4, |n: u64| async move { Ok(n) })
        .time_every(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let out = pipeline.run(stream::iter(0..500_u64));
    assert_eq!(out.count().await, 500);
    let m = tt.metrics();
    for stage in ["one", "two"] {
        let attrs = [attr(ATTR_NAME, "metrics"), attr(ATTR_STAGE, stage)];
        assert_eq!(
            m.value("otelconc.pipeline.stage.received", &attrs),
            Some(500.0)
        );
        let mut ok = attrs.to_vec();
        ok.push(attr(ATTR_OUTCOME, "ok"));
        assert_eq!(
            m.value("otelconc.pipeline.stage.processed", &ok),
            Some(500.0)
        );
        let (count, sum) = m
            .histogram("otelconc.pipeline.stage.duration", &attrs)
            .unwrap();
        assert_eq!(count, 500);
        assert!(sum >= 0.0);
        // The run is over: its buffers are gone and report nothing.
        assert_eq!(
            m.value("otelconc.pipeline.stage.buffer.size", &attrs),
            Some(0.0)
        );
    }
    assert_eq!(
        m.unit("otelconc.pipeline.stage.duration").as_deref(),
        Some("s")
    );
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn stage_duration_is_sampled_one_in_n_per_worker() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("sampled-timing")
        .stage("only", 1, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .time_every(10)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    assert_eq!(
        pipeline.run(stream::iter(0..1_000_u64)).count().await,
        1_000
    );
    let (count, _) = tt
        .metrics()
        .histogram(
            "otelconc.pipeline.stage.duration",
            &[attr(ATTR_STAGE, "only")],
        )
        .unwrap();
    assert_eq!(count, 100);
}

/// The stage spans of one item, in stage order.
fn item_spans(spans: &[SpanData], seq: i64) -> Vec<SpanData> {
    let mut v: Vec<SpanData> = spans
        .iter()
        .filter(|s| s.name == "otelconc.pipeline.stage")
        .filter(|s| attr_of(s, ATTR_SEQ) == Some(&Value::I64(seq)))
        .cloned()
        .collect();
    v.sort_by_key(|s| s.start_time);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_items_stage_spans_form_a_parent_chain_in_one_trace_each_linked_to_its_parent() {
    for ordered in [false, true] {
        item_span_chain(ordered).await;
    }
}

async fn item_span_chain(ordered: bool) {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("traced")
        .stage("parse", 2, 4, |s: String| async move { s.parse::<u64>() })
        .stage("square", 2, 4, |n: u64| async move { Ok(n * n) })
        .stage("format", 1, 4, |n: u64| async move { Ok(format!("{n}")) })
        .ordered(ordered)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    let root_span = root.span().span_context().clone();
    let out: Vec<String> = async {
        pipeline
            .run(stream::iter((0..10_u64).map(|n| n.to_string())))
            .map(|r| r.unwrap())
            .collect()
            .await
    }
    .with_context(root.clone())
    .await;
    assert_eq!(out.len(), 10);
    root.span().end();
    let spans = tt.spans();
    for seq in 0..10 {
        let chain = item_spans(&spans, seq);
        let names: Vec<&Value> = chain
            .iter()
            .map(|s| attr_of(s, ATTR_STAGE).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                &Value::from("parse"),
                &Value::from("square"),
                &Value::from("format")
            ],
            "item {seq}"
        );
        let mut parent: SpanId = root_span.span_id();
        for s in &chain {
            assert_eq!(s.span_context.trace_id(), root_span.trace_id(), "one trace");
            assert_eq!(s.parent_span_id, parent, "item {seq}: parent chain");
            // The consumer rule: the workers run outside any span, so the producer (the
            // previous stage, or the submitter) is both the parent and the link.
            assert_eq!(s.links.links.len(), 1, "item {seq}: one link");
            assert_eq!(
                s.links.links[0].span_context.span_id(),
                parent,
                "item {seq}: link"
            );
            assert_eq!(attr_of(s, ATTR_NAME), Some(&Value::from("traced")));
            assert!(matches!(attr_of(s, ATTR_QUEUE_WAIT), Some(Value::F64(w)) if *w >= 0.0));
            assert_eq!(s.status, Status::Unset);
            parent = s.span_context.span_id();
        }
    }
    tt.assert_all_cataloged();
}

#[tokio::test]
async fn each_sent_item_is_traced_from_its_own_senders_context() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("per-sender")
        .stage("a", 1, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .stage("b", 1, 4, |n: u64| async move { Ok(n) })
        .ordered(true)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let (tx, out) = pipeline.start();
    let r1 = tt.root("request-1");
    let r2 = tt.root("request-2");
    tx.send(0).with_context(r1.clone()).await.unwrap();
    tx.send(1).await.unwrap(); // outside any trace: no spans
    tx.send(2).with_context(r2.clone()).await.unwrap();
    drop(tx);
    assert_eq!(out.count().await, 3);
    let spans = tt.spans();
    for (seq, root) in [(0, &r1), (2, &r2)] {
        let chain = item_spans(&spans, seq);
        assert_eq!(chain.len(), 2);
        assert_eq!(
            chain[0].parent_span_id,
            root.span().span_context().span_id()
        );
        assert_eq!(chain[1].parent_span_id, chain[0].span_context.span_id());
        assert_eq!(
            chain[1].span_context.trace_id(),
            root.span().span_context().trace_id()
        );
    }
    assert!(
        item_spans(&spans, 1).is_empty(),
        "unsampled item has no span"
    );
}

/// Under `SpanPolicy::Always` an item sent outside any trace still gets its stage spans,
/// and the first one has the item's wait in the input queue, as a traced item's has.
#[tokio::test]
async fn under_span_policy_always_an_untraced_items_first_span_has_its_queue_wait() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("always")
        .stage("a", 1, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .telemetry(tt.telemetry().with_span_policy(SpanPolicy::Always))
        .build()
        .unwrap();
    let (tx, out) = pipeline.start();
    tx.send(0).await.unwrap();
    drop(tx);
    assert_eq!(out.count().await, 1);
    let chain = item_spans(&tt.spans(), 0);
    assert_eq!(chain.len(), 1);
    assert!(matches!(attr_of(&chain[0], ATTR_QUEUE_WAIT), Some(Value::F64(w)) if *w >= 0.0));
}

#[tokio::test]
async fn no_span_is_made_outside_a_sampled_trace() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("quiet")
        .stage("a", 2, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    assert_eq!(pipeline.run(stream::iter(0..100_u64)).count().await, 100);
    assert!(tt.spans().is_empty());
}

#[tokio::test]
async fn a_failed_items_stage_span_has_error_status_and_error_type_and_no_event() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("errors")
        .stage("check", 1, 4, |n: u64| async move {
            match n {
                1 => Err("one is bad".to_owned()),
                2 => panic!("two panics"),
                _ => Ok(n),
            }
        })
        .stage("after", 1, 4, |n: u64| async move { Ok(n) })
        .on_error(ErrorPolicy::Skip)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    let n = async { pipeline.run(stream::iter(0..4_u64)).count().await }
        .with_context(root)
        .await;
    assert_eq!(n, 2);
    let spans = tt.spans();
    let string = std::any::type_name::<String>();
    for (seq, error_type, msg) in [(1, string, "one is bad"), (2, "panic", "two panics")] {
        let chain = item_spans(&spans, seq);
        assert_eq!(chain.len(), 1, "a failed item goes no further");
        let s = &chain[0];
        assert_eq!(s.status, Status::error(msg));
        assert_eq!(
            attr_of(s, ATTR_ERROR_TYPE),
            Some(&Value::from(error_type)),
            "item {seq}"
        );
        assert!(
            s.events.events.is_empty(),
            "no exception event: {:?}",
            s.events.events
        );
    }
    // The items that went through end their spans without an error.
    for seq in [0, 3] {
        for s in item_spans(&spans, seq) {
            assert_eq!(s.status, Status::Unset);
            assert_eq!(attr_of(&s, ATTR_ERROR_TYPE), None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_item_ends_its_span_cancelled_with_status_unset() {
    let tt = TestTelemetry::new();
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let pipeline = Pipeline::builder("stop-traced")
        .stage("stuck", 1, 1, move |_: u64| {
            let s = s.clone();
            async move {
                s.notify_one();
                std::future::pending::<Result<u64, Infallible>>().await
            }
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    let (tx, out) = pipeline.start();
    tx.send(7).with_context(root).await.unwrap();
    started.notified().await;
    out.stop().await;
    let spans = tt.spans_named("otelconc.pipeline.stage");
    assert_eq!(spans.len(), 1, "the span ended");
    assert_eq!(spans[0].status, Status::Unset, "a stop is not an error");
    assert_eq!(
        attr_of(&spans[0], ATTR_OUTCOME),
        Some(&Value::from("cancelled"))
    );
    assert_eq!(attr_of(&spans[0], ATTR_ERROR_TYPE), None);
    assert!(spans[0].events.events.is_empty());
}

/// Stage durations and queue waits are read from tokio's clock, so under paused time a
/// stage that sleeps 2 s records exactly 2 s, traced or not, and an item that waits
/// 2 s in the queue behind the previous one has a span that says so.
#[tokio::test(start_paused = true)]
async fn stage_timings_are_read_from_tokios_clock() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("paused")
        .stage("sleep", 1, 4, |n: u64| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, Infallible>(n)
        })
        .time_every(1)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let stage = [attr(ATTR_NAME, "paused"), attr(ATTR_STAGE, "sleep")];
    let duration = |tt: &TestTelemetry| {
        tt.metrics()
            .histogram("otelconc.pipeline.stage.duration", &stage)
            .unwrap()
    };

    // Traced: both items enter at once; the one worker takes item 0 at once and item 1
    // when it is done with item 0, 2 s later.
    let root = tt.root("submitter");
    let out = async { pipeline.run(stream::iter(0..2_u64)).count().await }
        .with_context(root)
        .await;
    assert_eq!(out, 2);
    assert_eq!(duration(&tt), (2, 4.0), "two traced items, 2 s each");
    let spans = tt.spans_named("otelconc.pipeline.stage");
    for (seq, wait) in [(0, 0.0), (1, 2.0)] {
        let span = item_spans(&spans, seq);
        assert_eq!(span.len(), 1, "item {seq}");
        assert_eq!(
            attr_of(&span[0], ATTR_QUEUE_WAIT),
            Some(&Value::F64(wait)),
            "item {seq}'s queue wait"
        );
    }

    // Untraced (one item in `time_every`, here every item): timed the same way.
    assert_eq!(pipeline.run(stream::iter(0..1_u64)).count().await, 1);
    assert_eq!(duration(&tt), (3, 6.0), "one more item, 2 s");
}

/// Traced items are not added to the duration sample beyond its stride: the histogram's
/// count stays a fixed fraction of the items (their spans have their times).
#[tokio::test]
async fn traced_items_are_not_added_to_the_duration_sample() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("traced-sample")
        .stage("only", 1, 4, |n: u64| async move { Ok::<_, Infallible>(n) })
        .time_every(10)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    let out = async { pipeline.run(stream::iter(0..20_u64)).count().await }
        .with_context(root)
        .await;
    assert_eq!(out, 20);
    assert_eq!(tt.spans_named("otelconc.pipeline.stage").len(), 20);
    let (count, _) = tt
        .metrics()
        .histogram(
            "otelconc.pipeline.stage.duration",
            &[attr(ATTR_STAGE, "only")],
        )
        .unwrap();
    assert_eq!(count, 2, "items 10 and 20 of the worker, traced or not");
}

/// The stage's `worker.count` as (busy, idle).
fn workers_by_state(tt: &TestTelemetry, stage: &[KeyValue]) -> (Option<f64>, Option<f64>) {
    let state = |s| {
        let mut a = stage.to_vec();
        a.push(attr(ATTR_WORKER_STATE, s));
        tt.metrics()
            .value("otelconc.pipeline.stage.worker.count", &a)
    };
    (state("busy"), state("idle"))
}

/// A stage's busy time runs while a worker works and stops when it parks on a full
/// output buffer; the buffer reports its size, its capacity and its oldest item's age,
/// and the stage its workers by state.
#[tokio::test(start_paused = true)]
async fn a_blocked_stage_shows_busy_time_saturation_and_backlog_age() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("blocked")
        .stage("work", 1, 2, |n: u64| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(n)
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    // Nobody reads the output: the worker fills the buffer with items 0 and 1 (at 1 s
    // and 2 s), finishes item 2 at 3 s and parks on the full buffer.
    let out = pipeline.run(stream::iter(0..5_u64));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stage = [attr(ATTR_NAME, "blocked"), attr(ATTR_STAGE, "work")];
    let value = |metric: &str| tt.metrics().value(metric, &stage);
    assert_eq!(value("otelconc.pipeline.stage.buffer.size"), Some(2.0));
    assert_eq!(value("otelconc.pipeline.stage.buffer.capacity"), Some(2.0));
    assert_eq!(value("otelconc.pipeline.stage.busy.time"), Some(3.0));
    assert_eq!(value("otelconc.pipeline.stage.worker.limit"), Some(1.0));
    assert_eq!(workers_by_state(&tt, &stage), (Some(0.0), Some(1.0)));
    // The collection at 3.5 s was the first after items 0 and 1 went in.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        value("otelconc.pipeline.stage.buffer.oldest.age"),
        Some(2.0)
    );
    assert_eq!(value("otelconc.pipeline.stage.busy.time"), Some(3.0));
    tt.assert_all_cataloged();
    assert_eq!(out.count().await, 5);
    // Items 3 and 4 took 1 s each once the buffer had room; the run's worker is gone.
    assert_eq!(value("otelconc.pipeline.stage.busy.time"), Some(5.0));
    assert_eq!(value("otelconc.pipeline.stage.worker.limit"), Some(0.0));
}

/// A worker that parks on a full output buffer is idle whatever it puts there: a skipped
/// item's marker (ordered mode) stops its busy time as an item does.
#[tokio::test(start_paused = true)]
async fn a_stage_blocked_on_a_skip_marker_is_idle() {
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("blocked-skips")
        .stage("work", 1, 2, |_: u64| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<u64, _>("bad".to_owned())
        })
        .ordered(true)
        .on_error(ErrorPolicy::Skip)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    // Nobody reads the output: the worker fills the buffer with the markers of items 0
    // and 1 (at 1 s and 2 s), fails item 2 at 3 s and parks on the full buffer.
    let out = pipeline.run(stream::iter(0..5_u64));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stage = [attr(ATTR_NAME, "blocked-skips"), attr(ATTR_STAGE, "work")];
    let value = |metric: &str| tt.metrics().value(metric, &stage);
    assert_eq!(value("otelconc.pipeline.stage.buffer.size"), Some(2.0));
    assert_eq!(value("otelconc.pipeline.stage.busy.time"), Some(3.0));
    assert_eq!(workers_by_state(&tt, &stage), (Some(0.0), Some(1.0)));
    assert_eq!(out.count().await, 0);
    // Items 3 and 4 took 1 s each once the buffer had room.
    assert_eq!(value("otelconc.pipeline.stage.busy.time"), Some(5.0));
}
