//! How a run stops (its output dropped, its token cancelled, a fail-fast error) and
//! that it leaves nothing behind: no task, no stage future, no buffered item.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use otelconc::pipeline::{Pipeline, PipelineError};
use otelconc::telemetry::Telemetry;
use otelconc::telemetry::names::ATTR_NAME;
use otelconc::telemetry::names::pipeline::ATTR_STAGE;
use otelconc_testkit::{Alive, TestTelemetry, attr};
use tokio_util::sync::CancellationToken;

use crate::{Live, counted_input};

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

const DEPTH: &str = "otelconc.pipeline.stage.buffer.size";

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

/// A run started after the pipeline's token was cancelled stops at once: its output
/// ends with `Cancelled` and its sender refuses input.
#[tokio::test(start_paused = true)]
async fn a_run_started_after_the_token_fired_ends_cancelled() {
    let token = CancellationToken::new();
    token.cancel();
    let pipeline = Pipeline::builder("late")
        .stage("a", 1, 1, |n: u64| async move { Ok::<_, Infallible>(n) })
        .cancellation_token(token)
        .build()
        .unwrap();
    let mut out = pipeline.run(stream::iter(0..3u64));
    assert!(matches!(
        out.next().await,
        Some(Err(PipelineError::Cancelled))
    ));
    assert!(out.next().await.is_none());
    let (tx, mut out) = pipeline.start();
    assert!(matches!(
        out.next().await,
        Some(Err(PipelineError::Cancelled))
    ));
    assert_eq!(tx.send(1).await.unwrap_err().into_inner(), 1);
}

/// After a fail-fast error the run has stopped: its sender refuses input.
#[tokio::test(start_paused = true)]
async fn after_a_fail_fast_error_the_sender_refuses_input() {
    let pipeline = Pipeline::builder("ff-sender")
        .stage("a", 1, 1, |n: u64| async move {
            if n == 1 { Err("bad") } else { Ok(n) }
        })
        .build()
        .unwrap();
    let (tx, mut out) = pipeline.start();
    let tasks = out.tasks();
    tx.send(0).await.unwrap();
    tx.send(1).await.unwrap();
    assert_eq!(out.next().await.unwrap().unwrap(), 0);
    assert!(matches!(
        out.next().await,
        Some(Err(PipelineError::Stage { .. }))
    ));
    assert!(out.next().await.is_none());
    tasks.wait().await;
    assert!(tx.is_closed());
    assert_eq!(tx.send(7).await.unwrap_err().into_inner(), 7);
}

/// A run over a finite stream ends all its tasks once the stream is read to its end.
#[tokio::test(start_paused = true)]
async fn a_run_read_to_its_end_leaves_no_task() {
    let pipeline = Pipeline::builder("finite")
        .stage("a", 2, 2, |n: u64| async move { Ok::<_, Infallible>(n) })
        .build()
        .unwrap();
    let mut out = pipeline.run(stream::iter(0..5u64));
    let tasks = out.tasks();
    assert!(tasks.is_closed());
    let mut n = 0;
    while let Some(r) = out.next().await {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, 5);
    tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .expect("every task of the run ended");
}

/// `stop` stops the run at its first poll: dropped right after it, the run's tasks
/// still end and its sender refuses input.
#[tokio::test(start_paused = true)]
async fn a_stop_dropped_after_its_first_poll_still_stops_the_run() {
    let pipeline = Pipeline::builder("stopped")
        .stage("stuck", 2, 2, |n: u64| async move {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(n)
        })
        .build()
        .unwrap();
    let (tx, out) = pipeline.start();
    tx.send(1).await.unwrap();
    let tasks = out.tasks();
    {
        let mut stop = std::pin::pin!(out.stop());
        let _ = futures::poll!(stop.as_mut());
    }
    tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .expect("every task of the run ended");
    assert!(tx.is_closed());
    assert_eq!(tx.send(2).await.unwrap_err().into_inner(), 2);
}
