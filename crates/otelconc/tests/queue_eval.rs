//! Evaluation of crossfire 3.x as the queue under otelconc's primitives, next to
//! async-channel (the queue they use). Each test checks a property otelconc's
//! cancel-safety and shutdown promises rest on; the findings are written up in the
//! channel's queue module (`src/channel/queue.rs`).
//!
//! Run the big races in release: `cargo test --release -p otelconc --test queue_eval`.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crossfire::{AsyncRxTrait, AsyncTxTrait, SendTimeoutError, TryRecvError, TrySendError, mpmc};

/// Receive attempts raced against a cancellation, across both consumers.
const RACES: usize = 1_000_000;

/// A message that counts its drops: a message dropped by the channel (not received,
/// not handed back) shows up here.
struct Counted {
    producer: usize,
    seq: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one consumer saw.
#[derive(Default)]
struct Seen {
    ids: Vec<(usize, usize)>,
    /// Receive futures dropped while pending (registered, then cancelled).
    cancelled_pending: usize,
    /// Receive futures that lost a race against a (1 µs) timer.
    timed_out: usize,
}

/// Consumes until the channel is closed and drained, every receive raced: odd
/// attempts poll the future once and drop it when pending, even ones race it against
/// a timer (`tokio::time::timeout`).
async fn race_consumer(
    rx: crossfire::MAsyncRx<mpmc::Array<Counted>>,
    races: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen::default();
    let mut attempt = 0usize;
    loop {
        attempt += 1;
        races.fetch_add(1, Ordering::Relaxed);
        let got = if attempt % 2 == 1 {
            let mut fut = pin!(rx.recv());
            match futures::poll!(fut.as_mut()) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => {
                    seen.cancelled_pending += 1;
                    None
                }
            }
        } else {
            match tokio::time::timeout(Duration::from_micros(1), rx.recv()).await {
                Ok(r) => Some(r),
                Err(_) => {
                    seen.timed_out += 1;
                    None
                }
            }
        };
        match got {
            Some(Ok(m)) => seen.ids.push((m.producer, m.seq)),
            Some(Err(_)) => return seen,
            None => tokio::task::yield_now().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossfire_recv_raced_against_cancellation_loses_and_duplicates_nothing() {
    const PRODUCERS: usize = 2;
    let drops = Arc::new(AtomicUsize::new(0));
    let races = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpmc::bounded_async::<Counted>(64);
    let consumers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(race_consumer(rx.clone(), races.clone())))
        .collect();
    drop(rx);
    // Producers send until the consumers have made RACES attempts between them, so
    // the queue keeps running empty (the receives park and are cancelled) and full.
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            let drops = drops.clone();
            let races = races.clone();
            tokio::spawn(async move {
                let mut seq = 0;
                while races.load(Ordering::Relaxed) < RACES {
                    tx.send(Counted {
                        producer: p,
                        seq,
                        drops: drops.clone(),
                    })
                    .await
                    .expect("receivers alive");
                    seq += 1;
                    if seq % 2 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                seq
            })
        })
        .collect();
    drop(tx);
    let mut sent = Vec::new();
    for p in producers {
        sent.push(p.await.unwrap());
    }
    let mut all = HashSet::new();
    let (mut cancelled, mut timed_out, mut received) = (0, 0, 0);
    for c in consumers {
        let seen = c.await.unwrap();
        cancelled += seen.cancelled_pending;
        timed_out += seen.timed_out;
        received += seen.ids.len();
        // FIFO per producer: each consumer sees a producer's messages in order.
        for p in 0..PRODUCERS {
            let mine: Vec<usize> = seen
                .ids
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, s)| *s)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order"
            );
        }
        for id in seen.ids {
            assert!(all.insert(id), "{id:?} received twice");
        }
    }
    let total: usize = sent.iter().sum();
    assert!(races.load(Ordering::Relaxed) >= RACES);
    assert_eq!(received, total, "lost messages");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        total,
        "every message dropped once, by its receiver"
    );
    // The race was real: receives parked and were cancelled, both ways.
    assert!(
        cancelled > 0 && timed_out > 0,
        "cancelled {cancelled}, timed out {timed_out}"
    );
    eprintln!(
        "races {} sent {total} cancelled-pending {cancelled} timed-out {timed_out}",
        races.load(Ordering::Relaxed)
    );
}

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Receiver A parks first, then B; a send wakes A, and A gives up without taking the
/// message: B must get it, without another send. `$make` builds a channel of `u32`
/// with room for 4.
macro_rules! woken_then_cancelled_receiver_passes_the_wake_up_on {
    ($make:expr) => {{
        let (tx, rx) = $make;
        let rx2 = rx.clone();
        // A parks first, so the send wakes A.
        let a_waker = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(a_waker.clone());
        let mut a = Box::pin(rx.recv());
        assert!(
            a.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        // B parks second.
        let b = tokio::spawn(async move { rx2.recv().await });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        assert_eq!(a_waker.0.load(Ordering::SeqCst), 1, "the send woke A");
        // A gives up without taking the message: B must get it, without another send.
        drop(a);
        let got = tokio::time::timeout(Duration::from_secs(1), b).await;
        assert_eq!(got.expect("B was never woken").unwrap(), Ok(7));
    }};
}

#[tokio::test(start_paused = true)]
async fn crossfire_woken_then_cancelled_receiver_passes_the_wake_up_on() {
    woken_then_cancelled_receiver_passes_the_wake_up_on!(mpmc::bounded_async::<u32>(4));
}

#[tokio::test(start_paused = true)]
async fn async_channel_woken_then_cancelled_receiver_passes_the_wake_up_on() {
    woken_then_cancelled_receiver_passes_the_wake_up_on!(async_channel::bounded::<u32>(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossfire_cancelled_send_is_either_sent_or_handed_back_never_both() {
    const SENDS: usize = 200_000;
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpmc::bounded_async::<Counted>(2);
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(m) = rx.recv().await {
            got.push(m.seq);
            if got.len() % 3 == 0 {
                tokio::task::yield_now().await;
            }
        }
        got
    });
    let mut returned = Vec::new();
    let (mut dropped_pending, mut timed_out) = (0, 0);
    for seq in 0..SENDS {
        let msg = Counted {
            producer: 0,
            seq,
            drops: drops.clone(),
        };
        if seq % 2 == 0 {
            // A timed send hands the message back when it times out.
            match tx
                .send_with_timer(msg, tokio::time::sleep(Duration::from_micros(1)))
                .await
            {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(m)) => {
                    timed_out += 1;
                    returned.push(m.seq);
                }
                Err(SendTimeoutError::Disconnected(_)) => unreachable!("receiver alive"),
            }
        } else {
            // A plain send polled once and dropped while pending.
            let mut fut = pin!(tx.send(msg));
            if futures::poll!(fut.as_mut()).is_pending() {
                dropped_pending += 1;
            }
        }
    }
    drop(tx);
    let got = consumer.await.unwrap();
    let got_set: HashSet<usize> = got.iter().copied().collect();
    assert_eq!(got_set.len(), got.len(), "a message was received twice");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO");
    for seq in &returned {
        assert!(!got_set.contains(seq), "{seq} handed back and received");
    }
    drop(returned);
    // Every message was dropped exactly once: received, handed back, or dropped with
    // its cancelled send future; none stays behind in the channel, none leaks.
    assert_eq!(drops.load(Ordering::SeqCst), SENDS);
    assert!(
        dropped_pending > 0 && timed_out > 0,
        "pending {dropped_pending}, timed out {timed_out}"
    );
    eprintln!(
        "sends {SENDS} received {} timed-out {timed_out} dropped-pending {dropped_pending}",
        got.len()
    );
}

#[tokio::test]
async fn crossfire_receivers_drain_what_was_sent_before_the_senders_left() {
    let (tx, rx) = mpmc::bounded_async::<u32>(8);
    let tx2 = tx.clone();
    for i in 0..4 {
        tx.try_send(i).unwrap();
        tx2.try_send(10 + i).unwrap();
    }
    drop(tx);
    // One sender left: not closed yet.
    assert_eq!(rx.try_recv(), Ok(0));
    drop(tx2);
    let mut rest = Vec::new();
    while let Ok(v) = rx.recv().await {
        rest.push(v);
    }
    assert_eq!(rest, [10, 1, 11, 2, 12, 3, 13]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[tokio::test]
async fn crossfire_parked_sender_sees_the_receivers_leave_and_keeps_nothing() {
    let (tx, rx) = mpmc::bounded_async::<u32>(1);
    tx.send(1).await.unwrap();
    let sender = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(2).await }
    });
    tokio::task::yield_now().await;
    drop(rx);
    assert!(sender.await.unwrap().is_err(), "the parked send fails");
    assert!(matches!(tx.try_send(3), Err(TrySendError::Disconnected(3))));
}

/// One producer and one consumer on a runtime with one worker: nothing may wait on a
/// second thread (a spin waiting for a peer that cannot run would hang or crawl).
async fn one_worker_round(cap: usize) {
    const N: u64 = 200_000;
    let (tx, rx) = mpmc::bounded_async::<u64>(cap);
    let producer = tokio::spawn(async move {
        for i in 0..N {
            tx.send(i).await.unwrap();
        }
    });
    let mut next = 0;
    while let Ok(v) = rx.recv().await {
        assert_eq!(v, next);
        next += 1;
    }
    producer.await.unwrap();
    assert_eq!(next, N);
}

#[test]
fn crossfire_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for cap in [1, 2, 64, 1024] {
        rt.block_on(one_worker_round(cap));
    }
}

#[test]
fn crossfire_on_a_one_worker_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for cap in [1, 2, 64, 1024] {
        rt.block_on(one_worker_round(cap));
    }
}
