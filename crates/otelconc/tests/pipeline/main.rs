//! `otelconc::pipeline`: delivery, ordering, error policies, panics, backpressure,
//! shutdown, and the telemetry an in-memory exporter receives.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Span as _, SpanId, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{KeyValue, Value};
use otelconc::pipeline::{Chain, ErrorPolicy, Parallel, Pipeline, PipelineError};
use otelconc::telemetry::Telemetry;
use otelconc::telemetry::names::pipeline::ATTR_STAGE;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT};
use otelconc_testkit::{Alive, SpanData, TestTelemetry, attr};
use tokio_util::sync::CancellationToken;

/// The span attribute of an item's sequence number in its run.
const ATTR_SEQ: &str = "otelconc.pipeline.seq";

/// Counts live stage futures: +1 when one starts, -1 when it ends or is dropped.
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

struct LiveGuard(Arc<AtomicUsize>);

impl Live {
    fn enter(&self) -> LiveGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream of `0..` that counts what it yielded and flags when it is dropped.
fn counted_input(
    pulled: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
) -> impl Stream<Item = u64> + Send + 'static {
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    stream::unfold((0_u64, OnDrop(dropped)), move |(i, g)| {
        let pulled = pulled.clone();
        async move {
            pulled.fetch_add(1, Ordering::SeqCst);
            Some((i, (i + 1, g)))
        }
    })
}

fn attr_of<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_run_delivers_every_item_exactly_once_across_type_changes() {
    let pipeline = Pipeline::builder("types")
        .stage("format", 3, 8, |n: u64| async move {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(n.to_string())
        })
        .stage("parse", 2, 8, |s: String| async move {
            Ok(s.parse::<u64>().expect("formatted"))
        })
        .stage("double", 4, 1, |n: u64| async move { Ok(n * 2) })
        .build()
        .unwrap();
    let mut got: Vec<u64> = pipeline
        .run(stream::iter(0..2_000_u64))
        .map(|r| r.unwrap())
        .collect()
        .await;
    got.sort_unstable();
    assert_eq!(got, (0..2_000).map(|n| n * 2).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn ordered_output_keeps_input_order_when_later_items_finish_first() {
    let pipeline = Pipeline::builder("ordered")
        .stage("uneven", 4, 2, |n: u64| async move {
            // Early items are the slow ones, so they finish after later items.
            tokio::time::sleep(Duration::from_millis((20 - n % 20) * 3)).await;
            Ok::<_, Infallible>(n)
        })
        .stage("jitter", 3, 2, |n: u64| async move {
            tokio::time::sleep(Duration::from_millis(n % 7)).await;
            Ok(n)
        })
        .ordered(true)
        .build()
        .unwrap();
    let got: Vec<u64> = pipeline
        .run(stream::iter(0..200_u64))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn unordered_output_does_not_wait_for_slow_items() {
    let pipeline = Pipeline::builder("unordered")
        .stage("uneven", 4, 4, |n: u64| async move {
            tokio::time::sleep(Duration::from_millis(if n == 0 { 100 } else { 1 })).await;
            Ok::<_, Infallible>(n)
        })
        .build()
        .unwrap();
    let got: Vec<u64> = pipeline
        .run(stream::iter(0..4_u64))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(
        got.last(),
        Some(&0),
        "the slow item comes out last: {got:?}"
    );
}

#[test]
fn zero_concurrency_buffer_or_interval_is_rejected_with_a_clear_error() {
    let f = |x: u64| async move { Ok::<_, Infallible>(x) };
    let err = Pipeline::builder("p")
        .stage("a", 1, 1, f)
        .stage("b", 0, 1, f)
        .build()
        .unwrap_err();
    assert_eq!(err.stage(), Some("b"));
    assert_eq!(
        err.to_string(),
        "pipeline \"p\", stage \"b\": concurrency must be at least 1"
    );
    let err = Pipeline::builder("p")
        .stage("a", 2, 0, f)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline \"p\", stage \"a\": buffer must be at least 1"
    );
    let err = Pipeline::builder("p")
        .stage("a", 1, 1, f)
        .input_buffer(0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline \"p\": input buffer must be at least 1"
    );
    let err = Pipeline::builder("p")
        .stage("a", 1, 1, f)
        .time_every(0)
        .build()
        .unwrap_err();
    assert_eq!(err.reason(), "time_every must be at least 1");
    let err = Pipeline::<u64, u64, Infallible>::builder("p")
        .build()
        .unwrap_err();
    assert_eq!(err.reason(), "a pipeline needs at least one stage");
    let err = Chain::<u64, Infallible>::builder("c").build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline \"c\": a chain needs at least one stage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_yields_the_error_and_stops_every_task() {
    for ordered in [false, true] {
        fail_fast(ordered).await;
    }
}

async fn fail_fast(ordered: bool) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let live = Live::default();
    let l = live.clone();
    let pipeline = Pipeline::builder("ff")
        .stage("check", 2, 4, move |n: u64| {
            let l = l.clone();
            async move {
                let _g = l.enter();
                if n == 50 {
                    return Err(format!("bad item {n}"));
                }
                tokio::task::yield_now().await;
                Ok(n)
            }
        })
        .stage("pass", 2, 4, |n: u64| async move { Ok(n) })
        .ordered(ordered)
        .build()
        .unwrap();
    let mut out = pipeline.run(counted_input(pulled.clone(), dropped.clone()));
    let tasks = out.tasks();
    let mut oks = 0;
    let err = loop {
        match out.next().await.expect("the run ends with the error") {
            Ok(_) => oks += 1,
            Err(e) => break e,
        }
    };
    assert!(out.next().await.is_none(), "nothing after the error");
    assert!(oks <= 50, "only items before the failure could pass: {oks}");
    assert_eq!(err.stage(), Some("check"));
    assert!(matches!(&err, PipelineError::Stage { error, .. } if error == "bad item 50"));
    assert_eq!(err.to_string(), "stage \"check\" failed: bad item 50");
    tasks.wait().await;
    assert!(tasks.is_empty());
    assert_eq!(live.count(), 0, "no stage future left");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the input stream was dropped"
    );
    // The input is infinite: the run stopped pulling it.
    let n = pulled.load(Ordering::SeqCst);
    tokio::task::yield_now().await;
    assert_eq!(pulled.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn skip_policy_drops_failed_items_counts_them_and_keeps_order() {
    let tt = TestTelemetry::new();
    for ordered in [false, true] {
        let pipeline = Pipeline::builder(if ordered { "skip-ordered" } else { "skip" })
            .stage("odd-fails", 3, 2, |n: u64| async move {
                if n % 2 == 1 { Err("odd") } else { Ok(n) }
            })
            .stage("third-fails", 2, 2, |n: u64| async move {
                if n.is_multiple_of(3) && n > 0 {
                    Err("third")
                } else {
                    Ok(n)
                }
            })
            .on_error(ErrorPolicy::Skip)
            .ordered(ordered)
            .telemetry(tt.telemetry())
            .build()
            .unwrap();
        let mut out = pipeline.run(stream::iter(0..60_u64));
        let mut got = Vec::new();
        while let Some(r) = out.next().await {
            got.push(r.unwrap());
        }
        let want: Vec<u64> = (0..60)
            .filter(|n: &u64| n.is_multiple_of(2) && !(n.is_multiple_of(3) && *n > 0))
            .collect();
        if !ordered {
            got.sort_unstable();
        }
        assert_eq!(got, want, "ordered = {ordered}");
        // 30 odd items fail at stage 1; of the 30 even ones, 9 (6, 12, ... 54) at stage 2.
        assert_eq!(out.skipped(), 39);
        out.stop().await;
        let m = tt.metrics();
        let name = attr(ATTR_NAME, pipeline.name().to_owned());
        let v = |stage: &'static str, outcome: &'static str| {
            m.value(
                "otelconc.pipeline.stage.processed",
                &[
                    name.clone(),
                    attr(ATTR_STAGE, stage),
                    attr(ATTR_OUTCOME, outcome),
                ],
            )
        };
        assert_eq!(v("odd-fails", "error"), Some(30.0));
        assert_eq!(v("odd-fails", "ok"), Some(30.0));
        assert_eq!(v("third-fails", "error"), Some(9.0));
        assert_eq!(v("third-fails", "ok"), Some(21.0));
    }
}

#[tokio::test]
async fn a_panicking_stage_fails_its_item_with_the_panic_message() {
    // Fail fast: the run fails with the panic.
    let pipeline = Pipeline::builder("panics")
        .stage("explode", 2, 2, |n: u64| async move {
            if n == 3 {
                panic!("boom at {n}");
            }
            Ok::<_, Infallible>(n)
        })
        .build()
        .unwrap();
    let mut out = pipeline.run(stream::iter(0..10_u64));
    let tasks = out.tasks();
    let err = loop {
        match out.next().await.expect("ends with the panic") {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, PipelineError::Panic { stage, message } if &**stage == "explode" && message == "boom at 3"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "stage \"explode\" panicked: boom at 3");
    drop(out);
    tasks.wait().await;

    // Skip: only that item is lost, and the panic is counted.
    let tt = TestTelemetry::new();
    let pipeline = Pipeline::builder("panics-skip")
        .stage("explode", 2, 2, |n: u64| async move {
            assert!(n != 3, "boom at {n}");
            Ok::<_, Infallible>(n)
        })
        .on_error(ErrorPolicy::Skip)
        .ordered(true)
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let got: Vec<u64> = pipeline
        .run(stream::iter(0..10_u64))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(got, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    let m = tt.metrics();
    assert_eq!(
        m.value(
            "otelconc.pipeline.stage.processed",
            &[attr(ATTR_STAGE, "explode"), attr(ATTR_OUTCOME, "panic")]
        ),
        Some(1.0)
    );
}

#[tokio::test(start_paused = true)]
async fn with_a_slow_sink_every_buffer_stays_within_its_capacity() {
    let tt = TestTelemetry::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let pipeline = Pipeline::builder("slow-sink")
        .stage("a", 2, 3, |n: u64| async move { Ok::<_, Infallible>(n) })
        .stage("b", 1, 2, |n: u64| async move { Ok(n) })
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    // Input queue 3 (the first stage's buffer); stage a: 2 workers + 3; stage b: 1 + 2;
    // plus the one item the feeder holds while it waits to send.
    let bound = 3 + (2 + 3) + (1 + 2) + 1;
    let mut out = pipeline.run(counted_input(pulled.clone(), dropped));
    let mut max_in_flight = 0;
    let mut max_depth = HashMap::new();
    for consumed in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await; // the slow sink
        let in_flight = pulled.load(Ordering::SeqCst) - consumed;
        assert!(
            in_flight <= bound,
            "{in_flight} items in flight, bound {bound}"
        );
        max_in_flight = max_in_flight.max(in_flight);
        let m = tt.metrics();
        for (stage, cap) in [("a", 3.0), ("b", 2.0)] {
            let depth = m
                .value(
                    "otelconc.pipeline.stage.buffer.depth",
                    &[attr(ATTR_STAGE, stage)],
                )
                .expect("depth is reported");
            assert!(depth <= cap, "stage {stage} buffer holds {depth} > {cap}");
            let e = max_depth.entry(stage).or_insert(0.0_f64);
            *e = e.max(depth);
        }
        out.next().await.unwrap().unwrap();
    }
    // The pipeline really was full (so the assertions above were tested at the limit).
    assert_eq!(max_in_flight, bound);
    assert_eq!(max_depth["a"], 3.0);
    assert_eq!(max_depth["b"], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_output_mid_stream_leaves_no_task_or_stage_future_alive() {
    let live = Live::default();
    let pulled = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let l = live.clone();
    let pipeline = Pipeline::builder("drop")
        .stage("maybe-stuck", 3, 4, move |n: u64| {
            let l = l.clone();
            async move {
                let _g = l.enter();
                if n >= 5 && n % 2 == 1 {
                    std::future::pending::<()>().await; // never finishes on its own
                }
                Ok::<_, Infallible>(n)
            }
        })
        .stage("pass", 2, 4, |n: u64| async move { Ok(n) })
        .build()
        .unwrap();
    let mut out = pipeline.run(counted_input(pulled, dropped.clone()));
    let tasks = out.tasks();
    assert_eq!(tasks.len(), 3 + 2 + 2, "workers, feeder and watcher");
    for _ in 0..3 {
        out.next().await.unwrap().unwrap();
    }
    // Every worker of the first stage ends up stuck on an odd item.
    tokio::time::timeout(Duration::from_secs(30), async {
        while live.count() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("three stage futures are running");
    drop(out);
    tasks.wait().await;
    assert!(tasks.is_empty());
    assert_eq!(live.count(), 0, "every stage future was dropped");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the input stream was dropped"
    );
}

/// A pipeline whose buffers are all full when a run ends. Under paused time, stage `b`
/// holds item 4 for a second while items 0-3 wait in its output buffer (the test does
/// not read it) and stage `a` fills its own; then `b` fails item 4 when `fail` is set,
/// else passes it on and waits on the full output.
fn held_items(
    telemetry: Telemetry,
    ordered: bool,
    fail: Arc<AtomicBool>,
) -> Pipeline<(u64, Alive), (u64, Alive), String> {
    Pipeline::builder("held")
        .stage("a", 1, 4, |item: (u64, Alive)| async move { Ok(item) })
        .stage("b", 1, 4, move |item: (u64, Alive)| {
            let fail = fail.load(Ordering::SeqCst);
            async move {
                if item.0 == 4 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if fail {
                        return Err(format!("bad item {}", item.0));
                    }
                }
                Ok(item)
            }
        })
        .ordered(ordered)
        .telemetry(telemetry)
        .build()
        .unwrap()
}

/// Telemetry that no SDK reads.
fn no_sdk() -> Telemetry {
    use opentelemetry::metrics::noop::NoopMeterProvider;
    use opentelemetry::trace::noop::NoopTracerProvider;
    Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new())
}

const DEPTH: &str = "otelconc.pipeline.stage.buffer.depth";

/// Runs `pipeline` (from [`held_items`]) until its buffers are full, checks what the
/// depth gauge reports then (when `tt` is given), ends the run with a fail-fast error
/// (the output stream kept) or by dropping the output, and returns how many items are
/// still alive once the run's tasks have stopped (and, after an error, the stream has
/// yielded it).
async fn end_a_held_run(
    pipeline: &Pipeline<(u64, Alive), (u64, Alive), String>,
    fail: bool,
    tt: Option<&TestTelemetry>,
) -> usize {
    let alive = Arc::new(AtomicUsize::new(0));
    let a = alive.clone();
    let mut out = pipeline.run(stream::iter(0_u64..).map(move |n| (n, Alive::new(&a))));
    let tasks = out.tasks();
    // Every task waits: 0-3 in b's buffer, 4 held by b, 5-8 in a's buffer, 9 held by
    // a, 10-13 in the input queue and 14 held by the feeder.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alive.load(Ordering::SeqCst), 15, "the run is full");
    if let Some(tt) = tt {
        let m = tt.metrics();
        for stage in ["a", "b"] {
            let depth = m.value(DEPTH, &[attr(ATTR_STAGE, stage)]);
            assert_eq!(depth, Some(4.0), "stage {stage}'s buffer of the live run");
        }
    }
    // `b` lets item 4 go.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if fail {
        // The run failed: its tasks stop before the stream is read, and what they
        // left in the stage buffers goes with them, save the output buffer, which the
        // stream still holds.
        tasks.wait().await;
        assert_eq!(
            alive.load(Ordering::SeqCst),
            4,
            "only 0-3, in the output buffer"
        );
        let err = out.next().await.expect("the error").expect_err("fail-fast");
        assert_eq!(err.to_string(), "stage \"b\" failed: bad item 4");
        // The stream ended with its error and yields nothing more: 0-3 are gone.
        let left = alive.load(Ordering::SeqCst);
        assert!(out.next().await.is_none());
        drop(out);
        left
    } else {
        drop(out);
        tasks.wait().await;
        alive.load(Ordering::SeqCst)
    }
}

/// The depth gauge after every run of the `held` pipeline ended: one series per stage,
/// reading 0.
fn assert_no_depth_left(tt: &TestTelemetry) {
    let m = tt.metrics();
    assert_eq!(m.attribute_sets(DEPTH).len(), 2, "one series per stage");
    for stage in ["a", "b"] {
        let attrs = [attr(ATTR_NAME, "held"), attr(ATTR_STAGE, stage)];
        assert_eq!(m.value(DEPTH, &attrs), Some(0.0), "stage {stage}");
    }
}

/// Items left in a run's stage buffers are dropped once the run is over and its tasks
/// have stopped, while the `Pipeline` value lives on: after a fail-fast error (with
/// the output stream still held) and after the output is dropped, in both output
/// modes, with an SDK reading the buffer depth and without one.
#[tokio::test(start_paused = true)]
async fn a_finished_runs_buffered_items_are_dropped_while_its_pipeline_lives() {
    for sdk in [false, true] {
        for ordered in [false, true] {
            for fail in [true, false] {
                let tt = TestTelemetry::new();
                let telemetry = if sdk { tt.telemetry() } else { no_sdk() };
                let pipeline = held_items(telemetry, ordered, Arc::new(AtomicBool::new(fail)));
                let left = end_a_held_run(&pipeline, fail, sdk.then_some(&tt)).await;
                assert_eq!(
                    left, 0,
                    "items alive after the run (sdk {sdk}, ordered {ordered}, fail {fail})"
                );
                if sdk {
                    assert_no_depth_left(&tt);
                }
                drop(pipeline);
            }
        }
    }
}

/// Running one `Pipeline` many times leaves nothing behind per run: each run's items
/// are dropped when it ends, a live run's buffers are reported alone (no finished run
/// adds to them), and once no run is live the gauge reads 0, one series per stage.
#[tokio::test(start_paused = true)]
async fn many_runs_of_one_pipeline_leave_nothing_behind() {
    for sdk in [false, true] {
        for ordered in [false, true] {
            let tt = TestTelemetry::new();
            let telemetry = if sdk { tt.telemetry() } else { no_sdk() };
            let fail = Arc::new(AtomicBool::new(false));
            let pipeline = held_items(telemetry, ordered, fail.clone());
            for i in 0..200 {
                let fails = i % 2 == 0;
                fail.store(fails, Ordering::SeqCst);
                // The live run's depth is checked now and then, and every metric
                // collection in between is skipped, so nothing prunes for the run.
                let tt = (sdk && i % 50 == 49).then_some(&tt);
                let left = end_a_held_run(&pipeline, fails, tt).await;
                assert_eq!(left, 0, "run {i} (sdk {sdk}, ordered {ordered})");
            }
            if sdk {
                assert_no_depth_left(&tt);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_stops_the_run_and_refuses_input() {
    let token = CancellationToken::new();
    let live = Live::default();
    let l = live.clone();
    let pipeline = Pipeline::builder("cancel")
        .stage("stuck", 2, 2, move |n: u64| {
            let l = l.clone();
            async move {
                let _g = l.enter();
                if n > 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(n)
            }
        })
        .cancellation_token(token.clone())
        .build()
        .unwrap();
    let (tx, mut out) = pipeline.start();
    let tasks = out.tasks();
    for i in 0..4 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(out.next().await.unwrap().unwrap(), 0);
    token.cancel();
    assert!(matches!(
        out.next().await,
        Some(Err(PipelineError::Cancelled))
    ));
    assert!(out.next().await.is_none());
    tasks.wait().await;
    assert_eq!(live.count(), 0);
    assert!(tx.is_closed());
    assert_eq!(tx.send(9).await.unwrap_err().into_inner(), 9);
}

#[tokio::test]
async fn start_takes_input_from_several_senders_in_order_per_sender() {
    let pipeline = Pipeline::builder("senders")
        .stage("inc", 3, 2, |n: u64| async move {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(n + 1)
        })
        .ordered(true)
        .build()
        .unwrap();
    let (tx, out) = pipeline.start();
    let tx2 = tx.clone();
    let a = tokio::spawn(async move {
        for i in 0..100 {
            tx.send(i).await.unwrap();
        }
    });
    let b = tokio::spawn(async move {
        for i in 1_000..1_100 {
            tx2.send(i).await.unwrap();
        }
    });
    let got: Vec<u64> = out.map(|r| r.unwrap()).collect().await;
    a.await.unwrap();
    b.await.unwrap();
    let low: Vec<u64> = got.iter().copied().filter(|n| *n < 1_000).collect();
    let high: Vec<u64> = got.iter().copied().filter(|n| *n > 1_000).collect();
    assert_eq!(low, (1..=100).collect::<Vec<_>>());
    assert_eq!(high, (1_001..=1_100).collect::<Vec<_>>());
}

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
            m.value("otelconc.pipeline.stage.buffer.depth", &attrs),
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
async fn one_items_stage_spans_form_a_parent_chain_in_one_trace() {
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
async fn a_failed_items_stage_span_has_error_status_and_an_exception_event() {
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
    for (seq, kind, msg) in [(1, "error", "one is bad"), (2, "panic", "two panics")] {
        let chain = item_spans(&spans, seq);
        assert_eq!(chain.len(), 1, "a failed item goes no further");
        let s = &chain[0];
        assert_eq!(s.status, Status::error(msg));
        let ev = s.events.iter().find(|e| e.name == "exception").unwrap();
        assert!(
            ev.attributes
                .contains(&KeyValue::new("exception.type", kind))
        );
        assert!(
            ev.attributes
                .contains(&KeyValue::new("exception.message", msg))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_item_ends_its_span_with_an_error_status() {
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
    assert!(matches!(&spans[0].status, Status::Error { .. }));
}

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

#[tokio::test]
async fn chain_stage_spans_form_a_parent_chain_under_the_caller() {
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
    assert_eq!(
        spans[0].parent_span_id,
        root.span().span_context().span_id()
    );
    assert_eq!(spans[1].parent_span_id, spans[0].span_context.span_id());
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

#[tokio::test]
async fn a_pipeline_runs_again_and_runs_at_once() {
    let pipeline = Pipeline::builder("again")
        .stage(
            "inc",
            2,
            2,
            |n: u64| async move { Ok::<_, Infallible>(n + 1) },
        )
        .ordered(true)
        .build()
        .unwrap();
    let a = pipeline.run(stream::iter(0..50_u64)).map(|r| r.unwrap());
    let b = pipeline.run(stream::iter(100..150_u64)).map(|r| r.unwrap());
    let (a, b): (Vec<u64>, Vec<u64>) = futures::join!(a.collect(), b.collect());
    assert_eq!(a, (1..=50).collect::<Vec<_>>());
    assert_eq!(b, (101..=150).collect::<Vec<_>>());
}

#[test]
fn pipelines_and_their_ends_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pipeline<String, u64, std::io::Error>>();
    send::<otelconc::pipeline::PipelineStream<u64, std::io::Error>>();
    send_sync::<otelconc::pipeline::PipelineSender<String>>();
    send_sync::<Chain<String, std::io::Error>>();
}

#[tokio::test]
async fn a_panicking_input_stream_fails_the_run_instead_of_ending_it() {
    let pipeline = Pipeline::builder("bad-input")
        .stage("id", 2, 2, |n: u64| async move { Ok::<_, Infallible>(n) })
        .build()
        .unwrap();
    let input = stream::iter(0..10_u64).map(|n| {
        assert!(n != 5, "input broke at {n}");
        n
    });
    let mut out = pipeline.run(input);
    let tasks = out.tasks();
    let mut oks = 0;
    let err = loop {
        match out.next().await.expect("the run reports the panic") {
            Ok(_) => oks += 1,
            Err(e) => break e,
        }
    };
    assert!(oks <= 5);
    assert!(
        matches!(&err, PipelineError::Panic { stage, message } if &**stage == otelconc::pipeline::INPUT_STAGE && message == "input broke at 5"),
        "{err:?}"
    );
    assert!(futures::stream::FusedStream::is_terminated(&out));
    assert!(out.next().await.is_none());
    drop(out);
    tasks.wait().await;
}
