//! Channel behaviour users rely on: nothing lost, nothing duplicated, nothing leaked,
//! under cancellation, timeouts and shutdown.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use otelconc::channel::{
    self, BuildError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use otelconc_testkit::Rng;

#[test]
fn invalid_configuration_is_refused_with_a_clear_message() {
    assert_eq!(
        channel::builder("").try_bounded::<u32>(4).unwrap_err(),
        BuildError::EmptyName
    );
    assert_eq!(
        channel::builder("q").try_bounded::<u32>(0).unwrap_err(),
        BuildError::ZeroCapacity
    );
    assert_eq!(
        channel::builder("").try_unbounded::<u32>().unwrap_err(),
        BuildError::EmptyName
    );
    let msg = BuildError::ZeroCapacity.to_string();
    assert!(msg.contains("capacity 0"), "{msg}");
}

#[test]
#[should_panic(expected = "capacity 0 is not supported")]
fn bounded_with_zero_capacity_panics() {
    let _ = channel::bounded::<u32>("q", 0);
}

#[test]
#[should_panic(expected = "the name is empty")]
fn unbounded_with_empty_name_panics() {
    let _ = channel::unbounded::<u32>("");
}

#[tokio::test]
async fn sending_on_a_closed_channel_hands_the_message_back() {
    let (tx, rx) = channel::bounded::<String>("q", 1);
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send("a".into()).await, Err(SendError("a".to_owned())));
    assert_eq!(
        tx.try_send("b".into()),
        Err(TrySendError::Closed("b".to_owned()))
    );
    assert_eq!(
        tx.send_timeout("c".into(), Duration::from_secs(1)).await,
        Err(SendTimeoutError::Closed("c".to_owned()))
    );
    assert_eq!(
        tx.send_lossless("d".into()).await,
        Err(SendError("d".to_owned()))
    );
    assert_eq!(tx.blocking_send("e".into()), Err(SendError("e".to_owned())));
}

#[tokio::test]
async fn close_keeps_queued_messages_receivable() {
    let (tx, rx) = channel::bounded::<u32>("q", 4);
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    assert!(rx.close());
    assert!(!tx.close());
    assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(rx.recv().await, Err(RecvError));
}

#[tokio::test]
async fn dropping_every_receiver_wakes_blocked_senders_with_closed() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    let rx2 = rx.clone();
    tx.send(0).await.unwrap();
    let plain = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(1).await }
    });
    let lossless = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send_lossless(2).await }
    });
    let timed = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send_timeout(3, Duration::from_secs(3600)).await }
    });
    let blocking = std::thread::spawn({
        let tx = tx.clone();
        move || tx.blocking_send(4)
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!plain.is_finished() && !lossless.is_finished() && !timed.is_finished());
    drop(rx);
    tokio::task::yield_now().await;
    assert!(!tx.is_closed(), "one receiver is still alive");
    drop(rx2);
    assert_eq!(plain.await.unwrap(), Err(SendError(1)));
    assert_eq!(lossless.await.unwrap(), Err(SendError(2)));
    assert_eq!(timed.await.unwrap(), Err(SendTimeoutError::Closed(3)));
    assert_eq!(blocking.join().unwrap(), Err(SendError(4)));
    tx.closed().await;
}

#[tokio::test(start_paused = true)]
async fn timeouts_hand_the_message_back_and_take_nothing() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)).await,
        Err(RecvTimeoutError::Timeout)
    );
    tx.send(1).await.unwrap();
    assert_eq!(
        tx.send_timeout(2, Duration::from_millis(5)).await,
        Err(SendTimeoutError::Timeout(2))
    );
    assert_eq!(rx.len(), 1);
    assert_eq!(rx.recv_timeout(Duration::from_millis(5)).await, Ok(1));
    // A send_timeout that gets space in time succeeds.
    let sender = tokio::spawn({
        let tx = tx.clone();
        async move {
            tx.send(3).await.unwrap();
            tx.send_timeout(4, Duration::from_secs(10)).await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.recv().await, Ok(3));
    assert_eq!(sender.await.unwrap(), Ok(()));
    assert_eq!(rx.recv().await, Ok(4));
}

#[tokio::test(start_paused = true)]
async fn send_lossless_gives_the_message_back_when_select_picks_another_branch() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    tx.send(0).await.unwrap();
    let mut send = tx.send_lossless(1);
    tokio::select! {
        r = &mut send => panic!("the channel is full, yet the send completed: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    assert_eq!(send.cancel(), Some(1));
    assert_eq!(send.cancel(), None, "handed back once");
    drop(send);
    assert_eq!(rx.recv().await, Ok(0));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "the cancelled message never went in"
    );

    // Once it completed, cancel has nothing to give back: the message is in the channel.
    let mut send = tx.send_lossless(2);
    (&mut send).await.unwrap();
    assert_eq!(send.cancel(), None);
    assert_eq!(rx.recv().await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_send_future_puts_nothing_in_the_channel() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    tx.send(0).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(1), tx.send(1)).await;
    assert!(r.is_err(), "timed out while full");
    assert_eq!(rx.recv().await, Ok(0));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test(start_paused = true)]
async fn a_lossless_sender_is_woken_when_space_frees_up() {
    let (tx, rx) = channel::bounded::<u32>("q", 2);
    tx.send(0).await.unwrap();
    tx.send(1).await.unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move {
            for i in 2..6 {
                tx.send_lossless(i).await.unwrap();
            }
        }
    });
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(rx.recv().await.unwrap());
    }
    waiting.await.unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn recv_many_takes_what_is_ready_up_to_the_limit() {
    let (tx, rx) = channel::unbounded::<u32>("q");
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    let mut buf = vec![99];
    assert_eq!(rx.recv_many(&mut buf, 0).await, 0);
    assert_eq!(rx.recv_many(&mut buf, 3).await, 3);
    assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
    assert_eq!(buf, [99, 0, 1, 2, 3, 4]);
    drop(tx);
    assert_eq!(rx.recv_many(&mut buf, 10).await, 0);
}

#[tokio::test]
async fn the_receiver_is_a_stream() {
    let (tx, rx) = channel::bounded::<u32>("q", 8);
    let producer = tokio::spawn(async move {
        for i in 0..100 {
            tx.send(i).await.unwrap();
        }
    });
    let got: Vec<u32> = rx.collect().await;
    producer.await.unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn handles_report_counts_and_sizes() {
    let (tx, rx) = channel::bounded::<u32>("q", 3);
    let (tx2, rx2) = (tx.clone(), rx.clone());
    assert_eq!((tx.sender_count(), tx.receiver_count()), (2, 2));
    assert_eq!((rx.capacity(), tx2.capacity()), (Some(3), Some(3)));
    tx.try_send(1).unwrap();
    tx2.try_send(2).unwrap();
    assert_eq!((tx.len(), rx2.len()), (2, 2));
    tx.try_send(3).unwrap();
    assert!(tx.is_full() && rx.is_full());
    drop((tx2, rx2));
    assert_eq!((rx.sender_count(), rx.receiver_count()), (1, 1));
}

/// Every queued message is dropped exactly once when the channel goes away.
#[tokio::test(start_paused = true)]
async fn queued_messages_are_dropped_exactly_once_with_the_channel() {
    let token = Arc::new(());
    let (tx, rx) = channel::bounded::<Arc<()>>("q", 8);
    for _ in 0..8 {
        tx.send(token.clone()).await.unwrap();
    }
    let taken = rx.recv().await.unwrap();
    assert_eq!(Arc::strong_count(&token), 9);
    drop(taken);
    // A blocked lossless send gets its message back when the receivers go.
    tx.try_send(token.clone()).unwrap();
    let blocked = tokio::spawn({
        let tx = tx.clone();
        let t = token.clone();
        async move { tx.send_lossless(t).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(Arc::strong_count(&token), 10);
    drop(rx);
    let back = blocked.await.unwrap().unwrap_err().into_inner();
    assert_eq!(
        Arc::strong_count(&token),
        10,
        "the blocked one came back, not dropped"
    );
    drop(back);
    // The 8 queued ones are still in the channel while a sender holds it.
    assert_eq!(Arc::strong_count(&token), 9);
    drop(tx);
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "each queued message dropped exactly once"
    );
}

#[test]
fn messages_sent_from_threads_are_received_exactly_once() {
    let (tx, rx) = channel::bounded::<u64>("q", 4);
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    tx.blocking_send(p * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(v) = rx.recv_blocking() {
                    got.push(v);
                }
                got
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..3000).collect::<Vec<_>>());
}

/// What one side saw: how many messages and their sum, plus every value (to find
/// duplicates).
#[derive(Default)]
struct Tally {
    count: AtomicU64,
    sum: AtomicU64,
}

impl Tally {
    fn add(&self, v: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }
}

/// N producers and M consumers with random cancellation and timeouts on both sides:
/// every message a send reported as sent is received exactly once (count, checksum,
/// and no duplicate value), and every message is sent.
async fn storm(
    producers: u64,
    consumers: u64,
    per_producer: u64,
    capacity: usize,
    seed: u64,
    tt: Option<&otelconc_testkit::TestTelemetry>,
) {
    let mut builder = channel::builder("storm");
    if let Some(tt) = tt {
        builder = builder.telemetry(tt.telemetry());
    }
    let (tx, rx) = builder.bounded::<u64>(capacity);
    let received = Arc::new(Tally::default());
    let seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for p in 0..producers {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (p + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for i in 0..per_producer {
                let mut msg = p * per_producer + i;
                loop {
                    match rng.next() % 4 {
                        // A lossless send raced against a short timer.
                        0 => {
                            let mut send = tx.send_lossless(msg);
                            tokio::select! {
                                r = &mut send => { r.unwrap(); break; }
                                _ = tokio::time::sleep(Duration::from_micros(rng.next() % 50)) => {
                                    match send.cancel() {
                                        Some(back) => msg = back,
                                        None => break,
                                    }
                                }
                            }
                        }
                        // send_timeout hands it back on timeout.
                        1 => match tx
                            .send_timeout(msg, Duration::from_micros(rng.next() % 50))
                            .await
                        {
                            Ok(()) => break,
                            Err(SendTimeoutError::Timeout(back)) => msg = back,
                            Err(e) => panic!("{e}"),
                        },
                        2 => match tx.try_send(msg) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => {
                                msg = back;
                                tokio::task::yield_now().await;
                            }
                            Err(e) => panic!("{e}"),
                        },
                        _ => {
                            tx.send(msg).await.unwrap();
                            break;
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    for c in 0..consumers {
        let rx = rx.clone();
        let received = received.clone();
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (c + 101).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut note = |v: u64| {
                assert!(seen.lock().unwrap().insert(v), "message {v} received twice");
                received.add(v);
            };
            loop {
                match rng.next() % 5 {
                    0 => {
                        // recv raced against a short timer: cancel safe.
                        tokio::select! {
                            r = rx.recv() => match r { Ok(v) => note(v), Err(_) => break },
                            _ = tokio::time::sleep(Duration::from_micros(rng.next() % 50)) => {}
                        }
                    }
                    1 => match rx
                        .recv_timeout(Duration::from_micros(rng.next() % 50))
                        .await
                    {
                        Ok(v) => note(v),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    },
                    2 => {
                        let mut buf = Vec::new();
                        if rx.recv_many(&mut buf, 1 + (rng.next() % 8) as usize).await == 0 {
                            break;
                        }
                        buf.into_iter().for_each(&mut note);
                    }
                    3 => match rx.try_recv() {
                        Ok(v) => note(v),
                        Err(TryRecvError::Empty) => tokio::task::yield_now().await,
                        Err(TryRecvError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    },
                    _ => match rx.recv().await {
                        Ok(v) => note(v),
                        Err(_) => break,
                    },
                }
                if rng.chance(97) {
                    // A consumer that gives up early must not lose what it left queued.
                    // (A poll that did complete returned the message: keep it.)
                    let mut fut = pin!(rx.recv());
                    if let std::task::Poll::Ready(Ok(v)) = futures::poll!(fut.as_mut()) {
                        note(v);
                    }
                }
            }
        }));
    }
    drop(rx);
    for t in tasks {
        t.await.unwrap();
    }
    let n = producers * per_producer;
    assert_eq!(received.count.load(Ordering::Relaxed), n, "count");
    assert_eq!(
        received.sum.load(Ordering::Relaxed),
        n * (n - 1) / 2,
        "checksum"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_with_random_cancellation_lose_and_duplicate_nothing() {
    for seed in [1, 7, 42] {
        storm(4, 3, 2_000, 4, seed, None).await;
    }
    // Again with an SDK, so every wait is also timed and counted.
    let tt = otelconc_testkit::TestTelemetry::new();
    storm(4, 3, 2_000, 4, 5, Some(&tt)).await;
}

#[tokio::test(start_paused = true)]
async fn random_cancellation_on_virtual_time_loses_and_duplicates_nothing() {
    for seed in [3, 11] {
        storm(3, 4, 1_000, 2, seed, None).await;
    }
    let tt = otelconc_testkit::TestTelemetry::new();
    storm(3, 4, 1_000, 2, 13, Some(&tt)).await;
}

/// `recv_many` with a limit of 0 returns 0 at once, even on an empty open channel.
#[tokio::test(start_paused = true)]
async fn recv_many_with_limit_zero_does_not_wait() {
    let (_tx, rx) = channel::bounded::<u32>("q", 4);
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(1), rx.recv_many(&mut buf, 0)).await;
    assert_eq!(n.ok(), Some(0));
    let batch =
        tokio::time::timeout(Duration::from_secs(1), rx.recv_many_traced(&mut buf, 0)).await;
    assert_eq!(batch.map(|b| b.len()).ok(), Some(0));
}

/// A zero timeout still succeeds when the slot or the message is there already.
#[tokio::test(start_paused = true)]
async fn zero_timeouts_succeed_when_nothing_has_to_wait() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    assert_eq!(tx.send_timeout(1, Duration::ZERO).await, Ok(()));
    assert_eq!(
        tx.send_timeout(2, Duration::ZERO).await,
        Err(SendTimeoutError::Timeout(2))
    );
    assert_eq!(rx.recv_timeout(Duration::ZERO).await, Ok(1));
    assert_eq!(
        rx.recv_timeout(Duration::ZERO).await,
        Err(RecvTimeoutError::Timeout)
    );
}

/// `SendLossless::cancel` returns `None` after a failed send: the error handed the
/// message back already.
#[tokio::test]
async fn cancel_after_a_failed_lossless_send_returns_nothing() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    drop(rx);
    let mut send = tx.send_lossless(5);
    assert_eq!((&mut send).await, Err(SendError(5)));
    assert_eq!(send.cancel(), None);
}

/// `Sender::closed` resolves when a receiver closes the channel.
#[tokio::test(start_paused = true)]
async fn closed_resolves_when_the_receiver_side_closes() {
    let (tx, rx) = channel::bounded::<u32>("q", 1);
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.closed().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    assert!(rx.close());
    tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("closed() resolved")
        .unwrap();
    assert!(!tx.close(), "already closed");
}
