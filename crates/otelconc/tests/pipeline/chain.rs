//! [`Chain`] and [`Parallel`]: stages in order on one value, and several chains at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider};
use otelconc::pipeline::{Chain, Parallel, PipelineError};
use otelconc::telemetry::names::pipeline::ATTR_STAGE;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};

use crate::attr_of;

#[tokio::test]
async fn chain_runs_stages_in_order_and_stops_at_the_first_failure() {
    let tt = TestTelemetry::new();
    let ran_last = Arc::new(AtomicUsize::new(0));
    let r = ran_last.clone();
    let chain = Chain::builder("checkout")
        .stage("validate", |n: i64| async move {
            if n < 0 {
                Err(format!("negative {n}"))
            } else {
                Ok(n)
            }
        })
        .stage("price", |n: i64| async move {
            assert!(n != 13, "unlucky");
            Ok(n * 100)
        })
        .stage("tax", move |n: i64| {
            r.fetch_add(1, Ordering::SeqCst);
            async move { Ok(n + n / 10) }
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    assert_eq!(chain.execute(2).await.unwrap(), 220);
    let e = chain.execute(-1).await.unwrap_err();
    assert_eq!(e.to_string(), "stage \"validate\" failed: negative -1");
    let e = chain.execute(13).await.unwrap_err();
    assert!(
        matches!(&e, PipelineError::Panic { stage, message } if &**stage == "price" && message == "unlucky")
    );
    assert_eq!(
        ran_last.load(Ordering::SeqCst),
        1,
        "later stages did not run"
    );
    let m = tt.metrics();
    let v = |stage: &'static str, outcome: &'static str| {
        m.value(
            "otelconc.pipeline.stage.processed",
            &[attr(ATTR_STAGE, stage), attr(ATTR_OUTCOME, outcome)],
        )
    };
    assert_eq!(v("validate", "ok"), Some(2.0));
    assert_eq!(v("validate", "error"), Some(1.0));
    assert_eq!(v("price", "panic"), Some(1.0));
    assert_eq!(
        m.histogram(
            "otelconc.pipeline.stage.duration",
            &[attr(ATTR_STAGE, "tax")]
        )
        .map(|h| h.0),
        Some(1)
    );
}

/// The consumer rule on the caller's task: the caller's sampled span is the ambient
/// span, so every stage span is its child, linked to the span of the stage before (the
/// first, to the caller's), and spans the stage function makes nest under its stage.
#[tokio::test]
async fn chain_stage_spans_are_children_of_the_caller_linked_to_the_stage_before() {
    let tt = TestTelemetry::new();
    let provider = tt.tracer_provider().clone();
    let chain = Chain::builder("c")
        .stage("one", |n: u32| async move { Ok::<_, Infallible>(n + 1) })
        .stage("two", move |n: u32| {
            let tracer = provider.tracer("user");
            async move {
                // Spans the stage itself makes are children of its stage span.
                tracer.start("user-work").end();
                Ok(n + 1)
            }
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("caller");
    assert_eq!(
        chain.execute(0).with_context(root.clone()).await.unwrap(),
        2
    );
    let mut spans = tt.spans_named("otelconc.pipeline.stage");
    spans.sort_by_key(|s| s.start_time);
    assert_eq!(spans.len(), 2);
    let caller = root.span().span_context().span_id();
    assert!(spans.iter().all(|s| s.parent_span_id == caller));
    let linked = |s: &otelconc_testkit::SpanData| -> Vec<_> {
        s.links
            .links
            .iter()
            .map(|l| l.span_context.span_id())
            .collect()
    };
    assert_eq!(linked(&spans[0]), [caller]);
    assert_eq!(linked(&spans[1]), [spans[0].span_context.span_id()]);
    assert_eq!(attr_of(&spans[1], ATTR_STAGE), Some(&Value::from("two")));
    let user = tt.spans_named("user-work");
    assert_eq!(user[0].parent_span_id, spans[1].span_context.span_id());
}

#[tokio::test]
async fn parallel_returns_every_chains_result_and_every_error() {
    let ok = |name: &'static str, k: u32| {
        Chain::builder(name)
            .stage("mul", move |n: u32| async move { Ok::<_, String>(n * k) })
            .build()
            .unwrap()
    };
    let failing = |name: &'static str, msg: &'static str| {
        Chain::builder(name)
            .stage("fail", move |_n: u32| async move {
                Err::<u32, _>(msg.to_owned())
            })
            .build()
            .unwrap()
    };
    let all = Parallel::new("fan")
        .chain(ok("x2", 2))
        .chain(failing("f1", "first"))
        .chain(ok("x3", 3))
        .chain(failing("f2", "second"));
    assert_eq!(all.len(), 4);
    let results = all.execute(5).await;
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap(), &10);
    assert_eq!(results[2].as_ref().unwrap(), &15);
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(Result::err)
        .filter_map(PipelineError::into_stage_error)
        .collect();
    assert_eq!(
        errors,
        ["first", "second"],
        "every error, not only the first"
    );
}

/// A chain's stage calls are timed on tokio's clock: under paused time a stage that
/// sleeps 2 s records exactly 2 s.
#[tokio::test(start_paused = true)]
async fn chain_stage_duration_is_read_from_tokios_clock() {
    let tt = TestTelemetry::new();
    let chain = Chain::builder("paused-chain")
        .stage("sleep", |n: u64| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, Infallible>(n)
        })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    assert_eq!(chain.execute(1).await.unwrap(), 1);
    let duration = tt
        .metrics()
        .histogram(
            "otelconc.pipeline.stage.duration",
            &[attr(ATTR_NAME, "paused-chain"), attr(ATTR_STAGE, "sleep")],
        )
        .unwrap();
    assert_eq!(duration, (1, 2.0));
}

/// `Parallel::execute` runs its chains at once on the calling task, and `Chain::execute`
/// runs its stages one after the other: two chains of two 1 s stages take 2 s.
#[tokio::test(start_paused = true)]
async fn parallel_chains_run_at_once_and_a_chains_stages_in_turn() {
    let slow = |name: &'static str| {
        let sleep = |n: u32| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(n + 1)
        };
        Chain::builder(name)
            .stage("one", sleep)
            .stage("two", sleep)
            .build()
            .unwrap()
    };
    let all = Parallel::new("at-once").chain(slow("a")).chain(slow("b"));
    let start = tokio::time::Instant::now();
    let results = all.execute(0).await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(
        results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [2, 2]
    );
}
