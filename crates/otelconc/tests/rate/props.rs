//! Properties of the rate limiter: for random sequences of operations the tokens
//! admitted never exceed what a bucket of that rate and burst allows, on tokio's paused
//! clock; and the lock-free state holds up under threads hammering it on the real clock.
//!
//! The property test is deterministic: it runs [`CASES`] cases drawn from the fixed
//! seed [`SEED`] (after the seeds saved in `props.proptest-regressions`, beside this
//! file), so a run fails only when the code changed, never by the luck of the draw. To
//! explore new cases locally:
//!
//! ```text
//! OTELCONC_PROPTEST_SEED=random PROPTEST_CASES=1024 cargo test -p otelconc --test rate -- props::
//! OTELCONC_PROPTEST_SEED=12345 cargo test -p otelconc --test rate -- props::   # one given seed
//! ```
//!
//! `random` draws a new seed each run; a failure found so is shrunk, printed, and its
//! seed saved to the regressions file, which every later run replays first (commit the
//! line it adds). `PROPTEST_CASES` changes the number of cases.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otelconc::rate::{Clock, Rate, RateLimiter, Reservation};
use proptest::prelude::*;
use proptest::test_runner::{FailurePersistence, FileFailurePersistence, RngSeed};
use tokio::time::Instant;

/// The seed of the cases CI runs (see the module docs for exploring others).
const SEED: u64 = 0x0007_e1c0_5eed_2026;
/// The number of cases CI runs.
const CASES: u32 = 128;

/// [`CASES`] cases from [`SEED`], unless `OTELCONC_PROPTEST_SEED` (`random` or a
/// number) or `PROPTEST_CASES` says otherwise; failures are saved to (and replayed
/// from) `props.proptest-regressions` beside this file.
fn config() -> ProptestConfig {
    // Reads the PROPTEST_* variables.
    let base = ProptestConfig::default();
    // proptest's default location is found from the nearest folder holding a `main.rs`
    // (this one: `tests/rate/`), then a `proptest-regressions/` folder beside it; name
    // the file beside this one instead. PROPTEST_DISABLE_FAILURE_PERSISTENCE still
    // turns it off.
    let failure_persistence = base.failure_persistence.is_some().then(|| {
        Box::new(FileFailurePersistence::WithSource("proptest-regressions"))
            as Box<dyn FailurePersistence>
    });
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        base.cases
    } else {
        CASES
    };
    let rng_seed = match std::env::var("OTELCONC_PROPTEST_SEED").as_deref() {
        Err(_) | Ok("") => RngSeed::Fixed(SEED),
        Ok("random") => RngSeed::Random,
        Ok(n) => RngSeed::Fixed(n.parse().unwrap_or_else(|_| {
            panic!("OTELCONC_PROPTEST_SEED={n}: expected `random` or a number (u64)")
        })),
    };
    ProptestConfig {
        cases,
        rng_seed,
        failure_persistence,
        ..base
    }
}

/// Rates whose token period is a whole number of milliseconds, so the limiter's
/// nanosecond rounding plays no part.
const RATES: [f64; 9] = [1.0, 2.0, 4.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0];

#[derive(Debug, Clone)]
enum Op {
    Try(u32),
    Acquire(u32),
    Abort(usize),
    Reserve(u32),
    CancelReservation(usize),
    SetRate(usize),
    SetBurst(u32),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..6).prop_map(Op::Try),
        3 => (1u32..6).prop_map(Op::Acquire),
        1 => any::<usize>().prop_map(Op::Abort),
        2 => (1u32..6).prop_map(Op::Reserve),
        2 => any::<usize>().prop_map(Op::CancelReservation),
        1 => (0..RATES.len()).prop_map(Op::SetRate),
        1 => (1u32..8).prop_map(Op::SetBurst),
        3 => (0u64..40).prop_map(Op::Advance),
    ]
}

struct Held {
    r: Reservation,
    n: u32,
    due: Instant,
}

/// Keeps each held reservation's due time current. Rate changes and cancellations
/// ahead of it move it; once due it no longer moves. A reservation found due at `now`
/// but recorded as due later was moved up to `now` by a cancellation just now (the
/// tokens given back covered it): its tokens are granted at `now`, not at the due
/// time it had before. Called after every operation and every millisecond of an
/// advance, so no move goes unseen.
fn track_dues(held: &mut [Held]) {
    let now = Instant::now();
    for h in held {
        let d = h.r.delay();
        h.due = if d.is_zero() { h.due.min(now) } else { now + d };
    }
}

/// Tokens granted, at the time they were granted (waiters: when they woke, at most 1 ms
/// after they were due).
type Grants = Arc<Mutex<Vec<(Instant, u32, bool)>>>;

async fn run(initial_rate: usize, initial_burst: u32, ops: Vec<Op>) -> Result<(), String> {
    let start = Instant::now();
    let l = RateLimiter::builder(
        "prop",
        Rate::per_second(RATES[initial_rate])
            .burst(initial_burst)
            .map_err(|e| e.to_string())?,
    )
    .clock(Clock::tokio())
    .build();
    let grants: Grants = Arc::default();
    let mut rates = vec![(start, RATES[initial_rate])];
    let mut max_burst = initial_burst;
    let mut tasks = Vec::new();
    let mut held: Vec<Held> = Vec::new();
    for op in ops {
        let now = Instant::now();
        match op {
            Op::Try(n) => {
                if l.try_acquire_many(n).is_ok() {
                    grants.lock().unwrap().push((now, n, false));
                }
            }
            Op::Acquire(n) => {
                let (l, grants) = (l.clone(), grants.clone());
                tasks.push(tokio::spawn(async move {
                    if l.acquire_many(n).await.is_ok() {
                        grants.lock().unwrap().push((Instant::now(), n, true));
                    }
                }));
            }
            Op::Abort(i) => {
                if !tasks.is_empty() {
                    tasks[i % tasks.len()].abort();
                }
            }
            Op::Reserve(n) => {
                if let Ok(r) = l.reserve_many(n) {
                    let due = now + r.delay();
                    held.push(Held { r, n, due });
                }
            }
            Op::CancelReservation(i) => {
                if !held.is_empty() {
                    let h = held.remove(i % held.len());
                    let before = l.tokens();
                    h.r.cancel();
                    let back = l.tokens() - before;
                    if back <= 1e-9 {
                        // Not given back: the tokens were the holder's from its due time.
                        grants.lock().unwrap().push((h.due, h.n, false));
                    } else if back < f64::from(h.n) - 1e-9
                        && (l.tokens() - f64::from(l.burst())).abs() > 1e-9
                    {
                        // Less than all of them only when the bucket is full.
                        return Err(format!("partial give-back {back} of {}", h.n));
                    }
                }
            }
            Op::SetRate(i) => {
                l.set_rate(Rate::per_second(RATES[i]))
                    .map_err(|e| e.to_string())?;
                rates.push((now, RATES[i]));
            }
            Op::SetBurst(b) => {
                l.set_burst(b).map_err(|e| e.to_string())?;
                max_burst = max_burst.max(b);
            }
            Op::Advance(ms) => {
                for _ in 0..ms {
                    tokio::time::advance(Duration::from_millis(1)).await;
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    track_dues(&mut held);
                }
            }
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        track_dues(&mut held);
    }
    let end = Instant::now();
    for h in held.drain(..) {
        if h.due <= end {
            grants.lock().unwrap().push((h.due, h.n, false));
        }
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut g = grants.lock().unwrap().clone();
    g.sort_by_key(|(t, _, _)| *t);
    // Tokens the rate lets through between a and b (seconds since start).
    let integral = |a: Instant, b: Instant| -> f64 {
        let mut total = 0.0;
        for (k, (from, r)) in rates.iter().enumerate() {
            let to = rates.get(k + 1).map_or(end.max(b), |(t, _)| *t);
            let lo = (*from).max(a);
            let hi = to.min(b);
            if hi > lo {
                total += r * (hi - lo).as_secs_f64();
            }
        }
        total
    };
    for i in 0..g.len() {
        let mut sum = 0u64;
        for j in i..g.len() {
            sum += u64::from(g[j].1);
            // A waiter's recorded time is up to 1 ms after it was really granted.
            let from = if g[i..=j].iter().any(|x| x.2) {
                g[i].0
                    .checked_sub(Duration::from_millis(1))
                    .unwrap_or(start)
                    .max(start)
            } else {
                g[i].0
            };
            let allowed = f64::from(max_burst) + integral(from, g[j].0) + 1e-6;
            if sum as f64 > allowed {
                return Err(format!(
                    "{sum} tokens granted in [{:?}, {:?}], at most {allowed} allowed; grants {g:?}; rates {rates:?}",
                    g[i].0 - start,
                    g[j].0 - start
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn admitted_tokens_never_exceed_what_the_bucket_allows(
        rate in 0..RATES.len(),
        burst in 1u32..8,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let result = rt.block_on(run(rate, burst, ops));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

/// Threads hammer `try_acquire` on the real (monotonic) clock while others change the
/// rate and burst and reserve-then-cancel: the grants never exceed the largest burst
/// plus the highest rate times the elapsed time.
#[test]
fn lock_free_state_holds_under_threads_and_rate_changes() {
    const R_LOW: f64 = 500.0;
    const R_HIGH: f64 = 2000.0;
    const B_MAX: u32 = 100;
    let started = std::time::Instant::now();
    let l = RateLimiter::new("stress", Rate::per_second(R_HIGH).burst(B_MAX).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let granted = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..3 {
        let (l, granted, stop) = (l.clone(), granted.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..100 {
                    if l.try_acquire().is_ok() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let changer = {
        let (l, stop) = (l.clone(), stop.clone());
        std::thread::spawn(move || {
            let changes = 1_000u64;
            for k in 0..changes {
                let r = if k % 2 == 0 { R_LOW } else { R_HIGH };
                l.set_rate(Rate::per_second(r)).unwrap();
                l.set_burst(if k % 3 == 0 { B_MAX / 2 } else { B_MAX })
                    .unwrap();
                std::thread::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
            changes * 2
        })
    };
    let reserver = {
        let (l, stop) = (l.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = l.reserve_many(3) {
                    r.cancel();
                }
            }
        })
    };
    let changes = changer.join().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    reserver.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64() + 0.001;
    let granted = granted.load(Ordering::Relaxed);
    let allowed = f64::from(B_MAX) + R_HIGH * elapsed;
    assert!(
        granted as f64 <= allowed,
        "{granted} granted in {elapsed:.3} s, at most {allowed:.0} allowed ({changes} rate changes)"
    );
    assert!(granted > 0);
}

/// The seeds saved in `props.proptest-regressions` are found, so the property test
/// replays them before its own cases (unless persistence was turned off).
#[test]
fn the_saved_failure_seeds_are_found() {
    match config().failure_persistence {
        Some(p) => assert_eq!(
            p.load_persisted_failures2(Some(file!())).len(),
            2,
            "the seeds saved in props.proptest-regressions"
        ),
        None => assert!(std::env::var_os("PROPTEST_DISABLE_FAILURE_PERSISTENCE").is_some()),
    }
}

/// Runs one sequence as the property test does.
fn replay(rate: usize, burst: u32, ops: Vec<Op>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(run(rate, burst, ops))
}

// Two sequences random seeds once failed on (the regressions file stores seeds, not
// sequences, and these seeds were not kept). Both are a reservation moved up to "due
// now" by a cancel ahead of it, which the test used to count as granted at the later
// due time it had before, making a later window look over-full.

#[test]
fn regression_cancel_ahead_then_rate_changes() {
    use Op::*;
    let ops = vec![
        SetBurst(3),
        Reserve(2),
        Reserve(1),
        Reserve(1),
        SetRate(1),
        CancelReservation(14629710489265958553),
        CancelReservation(0),
        SetRate(8),
        Try(1),
        Advance(4),
        SetRate(0),
        Reserve(3),
    ];
    replay(0, 1, ops).unwrap();
}

#[test]
fn regression_aborted_wait_ahead_then_rate_changes() {
    use Op::*;
    let ops = vec![
        Reserve(2),
        Acquire(5),
        Reserve(1),
        Abort(0),
        SetRate(7),
        Advance(30),
        CancelReservation(0),
        SetRate(0),
        Try(3),
        CancelReservation(0),
        Try(1),
        Try(2),
    ];
    replay(1, 6, ops).unwrap();
}
