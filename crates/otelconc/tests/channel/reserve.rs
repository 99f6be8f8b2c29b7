//! `reserve` and `Permit`: a held slot is the sender's, a dropped permit gives it back,
//! and cancelled reservations neither lose messages nor leak slots.

use std::collections::HashSet;
use std::time::Duration;

use otelconc::channel::{self, SendError, Sender, TryRecvError, TrySendError};
use otelconc_testkit::Rng;

/// How many slots can be reserved now: reserves until refused, then gives them back.
fn free_slots(tx: &Sender<u64>) -> usize {
    let mut held = Vec::new();
    while let Ok(p) = tx.try_reserve() {
        held.push(p);
    }
    held.len()
}

#[tokio::test(start_paused = true)]
async fn a_permits_send_never_fails_full_among_reserving_senders() {
    let (tx, rx) = channel::bounded::<u64>("q", 3);
    let senders: Vec<_> = (0..8u64)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let permit = tx.reserve().await.unwrap();
                    tokio::task::yield_now().await; // hold it across a yield
                    permit
                        .send(p * 1000 + i)
                        .expect("a held slot is never full");
                }
            })
        })
        .collect();
    let lossless = tokio::spawn({
        let tx = tx.clone();
        async move {
            for i in 0..200 {
                tx.send_lossless(9000 + i).await.unwrap();
            }
        }
    });
    drop(tx);
    let mut seen = HashSet::new();
    while let Ok(v) = rx.recv().await {
        assert!(seen.insert(v), "{v} received twice");
        assert!(rx.len() <= 3);
    }
    for s in senders {
        s.await.unwrap();
    }
    lossless.await.unwrap();
    assert_eq!(seen.len(), 8 * 200 + 200);
}

#[tokio::test(start_paused = true)]
async fn a_held_slot_is_not_taken_by_send_lossless() {
    let (tx, rx) = channel::bounded::<u64>("q", 1);
    let permit = tx.try_reserve().unwrap();
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full(()));
    let lossless = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send_lossless(2).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!lossless.is_finished(), "the only slot is held");
    permit.send(1).unwrap();
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(lossless.await.unwrap(), Ok(()));
    assert_eq!(rx.recv().await, Ok(2));
}

/// The documented limit: plain `try_send` (like `send` and `blocking_send`) does not
/// look at reservations, and then the permit hands the message back.
#[test]
fn a_plain_send_can_fill_a_held_slot_and_the_permit_hands_the_message_back() {
    let (tx, rx) = channel::bounded::<u64>("q", 1);
    let permit = tx.try_reserve().unwrap();
    tx.try_send(1).unwrap();
    assert_eq!(permit.send(2), Err(TrySendError::Full(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(free_slots(&tx), 1, "the failed permit gave its slot back");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_permit_frees_its_slot_and_wakes_a_reserver() {
    let (tx, rx) = channel::bounded::<u64>("q", 2);
    let a = tx.reserve().await.unwrap();
    let b = tx.reserve().await.unwrap();
    assert_eq!(free_slots(&tx), 0);
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.reserve().await.map(|p| p.send(3)) }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!waiting.is_finished());
    drop(a);
    assert_eq!(waiting.await.unwrap(), Ok(Ok(())));
    b.send(4).unwrap();
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(rx.try_recv(), Ok(4));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(free_slots(&tx), 2);
}

#[tokio::test(start_paused = true)]
async fn reserve_on_a_closed_channel_errors() {
    let (tx, rx) = channel::bounded::<u64>("q", 1);
    let held = tx.reserve().await.unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.reserve().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!waiting.is_finished());
    drop(rx);
    assert_eq!(
        waiting.await.unwrap(),
        Err(SendError(())),
        "woken by the close"
    );
    assert_eq!(tx.reserve().await.unwrap_err(), SendError(()));
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Closed(()));
    assert_eq!(held.send(1), Err(TrySendError::Closed(1)));
    let (tx, _rx) = channel::unbounded::<u64>("u");
    tx.close();
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Closed(()));
}

#[tokio::test]
async fn an_unbounded_channel_always_has_a_slot() {
    let (tx, rx) = channel::unbounded::<u64>("u");
    let permits: Vec<_> = (0..100).map(|_| tx.try_reserve().unwrap()).collect();
    for (i, p) in permits.into_iter().enumerate() {
        p.send(i as u64).unwrap();
    }
    assert_eq!(rx.len(), 100);
}

/// 1,000 reservations cancelled at random points (on virtual time, seeded) while other
/// tasks hold, use and drop permits and a consumer drains: every message sent through a
/// permit is received exactly once, and afterwards the channel's full capacity can be
/// reserved again, so no cancelled reservation kept a slot.
#[tokio::test(start_paused = true)]
async fn cancelled_reservations_lose_nothing_and_leak_no_slot() {
    const CAPACITY: usize = 4;
    let (tx, rx) = channel::bounded::<u64>("q", CAPACITY);
    let mut rng = Rng::new(0x5EED);
    let mut sent = 0u64;
    let mut received = HashSet::new();
    let mut cancelled = 0;
    let mut held = Vec::new();
    while cancelled < 1_000 {
        match rng.below(5) {
            // A reservation raced against a short timer: cancelled when it loses.
            0 | 1 => {
                let wait = Duration::from_micros(rng.below(20));
                match tokio::time::timeout(wait, tx.reserve()).await {
                    Ok(permit) => held.push(permit.unwrap()),
                    Err(_) => cancelled += 1,
                }
            }
            // A reservation polled once and dropped, whether it got a slot or not.
            2 => {
                let fut = std::pin::pin!(tx.reserve());
                if let std::task::Poll::Ready(p) = futures::poll!(fut) {
                    drop(p.unwrap());
                }
                cancelled += 1;
            }
            // Use or drop a held permit.
            3 if !held.is_empty() => {
                let permit = held.swap_remove(rng.below(held.len() as u64) as usize);
                if rng.chance(2) {
                    permit.send(sent).expect("a held slot is never full");
                    sent += 1;
                }
            }
            // The consumer takes what is there.
            _ => {
                while let Ok(v) = rx.try_recv() {
                    assert!(received.insert(v), "{v} received twice");
                }
            }
        }
        assert!(rx.len() + held.len() <= CAPACITY, "never over-committed");
    }
    drop(held);
    while let Ok(v) = rx.try_recv() {
        assert!(received.insert(v), "{v} received twice");
    }
    assert_eq!(
        received.len() as u64,
        sent,
        "every permit's message arrived"
    );
    assert_eq!(free_slots(&tx), CAPACITY, "final capacity == initial");
}

/// `n` tasks waiting in `reserve` on a full channel.
async fn waiting_reservers(tx: &Sender<u64>, n: u64) -> Vec<tokio::task::JoinHandle<()>> {
    let waiting: Vec<_> = (0..n)
        .map(|i| {
            let tx = tx.clone();
            tokio::spawn(async move { tx.reserve().await.unwrap().send(100 + i).unwrap() })
        })
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        waiting.iter().all(|h| !h.is_finished()),
        "the channel is full"
    );
    waiting
}

async fn each_gets_its_slot(waiting: Vec<tokio::task::JoinHandle<()>>) {
    tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(waiting))
        .await
        .expect("every waiting reserver got a slot");
}

/// Every way of receiving frees a slot that a waiting `reserve` gets, and a batch
/// receive wakes as many waiters as it freed slots.
#[tokio::test(start_paused = true)]
async fn every_receive_wakes_waiting_reservers() {
    use futures::StreamExt;
    let (tx, rx) = channel::bounded::<u64>("q", 3);
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    let waiting = waiting_reservers(&tx, 1).await;
    rx.try_recv().unwrap();
    each_gets_its_slot(waiting).await;

    let waiting = waiting_reservers(&tx, 1).await;
    rx.recv_timeout(Duration::from_secs(1)).await.unwrap();
    each_gets_its_slot(waiting).await;

    let waiting = waiting_reservers(&tx, 1).await;
    drop(rx.recv_traced().await.unwrap());
    each_gets_its_slot(waiting).await;

    let mut buf = Vec::new();
    let waiting = waiting_reservers(&tx, 3).await;
    assert_eq!(rx.recv_many(&mut buf, 3).await, 3);
    each_gets_its_slot(waiting).await;

    let waiting = waiting_reservers(&tx, 3).await;
    assert_eq!(rx.recv_many_traced(&mut buf, 3).await.len(), 3);
    each_gets_its_slot(waiting).await;

    let waiting = waiting_reservers(&tx, 1).await;
    let mut stream = std::pin::pin!(rx.clone());
    stream.next().await.unwrap();
    each_gets_its_slot(waiting).await;

    let waiting = waiting_reservers(&tx, 1).await;
    otelconc::select::first([&rx]).await.unwrap();
    each_gets_its_slot(waiting).await;

    let waiting = waiting_reservers(&tx, 1).await;
    let blocking = rx.clone();
    tokio::task::spawn_blocking(move || blocking.recv_blocking().unwrap())
        .await
        .unwrap();
    each_gets_its_slot(waiting).await;
    assert_eq!(rx.len(), 3);

    // Lossless senders too.
    let waiting: Vec<_> = (0..3)
        .map(|i| {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send_lossless(200 + i).await.unwrap() })
        })
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(rx.recv_many(&mut buf, 3).await, 3);
    each_gets_its_slot(waiting).await;
    assert_eq!(rx.len(), 3);
}
