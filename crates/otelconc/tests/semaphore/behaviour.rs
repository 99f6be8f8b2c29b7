//! FIFO fairness, guards, cancellation, resizing, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otelconc::semaphore::{BuildError, ExceedsTotal, Semaphore, TooManyPermits, TryAcquireError};
use otelconc::telemetry::names::semaphore::ATTR_PERMIT_STATE;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{Rng, TestTelemetry, attr};
use tokio::task::yield_now;
use tokio::time::sleep;

use crate::{multi_thread, settle};

#[test]
fn zero_permits_and_overflow_are_refused_with_clear_errors() {
    let err = Semaphore::new("bad", 0).unwrap_err();
    assert_eq!(err, BuildError::ZeroPermits);
    assert!(err.to_string().contains("at least 1"), "{err}");
    let sem = Semaphore::new("big", u32::MAX - 1).expect("valid");
    let err = sem.add_permits(2).unwrap_err();
    assert!(
        matches!(err, TooManyPermits { total } if total == u64::from(u32::MAX) + 1),
        "{err}"
    );
    assert_eq!(sem.total_permits(), u32::MAX - 1);
    sem.add_permits(1).expect("fits exactly");
    assert_eq!(sem.total_permits(), u32::MAX);
}

#[tokio::test]
async fn more_than_the_total_fails_at_once_with_a_clear_error() {
    let sem = Semaphore::new("db", 4).expect("valid");
    let want = ExceedsTotal {
        requested: 5,
        total: 4,
    };
    assert_eq!(sem.acquire_many(5).await.unwrap_err(), want);
    assert_eq!(sem.acquire_many_owned(5).await.unwrap_err(), want);
    assert_eq!(
        sem.try_acquire_many(5).unwrap_err(),
        TryAcquireError::ExceedsTotal(want)
    );
    assert_eq!(
        sem.try_acquire_many_owned(5).unwrap_err(),
        TryAcquireError::ExceedsTotal(want)
    );
    let msg = want.to_string();
    assert!(
        msg.contains("5 permits") && msg.contains("4 in total"),
        "{msg}"
    );
    // Even while others hold permits, it fails rather than waits.
    let _held = sem.acquire_many(4).await.expect("all of them");
    assert_eq!(sem.acquire_many(5).await.unwrap_err(), want);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Unavailable);
    // n == 0 always passes.
    assert_eq!(
        sem.acquire_many(0)
            .await
            .expect("nothing asked")
            .num_permits(),
        0
    );
}

/// Every permit forgotten: the total is 0, so even one permit can never come, and
/// `acquire` fails at once as its docs say, while `n == 0` still passes; growing the
/// semaphore again makes it usable.
#[tokio::test]
async fn with_every_permit_forgotten_acquire_fails_at_once() {
    let sem = Semaphore::new("drained", 2).expect("valid");
    sem.try_acquire().expect("free").forget();
    assert_eq!(sem.forget_permits(5), 1);
    assert_eq!((sem.total_permits(), sem.available_permits()), (0, 0));
    let want = ExceedsTotal {
        requested: 1,
        total: 0,
    };
    assert_eq!(sem.acquire().await.unwrap_err(), want);
    assert_eq!(sem.acquire_owned().await.unwrap_err(), want);
    assert_eq!(
        sem.try_acquire().unwrap_err(),
        TryAcquireError::ExceedsTotal(want)
    );
    assert_eq!(
        sem.acquire_many(0)
            .await
            .expect("nothing asked")
            .num_permits(),
        0
    );
    sem.add_permits(1).expect("fits");
    assert_eq!(sem.acquire().await.expect("one again").num_permits(), 1);
}

#[tokio::test]
async fn guards_give_their_permits_back_on_drop() {
    let sem = Semaphore::new("db", 5).expect("valid");
    let a = sem.acquire_many(2).await.expect("free");
    let b = sem.try_acquire().expect("free");
    let c = sem.acquire_many_owned(2).await.expect("free");
    assert_eq!(sem.available_permits(), 0);
    drop(a);
    assert_eq!(sem.available_permits(), 2);
    tokio::spawn(async move {
        let _c = c;
    })
    .await
    .expect("no panic");
    assert_eq!(sem.available_permits(), 4);
    drop(b);
    let d = sem.try_acquire_many_owned(5).expect("all free");
    assert_eq!(d.num_permits(), 5);
    drop(d);
    assert_eq!(sem.available_permits(), 5);
    assert_eq!(sem.total_permits(), 5);
}

#[tokio::test]
async fn a_large_waiter_at_the_head_holds_back_smaller_ones() {
    let sem = Semaphore::new("fifo", 4).expect("valid");
    let held = sem.acquire_many(3).await.expect("free");
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, n) in [4u32, 1, 2].into_iter().enumerate() {
        let (sem, order) = (sem.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let p = sem.acquire_many(n).await.expect("within the total");
            order.lock().expect("lock").push(i);
            yield_now().await;
            drop(p);
        }));
        settle().await;
    }
    // One permit is free, and the waiter asking for 1 could use it, but the waiter
    // asking for 4 is first in line.
    assert!(order.lock().expect("lock").is_empty());
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Unavailable);
    drop(held);
    for t in tasks {
        t.await.expect("no panic");
    }
    assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2]);
    assert_eq!(sem.available_permits(), 4);
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_no_permits_behind_and_unblocks_the_queue() {
    let sem = Semaphore::new("cancel", 4).expect("valid");
    let held = sem.acquire_many(3).await.expect("free");
    let big = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire_many(4).await.map(|p| p.num_permits()) }
    });
    settle().await;
    let small = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire().await.map(|p| p.num_permits()) }
    });
    settle().await;
    assert!(!small.is_finished());
    big.abort();
    assert!(big.await.is_err());
    // The head left: the small waiter gets the free permit without anyone releasing.
    assert_eq!(small.await.expect("no panic"), Ok(1));
    drop(held);
    assert_eq!(sem.available_permits(), 4);
}

/// 1,000 tasks ask for random weights, hold them for random times, and give up at
/// random times (timeouts and aborts). Afterwards every permit is back.
#[tokio::test(start_paused = true)]
async fn a_thousand_random_cancellations_never_leak_a_permit() {
    let tt = TestTelemetry::new();
    let sem = Semaphore::builder("leak", 8)
        .telemetry(tt.telemetry())
        .build()
        .expect("valid");
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let granted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let n = 1 + rng.below(8) as u32;
        let give_up = Duration::from_millis(rng.below(200));
        let hold = Duration::from_millis(rng.below(20));
        let (sem, granted) = (sem.clone(), granted.clone());
        tasks.push(tokio::spawn(async move {
            if let Ok(Ok(p)) = tokio::time::timeout(give_up, sem.acquire_many(n)).await {
                granted.fetch_add(1, Ordering::Relaxed);
                sleep(hold).await;
                drop(p);
            }
        }));
        if rng.below(4) == 0 {
            yield_now().await;
        }
    }
    sleep(Duration::from_millis(50)).await;
    for t in tasks.iter().step_by(5) {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    assert_eq!(sem.available_permits(), 8);
    assert_eq!(sem.total_permits(), 8);
    // And the semaphore still works: all 8 at once.
    assert_eq!(sem.try_acquire_many(8).expect("all free").num_permits(), 8);
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "leak");
    assert_eq!(
        m.value(
            "otelconc.semaphore.waiter.count",
            std::slice::from_ref(&name)
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.permit.count",
            &[name.clone(), attr(ATTR_PERMIT_STATE, "used")]
        ),
        Some(0.0)
    );
    let cancelled = m
        .value(
            "otelconc.semaphore.acquisitions",
            &[name.clone(), attr(ATTR_OUTCOME, "cancelled")],
        )
        .expect("some waits were cancelled");
    assert!(cancelled > 0.0);
    assert!(granted.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn resize_at_runtime_without_stranding_a_waiter() {
    let sem = Semaphore::new("resize", 2).expect("valid");
    let held = sem.acquire_many(2).await.expect("free");
    // Too big for the total: fails at once; after growing, it waits and gets through.
    assert!(sem.acquire_many(3).await.is_err());
    sem.add_permits(1).expect("fits");
    assert_eq!((sem.total_permits(), sem.available_permits()), (3, 1));
    let waiter = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire_many(3).await.map(|p| p.num_permits()) }
    });
    settle().await;
    assert!(!waiter.is_finished());
    drop(held);
    assert_eq!(waiter.await.expect("no panic"), Ok(3));

    // forget_permits takes only free permits...
    let held = sem.acquire().await.expect("free");
    assert_eq!(sem.forget_permits(5), 2);
    assert_eq!((sem.total_permits(), sem.available_permits()), (1, 0));
    // ...and new requests above the new total fail at once.
    assert!(sem.acquire_many(2).await.is_err());
    drop(held);
    sem.add_permits(3).expect("fits");

    // The total never shrinks below a waiting request.
    let held = sem.acquire_many(2).await.expect("free");
    let waiter = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire_many(4).await.map(|p| p.num_permits()) }
    });
    settle().await;
    assert_eq!(sem.forget_permits(2), 0, "the waiter needs all 4");
    held.forget(); // would shrink to 2: the waiter needs 4, so they are given back
    assert_eq!(sem.total_permits(), 4);
    assert_eq!(waiter.await.expect("no panic"), Ok(4));
    // With nobody waiting, forgetting a held permit shrinks the total.
    sem.try_acquire().expect("free").forget();
    assert_eq!((sem.total_permits(), sem.available_permits()), (3, 3));
}

/// Threads take and give back random weights with `try_acquire` and `acquire` while
/// another grows and shrinks the semaphore: in the end every permit is accounted for.
#[test]
fn permits_are_conserved_under_threads_and_resizes() {
    let rt = multi_thread(4);
    rt.block_on(async {
        let sem = Semaphore::new("stress", 16).expect("valid");
        let mut tasks = Vec::new();
        for seed in 1..=8u64 {
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed * 0x9e37_79b9);
                for _ in 0..2_000 {
                    let n = 1 + rng.below(4) as u32;
                    if rng.below(2) == 0 {
                        if let Ok(p) = sem.try_acquire_many(n) {
                            yield_now().await;
                            drop(p);
                        }
                    } else if let Ok(Ok(p)) =
                        tokio::time::timeout(Duration::from_micros(50), sem.acquire_many(n)).await
                    {
                        yield_now().await;
                        drop(p);
                    }
                }
            }));
        }
        let resizer = tokio::spawn({
            let sem = sem.clone();
            async move {
                let (mut added, mut forgotten) = (0u64, 0u64);
                for k in 0..2_000u32 {
                    if k % 2 == 0 {
                        sem.add_permits(2).expect("fits");
                        added += 2;
                    } else {
                        forgotten += u64::from(sem.forget_permits(2));
                    }
                    yield_now().await;
                }
                (added, forgotten)
            }
        });
        for t in tasks {
            t.await.expect("no panic");
        }
        let (added, forgotten) = resizer.await.expect("no panic");
        let total = 16 + added - forgotten;
        assert_eq!(u64::from(sem.total_permits()), total);
        assert_eq!(u64::from(sem.available_permits()), total);
    });
}

/// Waiters that never time out, while another task shrinks and grows the semaphore
/// and finally shrinks it as far as it will go: every waiter still completes, because
/// the total never drops below a waiting request (a stranded waiter would hang here
/// and trip the timeout).
#[test]
fn shrinking_never_strands_a_waiter() {
    let rt = multi_thread(2);
    rt.block_on(async {
        let sem = Semaphore::new("strand", 8).expect("valid");
        let mut tasks = Vec::new();
        for seed in 1..=8u64 {
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed * 0x51_7cc1_b727);
                let (mut ok, mut refused) = (0u32, 0u32);
                for _ in 0..300 {
                    let n = 1 + rng.below(4) as u32;
                    match sem.acquire_many(n).await {
                        Ok(p) => {
                            ok += 1;
                            yield_now().await;
                            if rng.below(10) == 0 {
                                p.forget(); // shrinks too, unless a waiter needs them
                            }
                        }
                        Err(_) => refused += 1, // above the total at the time of the call
                    }
                }
                (ok, refused)
            }));
        }
        let resizer = tokio::spawn({
            let sem = sem.clone();
            async move {
                for k in 0..300u32 {
                    if k % 2 == 0 {
                        let _ = sem.forget_permits(3);
                    } else {
                        sem.add_permits(4).expect("fits");
                    }
                    yield_now().await;
                }
                // Then shrink as far as it goes, again and again, while they wait.
                for _ in 0..3_000 {
                    let _ = sem.forget_permits(u32::MAX);
                    yield_now().await;
                }
            }
        });
        let all = async {
            let mut served = 0;
            for t in tasks {
                served += t.await.expect("no panic").0;
            }
            resizer.await.expect("no panic");
            served
        };
        let served = tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("a waiter was stranded");
        assert!(served > 0);
        assert_eq!(sem.available_permits(), sem.total_permits());
        let _ = sem.forget_permits(u32::MAX);
        assert_eq!(sem.total_permits(), 0);
    });
}

#[tokio::test]
async fn a_panic_while_holding_permits_gives_them_back() {
    let sem = Semaphore::new("panicky", 3).expect("valid");
    let task = tokio::spawn({
        let sem = sem.clone();
        async move {
            let _p = sem.acquire_many_owned(3).await.expect("free");
            panic!("user code failed while holding the permits");
        }
    });
    assert!(task.await.expect_err("the task panicked").is_panic());
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.try_acquire_many(3).expect("all back").num_permits(), 3);
}
