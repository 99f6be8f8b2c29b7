//! Select helpers: first-of-N, all-of-N, timeouts and cancellation, without losing or
//! reordering anything and without touching the caller's inputs.

use std::time::Duration;

use otelconc::channel::{self, Receiver, Sender};
use otelconc::select::{self, AllError, FirstError};
use tokio_util::sync::CancellationToken;

fn chans(n: usize) -> (Vec<Sender<u32>>, Vec<Receiver<u32>>) {
    (0..n)
        .map(|i| channel::bounded::<u32>(format!("in{i}"), 4))
        .unzip()
}

#[tokio::test]
async fn first_returns_the_ready_input_and_its_value() {
    let (txs, rxs) = chans(3);
    txs[2].send(30).await.unwrap();
    let s = select::first(&rxs).await.unwrap();
    assert_eq!((s.index, s.value), (2, 30));
    // Only the winner's message was taken.
    txs[0].send(10).await.unwrap();
    txs[1].send(20).await.unwrap();
    let s = select::first(&rxs).await.unwrap();
    assert!(matches!((s.index, s.value), (0, 10) | (1, 20)));
    let rest: u32 = rxs.iter().filter_map(|r| r.try_recv().ok()).sum();
    assert_eq!(rest + s.value, 30);
}

#[tokio::test]
async fn first_skips_closed_inputs_and_reports_all_closed() {
    let (mut txs, rxs) = chans(3);
    drop(txs.remove(0)); // input 0 closed
    let waiter = tokio::spawn(async move {
        let refs: Vec<&Receiver<u32>> = rxs.iter().collect();
        let first = select::first(refs.iter().copied()).await;
        let second = select::first(refs.iter().copied()).await;
        (first, second)
    });
    tokio::task::yield_now().await;
    txs[1].send(5).await.unwrap(); // input 2 of the original three
    drop(txs);
    let (first, second) = waiter.await.unwrap();
    let first = first.unwrap();
    assert_eq!((first.index, first.value), (2, 5));
    assert_eq!(second.unwrap_err(), FirstError::AllClosed);
    let none: [&Receiver<u32>; 0] = [];
    assert_eq!(
        select::first(none).await.unwrap_err(),
        FirstError::AllClosed
    );
}

#[tokio::test]
async fn first_is_fair_across_inputs() {
    let (txs, rxs) = chans(2);
    for _ in 0..4 {
        txs[0].send(0).await.unwrap();
        txs[1].send(1).await.unwrap();
    }
    let mut from = [0; 2];
    for _ in 0..4 {
        from[select::first(&rxs).await.unwrap().index] += 1;
    }
    assert!(from[0] > 0 && from[1] > 0, "both inputs served: {from:?}");
}

/// `first` is cancel safe, so a timeout or a token is a wrapper around it (the forms its
/// docs show), and neither takes anything.
#[tokio::test(start_paused = true)]
async fn first_under_a_timeout_or_a_token_takes_nothing() {
    let (txs, rxs) = chans(2);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), select::first(&rxs))
            .await
            .is_err(),
        "timed out"
    );
    let token = CancellationToken::new();
    let cancel = tokio::spawn({
        let token = token.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            token.cancel();
        }
    });
    let r = tokio::select! {
        biased;
        r = select::first(&rxs) => Some(r),
        _ = token.cancelled() => None,
    };
    assert!(r.is_none(), "cancelled: {r:?}");
    cancel.await.unwrap();
    // A message that is ready wins over an elapsed timeout or a cancelled token, as
    // the removed `first_timeout`/`first_cancellable` did.
    txs[0].send(8).await.unwrap();
    let r = tokio::time::timeout(Duration::ZERO, select::first(&rxs)).await;
    assert_eq!(r.unwrap().unwrap().value, 8);
    txs[0].send(8).await.unwrap();
    let r = tokio::select! {
        biased;
        r = select::first(&rxs) => Some(r),
        _ = token.cancelled() => None,
    };
    assert_eq!(r.unwrap().unwrap().value, 8);
    // Dropping a pending `first` loses nothing: the next message is still there.
    let r = tokio::time::timeout(Duration::from_millis(1), select::first(&rxs)).await;
    assert!(r.is_err());
    txs[1].send(9).await.unwrap();
    assert_eq!(rxs[1].try_recv(), Ok(9));
}

#[tokio::test]
async fn all_returns_one_value_per_input_in_input_order() {
    let (txs, rxs) = chans(3);
    // Sent in reverse order.
    txs[2].send(3).await.unwrap();
    txs[1].send(2).await.unwrap();
    txs[0].send(1).await.unwrap();
    txs[0].send(11).await.unwrap();
    assert_eq!(select::all(&rxs).await.unwrap(), [1, 2, 3]);
    // One from each: the second message of input 0 is still there, inputs untouched.
    assert_eq!(rxs.len(), 3);
    assert_eq!(rxs[0].try_recv(), Ok(11));
}

#[tokio::test]
async fn all_with_a_closed_input_hands_back_what_it_took() {
    let (mut txs, rxs) = chans(3);
    txs[0].send(1).await.unwrap();
    txs[2].send(3).await.unwrap();
    drop(txs.remove(1));
    let err = select::all(&rxs).await.unwrap_err();
    assert_eq!(err.closed_input(), Some(1));
    let got = err.into_received();
    // Messages taken before the closed input was seen come back, by position.
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], Some(1));
    assert_eq!(got[1], None);
    let total = got.iter().flatten().count() + rxs.iter().map(|r| r.len()).sum::<usize>();
    assert_eq!(total, 2, "every message is returned or still queued");
}

#[tokio::test(start_paused = true)]
async fn all_timeout_and_cancellation_hand_back_what_they_took() {
    let (txs, rxs) = chans(2);
    txs[0].send(1).await.unwrap();
    match select::all_timeout(&rxs, Duration::from_millis(10)).await {
        Err(AllError::Timeout { received }) => assert_eq!(received, [Some(1), None]),
        other => panic!("{other:?}"),
    }
    txs[1].send(2).await.unwrap();
    let token = CancellationToken::new();
    token.cancel();
    // Already cancelled: it still takes what is ready, then stops.
    match select::all_cancellable(&rxs, &token).await {
        Err(AllError::Cancelled { received }) => assert_eq!(received, [None, Some(2)]),
        other => panic!("{other:?}"),
    }
    txs[0].send(3).await.unwrap();
    txs[1].send(4).await.unwrap();
    let token = CancellationToken::new();
    assert_eq!(select::all_cancellable(&rxs, &token).await.unwrap(), [3, 4]);
}
