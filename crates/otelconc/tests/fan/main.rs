//! fan_out, fan_out_items and fan_in: semantics, bad input, faults, leftovers, and the
//! telemetry an exporter receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt, TryStreamExt, stream};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Status, TraceContextExt};
use otelconc::fan::{
    FanIn, FanOut, ItemError, Traced, fan_in, fan_out, fan_out_items, fan_out_items_unordered,
};
use otelconc::group::{CancelCause, TaskError};
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, fan::ATTR_INPUT};
use otelconc_testkit::{Alive, TestTelemetry, attr, settle};
use tokio::time::sleep;

#[tokio::test]
async fn zero_concurrency_or_capacity_is_rejected_with_a_clear_error() {
    let f = |x: u8| async move { Ok::<_, String>(x) };
    let err = fan_out_items([1u8], 0, f).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fan_out_items: concurrency must be at least 1 (0 would never start an item)"
    );
    assert!(fan_out_items_unordered([1u8], 0, f).is_err());
    assert!(FanOut::new("x").items([1u8], 0, f).is_err());
    let err = FanIn::<u8>::builder("x").capacity(0).build().unwrap_err();
    assert!(
        err.to_string().contains("capacity must be at least 1"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn items_come_back_in_input_order_at_bounded_concurrency() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let delays = [50u64, 10, 40, 20, 30, 5, 15, 25];
    let out: Vec<usize> = fan_out_items(delays.iter().copied().enumerate(), 3, |(i, d)| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            sleep(Duration::from_millis(d)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, String>(i)
        }
    })
    .unwrap()
    .try_collect()
    .await
    .unwrap();
    assert_eq!(out, (0..delays.len()).collect::<Vec<_>>());
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_unordered_form_yields_in_completion_order() {
    let out: Vec<u64> = fan_out_items_unordered([30u64, 10, 20], 3, |d| async move {
        sleep(Duration::from_millis(d)).await;
        Ok::<_, String>(d)
    })
    .unwrap()
    .try_collect()
    .await
    .unwrap();
    assert_eq!(out, [10, 20, 30]);
}

#[tokio::test(start_paused = true)]
async fn the_first_error_stops_the_run_and_cancels_the_items_in_flight() {
    let alive = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let out: Result<Vec<u64>, _> = fan_out_items(0..100u64, 4, |i| {
        let guard = Alive::new(&alive);
        started.fetch_add(1, Ordering::SeqCst);
        async move {
            let _guard = guard;
            if i == 2 {
                sleep(Duration::from_millis(1)).await;
                return Err(format!("item {i} is bad"));
            }
            sleep(Duration::from_secs(3600)).await;
            Ok(i)
        }
    })
    .unwrap()
    .fail_fast()
    .try_collect()
    .await;
    assert_eq!(
        out.unwrap_err(),
        ItemError::Failed {
            index: 2,
            error: "item 2 is bad".to_owned()
        }
    );
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "an item outlived the stream"
    );
    assert!(
        started.load(Ordering::SeqCst) <= 5,
        "items kept starting after the error"
    );
}

#[tokio::test(start_paused = true)]
async fn without_fail_fast_errors_keep_their_place_in_input_order() {
    let out: Vec<Result<u64, ItemError<String>>> =
        fan_out_items([30u64, 0, 10], 3, |d| async move {
            sleep(Duration::from_millis(d)).await;
            if d == 0 {
                Err("instant failure".to_owned())
            } else {
                Ok(d)
            }
        })
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        out,
        [
            Ok(30),
            Err(ItemError::Failed {
                index: 1,
                error: "instant failure".to_owned()
            }),
            Ok(10)
        ]
    );
}

#[tokio::test]
async fn a_panicking_item_fails_with_its_message() {
    let out: Vec<Result<u8, ItemError<String>>> = fan_out_items([0u8, 1, 2], 2, |i| {
        if i == 2 {
            panic!("building item {i} failed");
        }
        async move {
            if i == 1 {
                panic!("item {i} panicked");
            }
            Ok(i)
        }
    })
    .unwrap()
    .collect()
    .await;
    assert_eq!(out[0], Ok(0));
    assert_eq!(
        out[1],
        Err(ItemError::Panicked {
            index: 1,
            message: "item 1 panicked".to_owned()
        })
    );
    assert_eq!(
        out[2],
        Err(ItemError::Panicked {
            index: 2,
            message: "building item 2 failed".to_owned()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn fan_out_returns_every_result_or_every_error_and_cancels_on_error() {
    let out = fan_out(10u64, 3, |x, i, _token| async move {
        Ok::<_, String>(x * i as u64)
    })
    .await
    .unwrap();
    assert_eq!(out, [0, 10, 20]);
    assert!(
        fan_out(1u8, 0, |x, _, _| async move { Ok::<_, String>(x) })
            .await
            .unwrap()
            .is_empty()
    );

    let err = fan_out((), 4, |(), i, token| async move {
        if i == 1 {
            sleep(Duration::from_millis(5)).await;
            return Err(format!("worker {i} failed"));
        }
        if i == 3 {
            panic!("worker {i} panicked");
        }
        token.cancelled().await;
        match token.cause() {
            Some(CancelCause::TaskFailed { .. } | CancelCause::TaskPanicked { .. }) => Ok(()),
            other => Err(format!("unexpected cause {other:?}")),
        }
    })
    .await
    .unwrap_err();
    let mut errors: Vec<String> = err.iter().map(ToString::to_string).collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "task 1 failed: worker 1 failed",
            "task 3 panicked: worker 3 panicked"
        ]
    );
    assert!(matches!(err.first(), TaskError::Panicked { index: 3, .. }));
}

#[tokio::test]
async fn fan_in_merges_until_every_input_ends_keeping_each_inputs_order() {
    let out = fan_in([
        stream::iter(0..100).boxed(),
        stream::iter(100..150).boxed(),
        stream::empty().boxed(),
    ]);
    let merged: Vec<(usize, i32)> = out.map(|m| (m.input(), m.into_inner())).collect().await;
    assert_eq!(merged.len(), 150);
    for input in 0..2 {
        let values: Vec<i32> = merged
            .iter()
            .filter(|(i, _)| *i == input)
            .map(|(_, v)| *v)
            .collect();
        let mut sorted = values.clone();
        sorted.sort();
        assert_eq!(values, sorted, "input {input} was reordered");
    }
}

/// An endless input that holds a guard for as long as it lives.
fn endless(alive: &Arc<AtomicUsize>) -> impl futures::Stream<Item = u64> + Send + 'static {
    let guard = Alive::new(alive);
    stream::iter(0u64..).map(move |i| {
        let _ = &guard;
        i
    })
}

#[tokio::test]
async fn dropping_the_fan_in_output_mid_stream_leaves_no_task_alive() {
    let alive = Arc::new(AtomicUsize::new(0));
    let mut out = fan_in([endless(&alive), endless(&alive), endless(&alive)]);
    let first: Vec<u64> = (&mut out).take(10).map(|m| m.into_inner()).collect().await;
    assert_eq!(first.len(), 10);
    assert_eq!(alive.load(Ordering::SeqCst), 3);
    drop(out);
    assert_eq!(settle(&alive).await, 0, "a merge task outlived the output");

    // shutdown() returns only once they are gone.
    let mut out = fan_in([endless(&alive), endless(&alive)]);
    out.next().await.unwrap();
    out.shutdown().await;
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fan_in_memory_stays_bounded_when_the_consumer_is_slow() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let input = stream::iter(0u64..).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        i
    });
    let mut out = FanIn::builder("slow")
        .capacity(4)
        .input("endless", input)
        .build()
        .unwrap();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    // The buffer (4) plus the one item the merge task holds while it waits.
    assert_eq!(pulled.load(Ordering::SeqCst), 5);
    assert_eq!(out.next().await.map(|m| m.into_inner()), Some(0));
    out.shutdown().await;
}

#[tokio::test]
async fn a_panicking_input_reaches_the_consumer() {
    let bad = stream::iter(0..3).map(|i| {
        if i == 2 {
            panic!("input broke at {i}")
        } else {
            i
        }
    });
    let mut out = fan_in([bad]);
    let mut got = Vec::new();
    let panic = loop {
        match std::panic::AssertUnwindSafe(out.next())
            .catch_unwind()
            .await
        {
            Ok(Some(m)) => got.push(m.into_inner()),
            Ok(None) => panic!("the input's panic was swallowed"),
            Err(p) => break p,
        }
    };
    assert_eq!(got, [0, 1]);
    let message = p_message(&*panic);
    assert_eq!(message, "fan_in input 0 panicked: input broke at 2");
}

fn p_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

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
    assert_eq!(
        spans
            .iter()
            .filter(|s| matches!(s.status, Status::Error { .. }))
            .count(),
        1
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
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn items_cancelled_by_fail_fast_end_their_spans_and_are_counted() {
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
    assert!(
        spans
            .iter()
            .all(|s| matches!(s.status, Status::Error { .. }))
    );
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
