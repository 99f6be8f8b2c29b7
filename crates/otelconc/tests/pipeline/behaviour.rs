//! What a run delivers: every item once, in order when asked, failed items by the error
//! policy, panics as errors, bounded buffers, several senders, and runs again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use otelconc::pipeline::{Chain, ErrorPolicy, Pipeline, PipelineError};
use otelconc::telemetry::names::pipeline::ATTR_STAGE;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};

use crate::{Live, counted_input};

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
                    "otelconc.pipeline.stage.buffer.size",
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

/// Ordered output admits at most `input_buffer + Σ (concurrency + buffer)` items, so a
/// stuck first item cannot make the reorder buffer grow: the input is polled that many
/// times plus the one item the feeder holds while it waits for room.
#[tokio::test(start_paused = true)]
async fn an_ordered_run_with_a_stuck_first_item_pulls_no_more_than_its_bound() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder("window")
        .stage("a", 2, 2, |n: u64| async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(n)
        })
        .input_buffer(1)
        .ordered(true)
        .build()
        .unwrap();
    let mut out = pipeline.run(counted_input(
        pulled.clone(),
        Arc::new(AtomicBool::new(false)),
    ));
    // Polling the stream drains the output buffer into the reorder buffer: the items
    // behind the stuck one finish and wait there.
    for _ in 0..3 {
        assert!(
            tokio::time::timeout(Duration::from_secs(1), out.next())
                .await
                .is_err()
        );
    }
    assert_eq!(pulled.load(Ordering::SeqCst), 1 + (2 + 2) + 1);
}

/// For ordered output a cancelled `send` takes no sequence number: the items sent
/// after it come out without the output waiting for the lost one.
#[tokio::test(start_paused = true)]
async fn an_ordered_send_cancelled_while_waiting_leaves_no_gap() {
    let pipeline = Pipeline::builder("gap")
        .stage("a", 1, 1, |n: u64| async move { Ok::<_, Infallible>(n) })
        .input_buffer(1)
        .ordered(true)
        .build()
        .unwrap();
    let (tx, mut out) = pipeline.start();
    for i in 0..3 {
        tx.send(i).await.unwrap(); // input 1 + stage (1 + 1): the run is full
    }
    tokio::select! {
        _ = tx.send(99) => panic!("the run is full"),
        () = tokio::time::sleep(Duration::from_millis(1)) => {}
    }
    let sender = tokio::spawn(async move { tx.send(3).await.unwrap() });
    let mut got = Vec::new();
    for _ in 0..4 {
        let next = tokio::time::timeout(Duration::from_secs(5), out.next()).await;
        got.push(next.expect("no gap to wait for").unwrap().unwrap());
    }
    sender.await.unwrap();
    assert_eq!(got, [0, 1, 2, 3]);
    assert!(out.next().await.is_none());
}
