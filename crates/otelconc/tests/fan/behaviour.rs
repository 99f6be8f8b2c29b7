//! fan_out_items, fan_out and fan_in: results, order, bounded concurrency, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use otelconc::fan::{
    BuildError, FanIn, FanOut, ItemError, fan_in, fan_out, fan_out_items, fan_out_items_unordered,
};
use otelconc::group::{CancelCause, TaskError};
use tokio::time::sleep;

#[tokio::test]
async fn zero_concurrency_or_capacity_is_rejected_with_a_clear_error() {
    let f = |x: u8| async move { Ok::<_, String>(x) };
    let err = fan_out_items([1u8], 0, f).unwrap_err();
    assert_eq!(err, BuildError::ZeroConcurrency);
    assert_eq!(
        err.to_string(),
        "fan_out_items: concurrency must be at least 1 (0 would never start an item)"
    );
    assert!(fan_out_items_unordered([1u8], 0, f).is_err());
    assert!(matches!(
        fan_out_items_unordered([1u8], 0, f),
        Err(BuildError::ZeroConcurrency)
    ));
    assert!(FanOut::new("x").items([1u8], 0, f).is_err());
    assert!(matches!(
        FanOut::new("x").items_unordered([1u8], 0, f),
        Err(BuildError::ZeroConcurrency)
    ));
    let err = FanIn::<u8>::builder("x").capacity(0).build().unwrap_err();
    // A zero capacity is its own variant, not a zero concurrency.
    assert_eq!(err, BuildError::ZeroCapacity);
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

/// A fan-in of no input ends at once (it ends when every input has ended).
#[tokio::test]
async fn a_fan_in_of_no_input_ends_at_once() {
    let none: Vec<stream::Iter<std::vec::IntoIter<u8>>> = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), fan_in(none).count()).await;
    assert_eq!(n.ok(), Some(0));
    let built = FanIn::<u8>::builder("empty").build().unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), built.count()).await;
    assert_eq!(n.ok(), Some(0));
}

/// In input order, results that finished ahead of their turn count against
/// `concurrency`: behind a slow first item, only `concurrency` items ever start.
#[tokio::test(start_paused = true)]
async fn results_waiting_for_their_turn_count_against_the_concurrency() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let mut out = fan_out_items(0..10u64, 2, move |i| {
        s.fetch_add(1, Ordering::SeqCst);
        async move {
            if i == 0 {
                sleep(Duration::from_secs(10)).await;
            }
            Ok::<_, String>(i)
        }
    })
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), out.next())
            .await
            .is_err()
    );
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(out.next().await, Some(Ok(0)));
    assert_eq!(out.next().await, Some(Ok(1)));
}

/// `fan_in`'s buffer holds 32 items by default.
#[tokio::test]
async fn fan_in_buffers_32_items_by_default() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let input = stream::iter(0u64..).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        i
    });
    let out = fan_in([input]);
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    // The buffer (32) plus the one item the merge task holds while it waits.
    assert_eq!(pulled.load(Ordering::SeqCst), 33);
    out.shutdown().await;
}
