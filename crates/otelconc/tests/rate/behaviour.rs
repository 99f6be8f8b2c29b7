//! What a user of the limiter relies on: exact admission counts on tokio's paused
//! clock, waits, rate changes, cancellation, reservations, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otelconc::rate::{BuildError, Clock, ExceedsBurst, Quota, Rate, RateLimiter, TryAcquireError};
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{Rng, TestTelemetry, attr};
use tokio::time::{Instant, advance, sleep};

use super::{drain, limiter, timed_acquire};

#[tokio::test(start_paused = true)]
async fn try_acquire_admits_rate_times_ten_plus_burst_over_ten_simulated_seconds() {
    for (rate, burst) in [(100.0, 10), (1.0, 1), (50.0, 200), (1000.0, 1)] {
        let l = limiter(rate, burst);
        let mut admitted = 0u64;
        // Poll every millisecond for 10 s, taking all that is there each time.
        for _ in 0..10_000 {
            admitted += drain(&l);
            advance(Duration::from_millis(1)).await;
        }
        admitted += drain(&l);
        let expected = rate as u64 * 10 + u64::from(burst);
        assert!(
            admitted.abs_diff(expected) <= 1,
            "rate {rate} burst {burst}: admitted {admitted}, expected {expected}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn acquire_admits_rate_times_ten_plus_burst_over_ten_simulated_seconds() {
    let l = limiter(20.0, 5);
    let admitted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (l, admitted) = (l.clone(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                l.acquire().await.expect("one token");
                if start.elapsed() > Duration::from_secs(10) {
                    break;
                }
                admitted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("no panic");
    }
    let admitted = admitted.load(Ordering::Relaxed);
    assert!(admitted.abs_diff(20 * 10 + 5) <= 1, "admitted {admitted}");
}

#[tokio::test(start_paused = true)]
async fn burst_after_idle_never_exceeds_the_burst() {
    let l = limiter(100.0, 7);
    assert_eq!(drain(&l), 7);
    advance(Duration::from_secs(3600)).await;
    assert_eq!(l.tokens(), 7.0);
    assert_eq!(drain(&l), 7);
    // Rate changes while idle do not let more through either.
    advance(Duration::from_secs(60)).await;
    l.set_rate(Rate::per_second(1.0)).expect("valid");
    l.set_rate(Rate::Unlimited).expect("valid");
    l.set_rate(Rate::per_second(1000.0)).expect("valid");
    advance(Duration::from_secs(60)).await;
    assert_eq!(drain(&l), 7);
    // A bigger burst later fills up to the new burst, not beyond.
    l.set_burst(9).expect("valid");
    advance(Duration::from_secs(60)).await;
    assert_eq!(drain(&l), 9);
}

#[tokio::test(start_paused = true)]
async fn set_rate_mid_wait_retimes_the_waiters() {
    let l = limiter(1.0, 1);
    drain(&l);
    let waiter = timed_acquire(&l);
    advance(Duration::from_millis(10)).await;
    // 990 ms were left at 1/s; at 10/s that is 99 ms.
    l.set_rate(Rate::per_second(10.0)).expect("valid");
    assert_eq!(waiter.await.expect("no panic"), Duration::from_millis(109));

    // Lowering the rate makes waiters wait longer.
    drain(&l);
    let waiter = timed_acquire(&l);
    advance(Duration::from_millis(50)).await;
    l.set_rate(Rate::per_second(1.0)).expect("valid");
    assert_eq!(waiter.await.expect("no panic"), Duration::from_millis(550));
}

#[tokio::test(start_paused = true)]
async fn unlimited_releases_every_waiter_at_once() {
    let l = limiter(1.0, 2);
    drain(&l);
    let start = Instant::now();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move { l.acquire_many(2).await })
        })
        .collect();
    advance(Duration::from_millis(5)).await;
    l.set_rate(Rate::Unlimited).expect("valid");
    for w in waiters {
        w.await.expect("no panic").expect("within the burst");
    }
    assert_eq!(start.elapsed(), Duration::from_millis(5));
    assert!(l.try_acquire_many(2).is_ok());
    assert_eq!(l.tokens(), f64::INFINITY);
    // Back to a limit: a full bucket.
    l.set_rate(Rate::per_second(1.0)).expect("valid");
    assert_eq!(drain(&l), 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    let l = limiter(10.0, 3);
    drain(&l);
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, n) in [3u32, 1, 2, 1].into_iter().enumerate() {
        let (l, order) = (l.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            l.acquire_many(n).await.expect("within the burst");
            order.lock().expect("lock").push(i);
        }));
        tokio::task::yield_now().await; // each starts waiting in turn
    }
    // While they wait, non-blocking calls do not jump the queue.
    advance(Duration::from_millis(100)).await;
    assert!(l.try_acquire().is_err());
    for t in tasks {
        t.await.expect("no panic");
    }
    assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn more_than_the_burst_fails_at_once_with_a_clear_error() {
    let l = limiter(1.0, 4);
    let start = Instant::now();
    let want = ExceedsBurst {
        requested: 5,
        burst: 4,
    };
    assert_eq!(l.acquire_many(5).await, Err(want));
    assert_eq!(l.reserve_many(5).unwrap_err(), want);
    assert_eq!(
        l.try_acquire_many(5),
        Err(TryAcquireError::ExceedsBurst(want))
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    let msg = want.to_string();
    assert!(msg.contains('5') && msg.contains("burst is 4"), "{msg}");
    // Nothing was taken.
    assert_eq!(l.tokens(), 4.0);
    assert!(l.try_acquire_many(0).is_ok());
}

#[test]
fn bad_rates_and_bursts_are_refused_at_construction() {
    // A quota is checked where it is made, both ways of writing it alike.
    let build = |r: Rate, b: u32| {
        let checked = Quota::new(r, b).map(|_| ());
        assert_eq!(r.burst(b).map(|_| ()), checked);
        checked
    };
    assert_eq!(
        build(Rate::per_second(-1.0), 1),
        Err(BuildError::RateNotPositive(-1.0))
    );
    assert_eq!(
        build(Rate::per_second(0.0), 1),
        Err(BuildError::RateNotPositive(0.0))
    );
    assert_eq!(
        build(Rate::per_second(f64::NAN), 1),
        Err(BuildError::RateNan)
    );
    assert_eq!(
        build(Rate::per_second(f64::INFINITY), 1),
        Err(BuildError::RateInfinite)
    );
    assert_eq!(
        build(Rate::per_second(f64::NEG_INFINITY), 1),
        Err(BuildError::RateInfinite)
    );
    assert_eq!(
        build(Rate::per_second(2e9), 1),
        Err(BuildError::RateTooHigh(2e9))
    );
    assert_eq!(build(Rate::per_second(1.0), 0), Err(BuildError::BurstZero));
    assert_eq!(build(Rate::Unlimited, 0), Err(BuildError::BurstZero));
    assert!(matches!(
        build(Rate::per_second(1e-6), 1_000),
        Err(BuildError::WindowTooLong { .. })
    ));
    assert_eq!(build(Rate::Unlimited, 1), Ok(()));
    assert_eq!(build(Rate::per_second(1e9), u32::MAX), Ok(()));
    let msg = BuildError::RateInfinite.to_string();
    assert!(msg.contains("Rate::Unlimited"), "{msg}");
    // Runtime changes are checked the same way and leave the limiter as it was.
    let l = RateLimiter::new("bad", Rate::per_second(5.0).burst(2).expect("valid"));
    assert_eq!(
        l.set_rate(Rate::per_second(f64::NAN)),
        Err(BuildError::RateNan)
    );
    assert_eq!(l.set_burst(0), Err(BuildError::BurstZero));
    assert_eq!((l.rate(), l.burst()), (Rate::per_second(5.0), 2));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_gives_its_tokens_back_and_the_queue_moves_up() {
    let l = limiter(10.0, 5);
    drain(&l);
    // First in line: 5 tokens (due in 500 ms); second: 1 token (due in 600 ms).
    let first = tokio::spawn({
        let l = l.clone();
        async move { l.acquire_many(5).await }
    });
    tokio::task::yield_now().await;
    let second = timed_acquire(&l);
    tokio::task::yield_now().await;
    assert!((l.tokens() + 6.0).abs() < 1e-9, "tokens {}", l.tokens());
    advance(Duration::from_millis(20)).await;
    first.abort();
    assert!(first.await.is_err());
    // The 5 tokens came back: the second waiter is due 100 ms after start.
    assert_eq!(second.await.expect("no panic"), Duration::from_millis(100));
    assert!(l.tokens().abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn reservations_report_their_delay_and_cancel() {
    let l = limiter(10.0, 2);
    let now = l.reserve_many(2).expect("within the burst");
    assert_eq!(now.delay(), Duration::ZERO);
    drop(now); // committed
    assert!(l.tokens().abs() < 1e-9);
    let later = l.reserve_many(1).expect("within the burst");
    assert_eq!(later.delay(), Duration::from_millis(100));
    let latest = l.reserve_many(2).expect("within the burst");
    assert_eq!(latest.delay(), Duration::from_millis(300));
    later.cancel();
    assert_eq!(latest.delay(), Duration::from_millis(200));
    l.set_rate(Rate::per_second(20.0)).expect("valid");
    assert_eq!(latest.delay(), Duration::from_millis(100));
    let start = Instant::now();
    latest.wait().await;
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert!(l.try_acquire().is_err());
}

/// A reservation owns its share of the limiter: it can move into another task, be
/// awaited or cancelled there, and outlive every handle of the limiter.
#[tokio::test(start_paused = true)]
async fn a_reservation_moves_into_another_task() {
    let l = limiter(10.0, 1);
    drain(&l);
    let r = l.reserve().expect("within the burst");
    assert_eq!(r.delay(), Duration::from_millis(100));
    let start = Instant::now();
    let waited = tokio::spawn(async move {
        r.wait().await;
        start.elapsed()
    });
    assert_eq!(waited.await.expect("no panic"), Duration::from_millis(100));
    assert!(l.tokens().abs() < 1e-9, "tokens {}", l.tokens());

    // Cancelled in another task: the token comes back.
    let r = l.reserve_many(1).expect("within the burst");
    tokio::spawn(async move { r.cancel() })
        .await
        .expect("no panic");
    assert!(l.tokens().abs() < 1e-9, "tokens {}", l.tokens());

    // The last handle dropped while a reservation waits: the wait still completes.
    let r = l.reserve().expect("within the burst");
    drop(l);
    let start = Instant::now();
    tokio::spawn(r.wait()).await.expect("no panic");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

/// A quota reads as a rate with a burst: whole or fractional events per second, or one
/// event every period; the same numbers make the same limiter.
#[tokio::test(start_paused = true)]
async fn quotas_read_as_a_rate_with_a_burst() {
    let q = Rate::per_second(4).burst(2).expect("valid");
    assert_eq!((q.rate(), q.burst()), (Rate::PerSecond(4.0), 2));
    assert_eq!(Rate::every(Duration::from_millis(250)).burst(2), Ok(q));
    assert_eq!(Quota::new(Rate::per_second(4.0), 2), Ok(q));
    assert_eq!(Rate::every(Duration::from_secs(2)), Rate::per_second(0.5));
    assert_eq!(
        Rate::every(Duration::ZERO).burst(1),
        Err(BuildError::RateInfinite)
    );
    let l = RateLimiter::builder("quota", q)
        .clock(Clock::tokio())
        .build();
    assert_eq!((l.rate(), l.burst()), (Rate::per_second(4), 2));
    assert_eq!(drain(&l), 2);
    advance(Duration::from_millis(249)).await;
    assert!(l.try_acquire().is_err());
    advance(Duration::from_millis(1)).await;
    assert!(l.try_acquire().is_ok());
}

/// The first sequence the property test once flagged, step by step: a cancel ahead
/// of a reservation makes it due at that very instant (not at the due time it had),
/// and the rate changes after it keep the tokens, so the next token comes exactly one
/// period (at the new rate) after the bucket is drained.
#[tokio::test(start_paused = true)]
async fn a_cancel_ahead_makes_a_reservation_due_at_once_and_rate_changes_grant_nothing_early() {
    let ms = Duration::from_millis;
    let l = limiter(1.0, 1);
    l.set_burst(3).expect("valid");
    assert!((l.tokens() - 1.0).abs() < 1e-9, "tokens {}", l.tokens());
    let first = l.reserve_many(2).expect("within the burst");
    let second = l.reserve_many(1).expect("within the burst");
    let third = l.reserve_many(1).expect("within the burst");
    assert_eq!(
        (first.delay(), second.delay(), third.delay()),
        (ms(1000), ms(2000), ms(3000))
    );
    l.set_rate(Rate::per_second(2.0)).expect("valid");
    assert_eq!(
        (first.delay(), second.delay(), third.delay()),
        (ms(500), ms(1000), ms(1500))
    );
    assert!((l.tokens() + 3.0).abs() < 1e-9, "tokens {}", l.tokens());
    // The 2 tokens given back cover the second reservation: it is granted now.
    first.cancel();
    assert_eq!((second.delay(), third.delay()), (ms(0), ms(500)));
    assert!((l.tokens() + 1.0).abs() < 1e-9, "tokens {}", l.tokens());
    // Already granted: cancelling it gives nothing back.
    second.cancel();
    assert!((l.tokens() + 1.0).abs() < 1e-9, "tokens {}", l.tokens());
    l.set_rate(Rate::per_second(1000.0)).expect("valid");
    assert_eq!(third.delay(), ms(1));
    assert!(l.try_acquire().is_err());
    advance(ms(4)).await;
    assert_eq!(third.delay(), ms(0));
    drop(third);
    assert!((l.tokens() - 3.0).abs() < 1e-9, "tokens {}", l.tokens());
    l.set_rate(Rate::per_second(1.0)).expect("valid");
    assert!((l.tokens() - 3.0).abs() < 1e-9, "tokens {}", l.tokens());
    assert_eq!(l.reserve_many(3).expect("within the burst").delay(), ms(0));
    assert!(l.try_acquire().is_err());
    advance(ms(999)).await;
    assert!(l.try_acquire().is_err());
    advance(ms(1)).await;
    assert!(l.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn execute_waits_then_runs() {
    let l = limiter(2.0, 1);
    let start = Instant::now();
    let a = l.execute(|| async { 1 }).await;
    let b = l.execute(|| async { 2 }).await;
    assert_eq!((a, b), (1, 2));
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

/// 1,000 tasks wait for random amounts and are cancelled at random times, in random
/// order; none completes (the rate is one token an hour). Afterwards the bucket holds
/// exactly what an untouched twin holds: no token leaked, none invented.
#[tokio::test(start_paused = true)]
async fn a_thousand_random_cancellations_leak_no_token() {
    let tt = TestTelemetry::new();
    let l = RateLimiter::builder(
        "cancel",
        Rate::per_second(1.0 / 3600.0)
            .burst(10)
            .expect("valid quota"),
    )
    .clock(Clock::tokio())
    .telemetry(tt.telemetry())
    .build();
    let twin = limiter(1.0 / 3600.0, 10);
    l.try_acquire_many(10).expect("full bucket");
    twin.try_acquire_many(10).expect("full bucket");
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut tasks = Vec::new();
    let mut asked = 0u64;
    for _ in 0..1000 {
        let n = 1 + rng.below(10) as u32;
        asked += u64::from(n);
        let cancel_after = Duration::from_micros(rng.below(1_000_000));
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = l.acquire_many(n) => panic!("no wait can complete"),
                () = sleep(cancel_after) => {}
            }
        }));
        if rng.below(3) == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Some are aborted instead of timing out, at a random point.
    for t in tasks.iter().step_by(7) {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    assert!(
        (l.tokens() - twin.tokens()).abs() < 1e-6,
        "{} vs {}",
        l.tokens(),
        twin.tokens()
    );
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "cancel");
    assert_eq!(
        m.value("otelconc.rate.waiter.count", std::slice::from_ref(&name)),
        Some(0.0)
    );
    // Every wait was either cancelled (tokens given back) or aborted before it started
    // (nothing taken); none was admitted.
    assert_eq!(
        m.value(
            "otelconc.rate.tokens",
            &[name.clone(), attr(ATTR_OUTCOME, "ok")]
        ),
        Some(10.0)
    );
    let cancelled = m
        .value(
            "otelconc.rate.tokens",
            &[name.clone(), attr(ATTR_OUTCOME, "cancelled")],
        )
        .unwrap_or(0.0);
    assert!(cancelled > 0.0 && cancelled <= asked as f64);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_executed_work_leaves_the_limiter_consistent() {
    let tt = TestTelemetry::new();
    let l = RateLimiter::builder(
        "panicky",
        Rate::per_second(10.0).burst(1).expect("valid quota"),
    )
    .clock(Clock::tokio())
    .telemetry(tt.telemetry())
    .build();
    let task = tokio::spawn({
        let l = l.clone();
        async move {
            l.execute(|| async { panic!("user code failed") }).await;
        }
    });
    assert!(task.await.expect_err("the task panicked").is_panic());
    // The token was spent (the work started); nothing else is affected.
    assert!(l.tokens().abs() < 1e-9);
    let start = Instant::now();
    assert_eq!(l.execute(|| async { 7 }).await, 7);
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let m = tt.metrics();
    assert_eq!(
        m.value("otelconc.rate.waiter.count", &[attr(ATTR_NAME, "panicky")]),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "otelconc.rate.acquisitions",
            &[attr(ATTR_NAME, "panicky"), attr(ATTR_OUTCOME, "ok")]
        ),
        Some(2.0)
    );
}

/// Edges of the quota the docs promise and nothing else checks: a runtime change that
/// would make the window too long is refused like a quota (and changes nothing); a wait
/// for more than a burst lowered meanwhile still completes; `n == 0` passes even while
/// the bucket is in debt; with no limit the burst still bounds `n`.
#[tokio::test(start_paused = true)]
async fn runtime_changes_keep_the_quotas_rules_and_the_edges_hold() {
    let l = limiter(0.001, 1); // one token every 1000 s
    assert!(matches!(
        l.set_burst(100_000), // 1e8 s of tokens: over the ~208-day window
        Err(BuildError::WindowTooLong { .. })
    ));
    let l2 = limiter(1.0, 1_000);
    assert!(matches!(
        l2.set_rate(Rate::per_second(1e-6)),
        Err(BuildError::WindowTooLong { .. })
    ));
    assert_eq!((l.burst(), l2.rate()), (1, Rate::per_second(1.0)));

    let l = limiter(10.0, 5);
    drain(&l);
    let start = Instant::now();
    let big = tokio::spawn({
        let l = l.clone();
        async move { l.acquire_many(5).await.map(|()| start.elapsed()) }
    });
    tokio::task::yield_now().await;
    assert!(l.tokens() < 0.0, "the wait holds a debt");
    assert!(l.try_acquire_many(0).is_ok(), "n == 0 always passes");
    l.set_burst(2).expect("valid");
    assert_eq!(
        big.await.expect("no panic"),
        Ok(Duration::from_millis(500)),
        "a wait above the new burst still completes, on time"
    );
    assert_eq!(
        l.acquire_many(3).await,
        Err(ExceedsBurst {
            requested: 3,
            burst: 2
        }),
        "new calls are checked against the new burst"
    );

    let free = RateLimiter::builder("free", Rate::Unlimited.burst(3).expect("valid"))
        .clock(Clock::tokio())
        .build();
    for _ in 0..100 {
        free.try_acquire_many(3).expect("no limit");
    }
    assert_eq!(
        free.try_acquire_many(4),
        Err(TryAcquireError::ExceedsBurst(ExceedsBurst {
            requested: 4,
            burst: 3
        }))
    );
}

/// `RateLimited::retry_after` is how long until the tokens asked for are in the bucket,
/// if nobody else takes them: exact on the paused clock, counting `n` tokens and any
/// debt that pending reservations hold.
#[tokio::test(start_paused = true)]
async fn retry_after_is_the_time_until_the_tokens_asked_for_are_there() {
    let ms = Duration::from_millis;
    let l = limiter(10.0, 5);
    drain(&l);
    let wait = |n: u32| match l.try_acquire_many(n) {
        Err(TryAcquireError::RateLimited(e)) => e.retry_after(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(wait(3), ms(300));
    assert_eq!(l.try_acquire().unwrap_err().retry_after(), ms(100));
    advance(ms(299)).await;
    assert_eq!(wait(3), ms(1));
    advance(ms(1)).await;
    l.try_acquire_many(3).expect("due now");
    // A reservation of 2 puts the bucket in debt: 1 token now takes 300 ms.
    let r = l.reserve_many(2).expect("within the burst");
    assert_eq!(r.delay(), ms(200));
    assert_eq!(wait(1), ms(300));
    r.cancel();
    assert_eq!(wait(1), ms(100));
}
