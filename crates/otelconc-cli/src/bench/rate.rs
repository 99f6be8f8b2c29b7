//! Suite `rate`: the rate limiter's non-blocking check against governor's `check()`, on
//! the grant path (an effectively unlimited quota) and the denial path (an empty
//! bucket), from one task and from two tasks at once.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter as Governor};
use otelconc::rate::{Rate, RateLimiter};
use otelconc::telemetry::Telemetry;
use tokio::runtime::Runtime;

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "The rate limiter's non-blocking check against governor's `check()`, 10,000,000 \
        calls per case (`--quick`: a tenth): on the grant path (an effectively unlimited \
        quota) and the denial path (an empty bucket), from one task and from two tasks at \
        once.",
    variants: &[
        ("governor", "governor's `check()` (baseline)"),
        (
            "otelconc-nosdk",
            "`RateLimiter::try_acquire`, no SDK installed",
        ),
        (
            "otelconc-metrics",
            "`RateLimiter::try_acquire`, SDK metrics",
        ),
    ],
    notes: "The hot path is one clock read, one load of the word and its parameter slot, one \
        CAS and one counter add on a per-thread stripe: no lock, no allocation, no span, \
        no SDK call. In earlier runs a shared `fetch_add` for the counts alone cost 1.3x \
        governor, which is why the counts are striped; governor took 13-19 ns per granted \
        call and 13-14 ns per denied one (each cell the median of three runs on a shared \
        machine).",
};

const FULL: u64 = 10_000_000;
/// Effectively unlimited: one token per nanosecond, a billion in the bucket.
const FAST: u32 = 1_000_000_000;

/// Runs `ops` calls of `f` split over `tasks` tasks on the runtime; returns the time
/// from the first spawn to the last join.
fn on_tasks<F>(rt: &Runtime, ops: u64, tasks: u64, f: Arc<F>) -> Duration
where
    F: Fn() + Send + Sync + 'static,
{
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move {
                    for _ in 0..ops / tasks {
                        f();
                    }
                })
            })
            .collect();
        for h in handles {
            // A panicking variant is a bench bug; its time is meaningless anyway.
            let _ = h.await;
        }
        start.elapsed()
    })
}

fn governor_variant(quota: Quota, tasks: u64, drain: bool) -> Variant {
    let lim = Arc::new(Governor::direct(quota));
    if drain {
        while lim.check().is_ok() {}
    }
    Variant::new("governor", move |rt, ops| {
        let lim = lim.clone();
        on_tasks(
            rt,
            ops,
            tasks,
            Arc::new(move || {
                let _ = black_box(lim.check());
            }),
        )
    })
}

fn otelconc_variant(
    name: &'static str,
    t: Telemetry,
    rate: Rate,
    burst: u32,
    tasks: u64,
    drain: bool,
) -> Variant {
    let lim = RateLimiter::builder(name, rate.burst(burst).expect("valid bench quota"))
        .telemetry(t)
        .build();
    if drain {
        while lim.try_acquire().is_ok() {}
    }
    Variant::new(name, move |rt, ops| {
        let lim = lim.clone();
        on_tasks(
            rt,
            ops,
            tasks,
            Arc::new(move || {
                let _ = black_box(lim.try_acquire());
            }),
        )
    })
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    let fast = Quota::per_second(NonZeroU32::new(FAST).expect("non-zero"));
    let slow = Quota::per_hour(NonZeroU32::MIN);
    let slow_rate = Rate::per_second(1.0 / 3600.0);
    let mut out = Vec::new();
    for (name, tasks, drain) in [
        ("try-acquire-granted-1task", 1, false),
        ("try-acquire-granted-2tasks", 2, false),
        ("try-acquire-denied-1task", 1, true),
        ("try-acquire-denied-2tasks", 2, true),
    ] {
        let (quota, rate, burst) = if drain {
            (slow, slow_rate, 1)
        } else {
            (fast, Rate::per_second(f64::from(FAST)), FAST)
        };
        out.push(Case {
            name,
            ops: env.ops(FULL),
            variants: vec![
                governor_variant(quota, tasks, drain),
                otelconc_variant(
                    "otelconc-nosdk",
                    env.telemetry.nosdk(),
                    rate,
                    burst,
                    tasks,
                    drain,
                ),
                otelconc_variant(
                    "otelconc-metrics",
                    env.telemetry.metrics(),
                    rate,
                    burst,
                    tasks,
                    drain,
                ),
            ],
        });
    }
    out
}
