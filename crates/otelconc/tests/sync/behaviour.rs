//! Mutual exclusion, tokio's fairness, cancellation, guards and their maps, bad input.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use otelconc::sync::{
    BuildError, Mutex, MutexGuard, OwnedMutexGuard, OwnedRwLockWriteGuard, RwLock, RwLockReadGuard,
    RwLockWriteGuard,
};
use otelconc_testkit::{Rng, TestTelemetry};
use tokio::time::{sleep, timeout};

use crate::{settle, side};

/// No lock of `names` is held any more: their oldest-hold gauge reads 0, at this
/// collection and the next.
fn no_hold_left(tt: &TestTelemetry, names: &[&'static str]) {
    for _ in 0..2 {
        let metrics = tt.metrics();
        for name in names {
            assert_eq!(
                metrics.value(
                    "otelconc.lock.hold.oldest.age",
                    &side(name, "exclusive", None)
                ),
                Some(0.0),
                "{name}"
            );
        }
    }
}

#[test]
fn an_empty_name_is_refused_with_a_clear_error() {
    let err = Mutex::new("", 1).unwrap_err();
    assert_eq!(err, BuildError::EmptyName);
    assert!(err.to_string().contains("name is empty"), "{err}");
    assert_eq!(RwLock::new("", 1).unwrap_err(), BuildError::EmptyName);
    assert_eq!(
        RwLock::builder("", 1).build().unwrap_err(),
        BuildError::EmptyName
    );
}

/// Counts holders in and out, and fails if two overlap.
struct Exclusive(AtomicUsize);

impl Exclusive {
    fn enter(&self) {
        assert_eq!(
            self.0.fetch_add(1, Ordering::SeqCst),
            0,
            "two holders at once"
        );
    }
    fn leave(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 8 worker threads, 8 tasks, 100,000 increments each, half through owned guards, with
/// an SDK reading the metrics: no increment is lost, no two holders overlap, and the
/// holder-written counts lose nothing either (every acquisition counted, every hold
/// ended, so no hold seems to be going afterwards).
#[test]
fn the_mutex_excludes_under_8_threads_and_100k_increments_each() {
    const TASKS: u64 = 8;
    const EACH: u64 = 100_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .build()
        .expect("runtime");
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("counter", 0u64)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let inside = Arc::new(Exclusive(AtomicUsize::new(0)));
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (m, inside) = (m.clone(), inside.clone());
                tokio::spawn(async move {
                    for i in 0..EACH {
                        if (t + i) % 2 == 0 {
                            let mut g = m.lock().await;
                            inside.enter();
                            let v = *g;
                            *g = std::hint::black_box(v) + 1;
                            inside.leave();
                        } else {
                            let mut g = m.clone().lock_owned().await;
                            inside.enter();
                            *g += 1;
                            inside.leave();
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("no panic");
        }
    });
    assert_eq!(*m.try_lock().expect("free"), TASKS * EACH);
    let metrics = tt.metrics();
    assert_eq!(
        metrics.value(
            "otelconc.lock.acquisitions",
            &side("counter", "exclusive", Some("ok"))
        ),
        Some((TASKS * EACH + 1) as f64)
    );
    no_hold_left(&tt, &["counter"]);
}

/// Writers update two fields with an `.await` between them; readers on other threads
/// never see them apart.
#[test]
fn the_rwlock_never_shows_a_half_written_value() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .build()
        .expect("runtime");
    let l = Arc::new(RwLock::new("pair", (0u64, 0u64)).expect("valid"));
    rt.block_on(async {
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let l = l.clone();
                tokio::spawn(async move {
                    for i in 0..5_000u64 {
                        if (t + i) % 4 == 0 {
                            let mut w = l.write().await;
                            w.0 += 1;
                            tokio::task::yield_now().await;
                            w.1 += 1;
                        } else {
                            let r = l.clone().read_owned().await;
                            assert_eq!(r.0, r.1, "a reader saw a half-written pair");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("no panic");
        }
    });
    assert_eq!(*l.try_read().expect("free"), (10_000, 10_000));
}

/// Tokio's documented fairness: calls are served first come, first served, and
/// `try_lock` does not overtake a queued call even at the instant the lock is
/// released (the lock goes straight to the head of the queue).
#[tokio::test]
async fn the_mutex_serves_calls_in_order_and_try_lock_does_not_overtake() {
    let m = Arc::new(Mutex::new("fifo", ()).expect("valid"));
    let order = Arc::new(StdMutex::new(Vec::new()));
    let held = m.try_lock().expect("free");
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let (m, order) = (m.clone(), order.clone());
            tokio::spawn(async move {
                let _g = m.lock().await;
                order.lock().expect("order").push(i);
            })
        })
        .collect();
    settle().await;
    drop(held);
    // Released, but to the first waiter, which has not run yet.
    assert!(m.try_lock().is_err());
    for w in waiters {
        w.await.expect("no panic");
    }
    assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4]);
    assert!(m.try_lock().is_ok());
}

/// Tokio's documented write preference: a read call queued behind a waiting write
/// call waits for that writer, even while another reader holds the lock, and
/// `try_read` fails meanwhile.
#[tokio::test]
async fn a_queued_writer_blocks_later_readers() {
    let l = Arc::new(RwLock::new("routes", 0).expect("valid"));
    let order = Arc::new(StdMutex::new(Vec::new()));
    let first_reader = l.try_read().expect("free");
    let writer = tokio::spawn({
        let (l, order) = (l.clone(), order.clone());
        async move {
            let mut w = l.write().await;
            *w = 1;
            order.lock().expect("order").push("writer");
        }
    });
    settle().await;
    assert!(l.try_read().is_err(), "a reader overtook the queued writer");
    let reader = tokio::spawn({
        let (l, order) = (l.clone(), order.clone());
        async move {
            let r = l.read().await;
            order.lock().expect("order").push("reader");
            *r
        }
    });
    settle().await;
    assert!(order.lock().expect("order").is_empty());
    drop(first_reader);
    assert_eq!(
        reader.await.expect("no panic"),
        1,
        "the reader came after the writer"
    );
    writer.await.expect("no panic");
    assert_eq!(*order.lock().expect("order"), vec!["writer", "reader"]);
}

/// 1,000 calls give up after a random timeout (tokio's paused clock) while others hold
/// the locks for random times: every abandoned wait is counted as cancelled and as no
/// waiter, every successful one as an acquisition, and the locks stay usable.
#[tokio::test(start_paused = true)]
async fn a_thousand_random_cancellations_leave_the_locks_usable() {
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("m", 0u32)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let l = Arc::new(
        RwLock::builder("l", 0u32)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let mut rng = Rng::new(17);
    let mut calls = Vec::new();
    for i in 0..1_000u64 {
        let patience = Duration::from_micros(rng.below(3_000));
        let hold = Duration::from_micros(rng.below(1_000));
        let (m, l) = (m.clone(), l.clone());
        let kind = rng.below(3);
        calls.push(tokio::spawn(async move {
            sleep(Duration::from_micros(i * 7_919 % 300_000)).await;
            match kind {
                0 => match timeout(patience, m.lock()).await {
                    Ok(mut g) => {
                        sleep(hold).await;
                        *g += 1;
                        (0, true)
                    }
                    Err(_) => (0, false),
                },
                1 => match timeout(patience, l.write()).await {
                    Ok(mut g) => {
                        sleep(hold).await;
                        *g += 1;
                        (1, true)
                    }
                    Err(_) => (1, false),
                },
                _ => match timeout(patience, l.read()).await {
                    Ok(_g) => {
                        sleep(hold).await;
                        (2, true)
                    }
                    Err(_) => (2, false),
                },
            }
        }));
    }
    let mut got = [0u32; 3];
    let mut gave_up = [0u32; 3];
    for c in calls {
        let (kind, ok) = c.await.expect("no panic");
        if ok {
            got[kind] += 1;
        } else {
            gave_up[kind] += 1;
        }
    }
    assert!(
        gave_up.iter().all(|&n| n > 50),
        "too few cancellations: {gave_up:?}"
    );
    assert!(got.iter().all(|&n| n > 50), "too few acquisitions: {got:?}");
    // Usable: free for every mode, and the values are what the writers wrote.
    assert_eq!(*m.try_lock().expect("free"), got[0]);
    assert_eq!(*l.try_write().expect("free"), got[1]);
    let metrics = tt.metrics();
    let count = |name, mode, outcome| {
        metrics
            .value(
                "otelconc.lock.acquisitions",
                &side(name, mode, Some(outcome)),
            )
            .unwrap_or(0.0)
    };
    // The two try_ calls above are acquisitions too.
    assert_eq!(count("m", "exclusive", "ok"), f64::from(got[0] + 1));
    assert_eq!(count("l", "exclusive", "ok"), f64::from(got[1] + 1));
    assert_eq!(count("l", "shared", "ok"), f64::from(got[2]));
    assert_eq!(count("m", "exclusive", "cancelled"), f64::from(gave_up[0]));
    assert_eq!(count("l", "exclusive", "cancelled"), f64::from(gave_up[1]));
    assert_eq!(count("l", "shared", "cancelled"), f64::from(gave_up[2]));
    for (name, mode) in [("m", "exclusive"), ("l", "exclusive"), ("l", "shared")] {
        assert_eq!(
            metrics.value("otelconc.lock.waiter.count", &side(name, mode, None)),
            Some(0.0),
            "{name} {mode}"
        );
    }
}

#[tokio::test]
async fn get_mut_and_into_inner_work_once_owned_guards_are_gone() {
    let mut m = Mutex::new("m", vec![1]).expect("valid");
    m.get_mut().push(2);
    let m = Arc::new(m);
    let g = m.clone().lock_owned().await;
    tokio::spawn(async move { drop(g) })
        .await
        .expect("no panic");
    let mut m = Arc::try_unwrap(m).expect("the guard let go of the mutex");
    m.get_mut().push(3);
    assert_eq!(m.into_inner(), vec![1, 2, 3]);

    let l = Arc::new(RwLock::new("l", 1).expect("valid"));
    drop(l.clone().read_owned().await);
    drop(l.clone().write_owned().await.downgrade());
    let mut l = Arc::try_unwrap(l).expect("the guards let go of the lock");
    *l.get_mut() += 1;
    assert_eq!(l.into_inner(), 2);
}

#[tokio::test]
async fn mapped_and_downgraded_guards_keep_the_lock_until_they_drop() {
    let m = Mutex::new("pair", (1, 2)).expect("valid");
    let mut second = MutexGuard::map(m.lock().await, |p| &mut p.1);
    *second = 5;
    assert!(m.try_lock().is_err());
    drop(second);
    let back = MutexGuard::try_map(m.lock().await, |_| None::<&mut u8>).expect_err("no part");
    assert_eq!(*back, (1, 5));
    drop(back);

    let l = Arc::new(RwLock::new("pair", (1, 2)).expect("valid"));
    let first = RwLockWriteGuard::map(l.write().await, |p| &mut p.0);
    assert!(l.try_read().is_err());
    drop(first);
    let w = l.write().await;
    let r = w.downgrade();
    let second = RwLockReadGuard::map(r, |p| &p.1);
    assert!(l.try_read().is_ok(), "a downgraded guard shares");
    assert!(l.try_write().is_err(), "but still keeps writers out");
    drop(second);
    let owned = OwnedRwLockWriteGuard::map(l.clone().write_owned().await, |p| &mut p.1);
    assert!(l.try_read().is_err());
    drop(owned);
    assert_eq!(*l.read().await, (1, 2));

    let o = OwnedMutexGuard::map(
        Arc::new(Mutex::new("o", (3, 4)).expect("valid"))
            .lock_owned()
            .await,
        |p| &mut p.0,
    );
    assert_eq!(*o, 3);
}

/// A `map` whose function panics releases the lock, and its hold is counted as ended
/// (were it not, the hold would seem to go on for ever in the oldest-hold gauge).
#[tokio::test]
async fn a_panicking_map_releases_the_lock_and_ends_the_hold() {
    let tt = TestTelemetry::new();
    let m = Mutex::builder("m", 1)
        .telemetry(tt.telemetry())
        .build()
        .expect("valid");
    let l = RwLock::builder("l", 1)
        .telemetry(tt.telemetry())
        .build()
        .expect("valid");
    let g = m.lock().await;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        MutexGuard::map(g, |_| -> &mut u8 { panic!("no part") })
    }));
    assert!(r.is_err());
    let w = l.write().await;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RwLockWriteGuard::map(w, |_| -> &mut u8 { panic!("no part") })
    }));
    assert!(r.is_err());
    assert!(m.try_lock().is_ok());
    assert!(l.try_write().is_ok());
    no_hold_left(&tt, &["m", "l"]);
}

/// No poisoning: a task that panics while it holds a guard releases the lock, and its
/// hold ends (the oldest-hold gauge does not keep it).
#[tokio::test]
async fn a_task_that_panics_holding_a_guard_releases_the_lock() {
    let tt = TestTelemetry::new();
    let m = Arc::new(
        Mutex::builder("m", 0)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let l = Arc::new(
        RwLock::builder("l", 0)
            .telemetry(tt.telemetry())
            .build()
            .expect("valid"),
    );
    let task = tokio::spawn({
        let (m, l) = (m.clone(), l.clone());
        async move {
            let _g = m.lock_owned().await;
            let _w = l.write().await;
            panic!("the task fails while holding both");
        }
    });
    assert!(task.await.expect_err("it panicked").is_panic());
    assert_eq!(*m.try_lock().expect("released"), 0);
    assert_eq!(*l.try_write().expect("released"), 0);
    no_hold_left(&tt, &["m", "l"]);
}

#[test]
fn locks_and_guards_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Mutex<Vec<u8>>>();
    send_sync::<RwLock<Vec<u8>>>();
    send_sync::<MutexGuard<'static, Vec<u8>>>();
    send_sync::<OwnedMutexGuard<Vec<u8>>>();
    send_sync::<RwLockReadGuard<'static, Vec<u8>>>();
    send_sync::<RwLockWriteGuard<'static, Vec<u8>>>();
    send_sync::<OwnedRwLockWriteGuard<Vec<u8>>>();
}
