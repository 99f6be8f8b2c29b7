//! Suite `lock`: the observable `Mutex` and `RwLock` against tokio's, uncontended (one
//! task locking and unlocking in a loop) and with 8 tasks contending (each holds the
//! lock across a yield, so the others' calls really wait).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use otelconc::sync::{Mutex, RwLock};
use otelconc::telemetry::Telemetry;
use tokio::runtime::Runtime;

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "The observable locks against tokio's: one task locking and unlocking in a \
        loop, 5,000,000 times (`Mutex::lock`, `RwLock::read`, `RwLock::write`), and 8 \
        tasks contending, 1,000,000 acquisitions, each holding the lock across a yield \
        so that the other tasks' calls really wait (for the `RwLock`, one call in four \
        writes) (`--quick`: a tenth).",
    variants: &[
        ("tokio-mutex", "`tokio::sync::Mutex` (baseline)"),
        ("tokio-rwlock", "`tokio::sync::RwLock` (baseline)"),
        (
            "otelconc-nosdk",
            "`otelconc::sync::Mutex` / `RwLock`, no SDK installed",
        ),
        (
            "otelconc-metrics",
            "`otelconc::sync::Mutex` / `RwLock`, SDK metrics",
        ),
    ],
    notes: "Every call first tries tokio's `try_lock`/`try_read`/`try_write`; only one \
        that fails awaits tokio's own future. With no SDK a call adds one branch when it \
        takes the lock and one when the guard drops, and a call that waits one more per \
        poll of tokio's future. With SDK metrics it adds a counter add at each end of \
        the hold (a plain store on the exclusive side, written only by the holder; a \
        per-thread stripe on the shared side), and 1 in 16 holds reads the CPU's counter \
        twice and records a histogram. In the contended cases most calls wait, and each \
        wait is counted once as it starts and once as it ends on per-thread stripes, \
        1 in 16 timed. Our two variants share one closure per case, so the compiler \
        makes the same code of both; with a closure each, the compiler left the `RwLock` call's poll out of line, and its \
        40-byte guard, returned through memory and read back with wider loads, cost \
        about 13 ns per call in a store-forwarding stall (tokio's 16-byte guard comes \
        back in registers); a lock call in a program pays that too wherever it is not \
        inlined. The contended cases are mostly the scheduler's work (parking and \
        waking workers), and their ratios moved by about 0.05 between back-to-back runs \
        on the shared machine.",
};

const FULL_UNCONTENDED: u64 = 5_000_000;
const FULL_CONTENDED: u64 = 1_000_000;
const TASKS: u64 = 8;

fn mutex(name: &'static str, t: Telemetry) -> Arc<Mutex<u64>> {
    Arc::new(
        Mutex::builder(name, 0)
            .telemetry(t)
            .build()
            .expect("a name"),
    )
}

fn rwlock(name: &'static str, t: Telemetry) -> Arc<RwLock<u64>> {
    Arc::new(
        RwLock::builder(name, 0)
            .telemetry(t)
            .build()
            .expect("a name"),
    )
}

/// A variant that runs `op` `ops` times in one task.
fn looped<L, F, Fut>(name: &'static str, lock: Arc<L>, op: F) -> Variant
where
    L: Send + Sync + 'static,
    F: Fn(Arc<L>) -> Fut + Clone + 'static,
    Fut: Future<Output = ()>,
{
    Variant::new(name, move |rt: &Runtime, ops| {
        let (lock, op) = (lock.clone(), op.clone());
        rt.block_on(async move {
            let start = Instant::now();
            for _ in 0..ops {
                op(lock.clone()).await;
            }
            start.elapsed()
        })
    })
}

/// A variant that runs `ops` rounds of `op` over [`TASKS`] tasks.
fn contending<L, F, Fut>(name: &'static str, lock: Arc<L>, op: F) -> Variant
where
    L: Send + Sync + 'static,
    F: Fn(Arc<L>, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    Variant::new(name, move |rt: &Runtime, ops| {
        let (lock, op) = (lock.clone(), op.clone());
        rt.block_on(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let (lock, op) = (lock.clone(), op.clone());
                    tokio::spawn(async move {
                        for i in 0..ops / TASKS {
                            op(lock.clone(), t + i).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                // A panicking variant is a bench bug; its time is meaningless anyway.
                let _ = t.await;
            }
            start.elapsed()
        })
    })
}

fn mutex_cases(env: &Env) -> Vec<Case> {
    let tokio_m = Arc::new(tokio::sync::Mutex::new(0u64));
    let nosdk = mutex("otelconc-nosdk", env.telemetry.nosdk());
    let metrics = mutex("otelconc-metrics", env.telemetry.metrics());
    let ours = |name, m: &Arc<Mutex<u64>>| {
        looped(name, m.clone(), |m: Arc<Mutex<u64>>| async move {
            drop(black_box(m.lock().await));
        })
    };
    let uncontended = Case {
        name: "mutex-lock-unlock",
        ops: env.ops(FULL_UNCONTENDED),
        variants: vec![
            looped(
                "tokio-mutex",
                tokio_m.clone(),
                |m: Arc<tokio::sync::Mutex<u64>>| async move {
                    drop(black_box(m.lock().await));
                },
            ),
            ours("otelconc-nosdk", &nosdk),
            ours("otelconc-metrics", &metrics),
        ],
    };
    let ours = |name, m: Arc<Mutex<u64>>| {
        contending(name, m, |m: Arc<Mutex<u64>>, _| async move {
            let mut g = m.lock().await;
            *g += 1;
            tokio::task::yield_now().await;
            drop(g);
        })
    };
    let contended = Case {
        name: "mutex-contended-8tasks",
        ops: env.ops(FULL_CONTENDED),
        variants: vec![
            contending(
                "tokio-mutex",
                tokio_m,
                |m: Arc<tokio::sync::Mutex<u64>>, _| async move {
                    let mut g = m.lock().await;
                    *g += 1;
                    tokio::task::yield_now().await;
                    drop(g);
                },
            ),
            ours("otelconc-nosdk", nosdk),
            ours("otelconc-metrics", metrics),
        ],
    };
    vec![uncontended, contended]
}

fn rwlock_cases(env: &Env) -> Vec<Case> {
    let tokio_l = Arc::new(tokio::sync::RwLock::new(0u64));
    let nosdk = rwlock("otelconc-nosdk", env.telemetry.nosdk());
    let metrics = rwlock("otelconc-metrics", env.telemetry.metrics());
    type Tokio = Arc<tokio::sync::RwLock<u64>>;
    type Ours = Arc<RwLock<u64>>;
    // One closure for both of our variants, as in `mutex_cases` (see the notes: with a
    // closure each, the lock call's poll was left out of line).
    let ours_read = |name, l: &Ours| {
        looped(name, l.clone(), |l: Ours| async move {
            drop(black_box(l.read().await));
        })
    };
    let ours_write = |name, l: &Ours| {
        looped(name, l.clone(), |l: Ours| async move {
            drop(black_box(l.write().await));
        })
    };
    let read = Case {
        name: "rwlock-read-unlock",
        ops: env.ops(FULL_UNCONTENDED),
        variants: vec![
            looped("tokio-rwlock", tokio_l.clone(), |l: Tokio| async move {
                drop(black_box(l.read().await));
            }),
            ours_read("otelconc-nosdk", &nosdk),
            ours_read("otelconc-metrics", &metrics),
        ],
    };
    let write = Case {
        name: "rwlock-write-unlock",
        ops: env.ops(FULL_UNCONTENDED),
        variants: vec![
            looped("tokio-rwlock", tokio_l.clone(), |l: Tokio| async move {
                drop(black_box(l.write().await));
            }),
            ours_write("otelconc-nosdk", &nosdk),
            ours_write("otelconc-metrics", &metrics),
        ],
    };
    let ours = |name, l: Ours| {
        contending(name, l, |l: Ours, i| async move {
            if i % 4 == 0 {
                let mut g = l.write().await;
                *g += 1;
                tokio::task::yield_now().await;
                drop(g);
            } else {
                let g = l.read().await;
                tokio::task::yield_now().await;
                drop(black_box(g));
            }
        })
    };
    let contended = Case {
        name: "rwlock-contended-8tasks",
        ops: env.ops(FULL_CONTENDED),
        variants: vec![
            contending("tokio-rwlock", tokio_l, |l: Tokio, i| async move {
                if i % 4 == 0 {
                    let mut g = l.write().await;
                    *g += 1;
                    tokio::task::yield_now().await;
                    drop(g);
                } else {
                    let g = l.read().await;
                    tokio::task::yield_now().await;
                    drop(black_box(g));
                }
            }),
            ours("otelconc-nosdk", nosdk),
            ours("otelconc-metrics", metrics),
        ],
    };
    vec![read, write, contended]
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    let mut cases = mutex_cases(env);
    cases.extend(rwlock_cases(env));
    cases
}
