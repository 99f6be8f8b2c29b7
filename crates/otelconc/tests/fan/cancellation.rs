//! Cancel on error and drop: nothing a fan-out or fan-in started outlives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use otelconc::fan::{ItemError, fan_in, fan_out_items};
use otelconc_testkit::{Alive, settle};
use tokio::time::sleep;

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
    let _ = out.next().await.unwrap();
    out.shutdown().await;
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

/// A `fan_out` future dropped before it finished aborts the workers still running.
#[tokio::test(start_paused = true)]
async fn dropping_a_fan_out_call_aborts_its_running_workers() {
    let alive = Arc::new(AtomicUsize::new(0));
    let a = alive.clone();
    let call = otelconc::fan::fan_out((), 3, move |(), _, _| {
        let guard = Alive::new(&a);
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        }
    });
    let r = tokio::time::timeout(Duration::from_millis(5), call).await;
    assert!(r.is_err());
    assert_eq!(
        settle(&alive).await,
        0,
        "a worker outlived its fan_out call"
    );
}

/// `FanIn::shutdown` drops the items already merged and not yet received.
#[tokio::test]
async fn fan_in_shutdown_drops_the_merged_items_nobody_received() {
    let alive = Arc::new(AtomicUsize::new(0));
    let a = alive.clone();
    let input = stream::iter(0..5).map(move |_| Alive::new(&a));
    let out = otelconc::fan::FanIn::builder("buffered")
        .capacity(8)
        .input("a", input)
        .build()
        .unwrap();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(alive.load(Ordering::SeqCst), 5, "all five merged");
    out.shutdown().await;
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}
