//! Suite `fan`: `fan_out_items` against `futures`' `buffer_unordered` (unordered form)
//! and `buffered` (ordered form), 1,000,000 trivial items at concurrency 64; the cost
//! of a per-item span inside a sampled trace; `fan_in` of 4 inputs against the seed's
//! hand-written form (a task per input into one `tokio::sync::mpsc`); and `TaskGroup`
//! spawns against a bare `JoinSet`.

use std::convert::Infallible;
use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStream, TryStreamExt, future, stream};
use otelconc::fan::{BuildError, FanIn, FanOut};
use otelconc::group::TaskGroup;
use otelconc::telemetry::Telemetry;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "`fan_out_items` against `futures`' `buffer_unordered` (unordered form) and \
        `buffered` (ordered form), 1,000,000 trivial items at concurrency 64; 100,000 \
        items each in a span inside a sampled trace; `fan_in` of 4 inputs (1,000,000 \
        items) against the seed's hand-written form; and 200,000 trivial `TaskGroup` \
        tasks spawned then waited for, against a bare `JoinSet` (`--quick`: a tenth of \
        each).",
    variants: &[
        (
            "buffer_unordered",
            "`futures`' `buffer_unordered` (baseline of the unordered cases)",
        ),
        (
            "buffered",
            "`futures`' `buffered` (baseline of the ordered case)",
        ),
        (
            "tasks+mpsc",
            "a task per input forwarding into one bounded `tokio::sync::mpsc`, the seed's \
            fan-in (baseline)",
        ),
        ("joinset", "a bare `tokio::task::JoinSet` (baseline)"),
        (
            "otelconc-nosdk",
            "the case's otelconc form (`fan_out_items`, `fan_in` or `TaskGroup`), no SDK \
            installed",
        ),
        ("otelconc-metrics", "the case's otelconc form, SDK metrics"),
        (
            "otelconc-traced",
            "`fan_out_items_unordered` called inside a sampled trace: one SDK span per \
            item",
        ),
    ],
    notes: "Instruction counts (callgrind, immune to the machine's load) put the unordered \
        form at about 100 instructions per item above `buffer_unordered`'s ~450, most of \
        it the larger `Result<R, ItemError<E>>` moved through the stream. On the shared \
        2-core machine of the earlier runs the ratios moved by up to 10 % from run to run, and \
        the unordered no-SDK ratio ranged 0.60-1.12x. A group task cost a few hundred ns \
        on top of the 0.7-1 µs of the spawn itself; a group built, given one task and \
        waited for cost 2.1 µs with SDK metrics, against 3.5 µs when every group bound \
        its own instruments.",
};

const CONCURRENCY: usize = 64;

/// The per-item work: ready at once, so the measurement is the adapter's own cost.
#[inline]
async fn work(x: u64) -> Result<u64, Infallible> {
    Ok(x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn sum(acc: u64, x: u64) -> future::Ready<Result<u64, Infallible>> {
    future::ready(Ok(acc.wrapping_add(x)))
}

fn buffer_unordered(rt: &Runtime, ops: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let total = stream::iter(0..ops)
            .map(work)
            .buffer_unordered(CONCURRENCY)
            .try_fold(0, sum)
            .await;
        let took = start.elapsed();
        black_box(total).ok();
        took
    })
}

fn buffered(rt: &Runtime, ops: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let total = stream::iter(0..ops)
            .map(work)
            .buffered(CONCURRENCY)
            .try_fold(0, sum)
            .await;
        let took = start.elapsed();
        black_box(total).ok();
        took
    })
}

fn otelconc_unordered(fan: &FanOut) -> impl Fn(&Runtime, u64) -> Duration + 'static {
    let fan = fan.clone();
    move |rt, ops| {
        rt.block_on(async {
            let start = Instant::now();
            let total = sum_items(fan.items_unordered(0..ops, CONCURRENCY, work)).await;
            let took = start.elapsed();
            black_box(total).ok();
            took
        })
    }
}

fn otelconc_ordered(fan: &FanOut) -> impl Fn(&Runtime, u64) -> Duration + 'static {
    let fan = fan.clone();
    move |rt, ops| {
        rt.block_on(async {
            let start = Instant::now();
            let total = sum_items(fan.items(0..ops, CONCURRENCY, work)).await;
            let took = start.elapsed();
            black_box(total).ok();
            took
        })
    }
}

/// Sums a fan-out stream; a rejected call or a failed item becomes its message.
async fn sum_items<S: TryStream<Ok = u64>>(items: Result<S, BuildError>) -> Result<u64, String>
where
    S::Error: fmt::Display,
{
    items
        .map_err(|e| e.to_string())?
        .try_fold(0u64, |acc, x| future::ready(Ok(acc.wrapping_add(x))))
        .await
        .map_err(|e| e.to_string())
}

fn join_set(rt: &Runtime, ops: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut set = JoinSet::new();
        for i in 0..ops {
            set.spawn(work(i));
        }
        let mut total = 0u64;
        while let Some(r) = set.join_next().await {
            if let Ok(Ok(v)) = r {
                total = total.wrapping_add(v);
            }
        }
        let took = start.elapsed();
        black_box(total);
        took
    })
}

fn group(telemetry: Telemetry) -> impl Fn(&Runtime, u64) -> Duration + 'static {
    move |rt, ops| {
        let telemetry = telemetry.clone();
        rt.block_on(async move {
            let start = Instant::now();
            let built = TaskGroup::builder()
                .name("bench")
                .telemetry(telemetry)
                .build();
            let Ok(mut g) = built else {
                return start.elapsed();
            };
            for i in 0..ops {
                if g.spawn(work(i)).await.is_err() {
                    break;
                }
            }
            let total = g
                .wait()
                .await
                .map(|v| v.into_iter().fold(0u64, u64::wrapping_add));
            let took = start.elapsed();
            black_box(total).ok();
            took
        })
    }
}

const INPUTS: u64 = 4;
const FAN_IN_CAPACITY: usize = 32;

/// The seed's fan-in by hand: a task per input forwarding into one bounded channel.
fn mpsc_fan_in(rt: &Runtime, ops: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel(FAN_IN_CAPACITY);
        let mut tasks = JoinSet::new();
        for input in 0..INPUTS {
            let tx = tx.clone();
            tasks.spawn(async move {
                let mut s = stream::iter((0..ops / INPUTS).map(move |i| i + input));
                while let Some(v) = s.next().await {
                    if tx.send(v).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut total = 0u64;
        while let Some(v) = rx.recv().await {
            total = total.wrapping_add(v);
        }
        let took = start.elapsed();
        black_box(total);
        took
    })
}

fn otelconc_fan_in(telemetry: Telemetry) -> impl Fn(&Runtime, u64) -> Duration + 'static {
    move |rt, ops| {
        let telemetry = telemetry.clone();
        rt.block_on(async move {
            let start = Instant::now();
            let mut builder = FanIn::builder("bench")
                .telemetry(telemetry)
                .capacity(FAN_IN_CAPACITY);
            for input in 0..INPUTS {
                builder = builder.input(
                    "input",
                    stream::iter((0..ops / INPUTS).map(move |i| i + input)),
                );
            }
            let total = match builder.build() {
                Ok(out) => {
                    out.fold(0u64, |acc, m| async move { acc.wrapping_add(*m) })
                        .await
                }
                Err(_) => 0,
            };
            let took = start.elapsed();
            black_box(total);
            took
        })
    }
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    let t = &env.telemetry;
    let nosdk = FanOut::builder("bench").telemetry(t.nosdk()).build();
    let metrics = FanOut::builder("bench").telemetry(t.metrics()).build();
    let traced = FanOut::builder("bench").telemetry(t.traced()).build();
    let root = t.sampled_root();
    let in_trace = move |rt: &Runtime, ops: u64| {
        rt.block_on(async {
            let start = Instant::now();
            let items = {
                // The caller is inside a sampled trace: every item gets a span.
                let _attached = root.clone().attach();
                traced.items_unordered(0..ops, CONCURRENCY, work)
            };
            let total = sum_items(items).await;
            let took = start.elapsed();
            black_box(total).ok();
            took
        })
    };
    vec![
        Case {
            name: "items-unordered",
            ops: env.ops(1_000_000),
            variants: vec![
                Variant::new("buffer_unordered", buffer_unordered),
                Variant::new("otelconc-nosdk", otelconc_unordered(&nosdk)),
                Variant::new("otelconc-metrics", otelconc_unordered(&metrics)),
            ],
        },
        Case {
            name: "items-ordered",
            ops: env.ops(1_000_000),
            variants: vec![
                Variant::new("buffered", buffered),
                Variant::new("otelconc-nosdk", otelconc_ordered(&nosdk)),
                Variant::new("otelconc-metrics", otelconc_ordered(&metrics)),
            ],
        },
        Case {
            name: "items-in-sampled-trace",
            ops: env.ops(100_000),
            variants: vec![
                Variant::new("buffer_unordered", buffer_unordered),
                Variant::new("otelconc-traced", in_trace),
            ],
        },
        Case {
            name: "fan-in-4-inputs",
            ops: env.ops(1_000_000),
            variants: vec![
                Variant::new("tasks+mpsc", mpsc_fan_in),
                Variant::new("otelconc-nosdk", otelconc_fan_in(t.nosdk())),
                Variant::new("otelconc-metrics", otelconc_fan_in(t.metrics())),
            ],
        },
        Case {
            name: "group-spawn",
            ops: env.ops(200_000),
            variants: vec![
                Variant::new("joinset", join_set),
                Variant::new("otelconc-nosdk", group(t.nosdk())),
                Variant::new("otelconc-metrics", group(t.metrics())),
            ],
        },
    ]
}
