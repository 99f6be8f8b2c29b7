//! Suite `pool`: 1,000,000 jobs through 4 workers and a queue of 1,024, every result
//! awaited, done by hand, with `spawn` + `Semaphore`, with `otelconc::pool` under three
//! telemetry setups, and the way the Go seed instruments its pool.
//!
//! Each variant's measured time runs from building its workers to knowing every job's
//! result. The hand-written and seed-style pools send each output on a results channel
//! the bench drains (as the seed does); `otelconc` needs no results channel, because
//! `shutdown` reports every accepted job (asserted here), so its variants await that
//! report. `otelconc-outcomes` and `otelconc-handles` show what the outcomes stream and
//! per-job handles add.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::context::FutureExt as _;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use otelconc::pool::WorkerPool;
use otelconc::telemetry::Telemetry;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "1,000,000 jobs (`--quick`: a twenty-fifth) through 4 workers and a queue of \
        1,024, either no-op jobs or jobs that `yield_now()` once. Each variant's time \
        runs from building its workers to knowing every job's result: the hand-written \
        and seed-style pools send each output on a results channel the bench drains, as \
        the seed does; `WorkerPool` needs none, because `shutdown` reports every accepted \
        job, so its variants await that report.",
    variants: &[
        (
            "hand-written",
            "4 tasks on an `async-channel` of boxed futures, with a results channel \
            (baseline)",
        ),
        (
            "spawn-semaphore",
            "`tokio::spawn` per job + `Semaphore` + `JoinSet`",
        ),
        ("otelconc-nosdk", "`WorkerPool`, no SDK installed"),
        ("otelconc-metrics", "`WorkerPool`, SDK metrics"),
        (
            "otelconc-outcomes",
            "`WorkerPool`, SDK metrics, plus the outcomes stream, drained",
        ),
        (
            "otelconc-handles",
            "`WorkerPool`, SDK metrics, plus a `JobHandle` per job, awaited",
        ),
        (
            "otelconc-traced",
            "`WorkerPool`, SDK metrics and traces, every submit inside a sampled trace",
        ),
        (
            "seed-style",
            "the seed's instrumentation: two spans and fresh-attribute metrics per job, a \
            pool-long worker span",
        ),
        (
            "metrics+bare-span",
            "`WorkerPool`, SDK metrics, each job starting and ending one bare SDK span (no \
            context carried, no attributes; no-op jobs only): the floor under \
            `otelconc-traced`",
        ),
    ],
    notes: "Without a results channel to feed, the pool runs no-op jobs faster than the \
        hand-written baseline; with yielding jobs the scheduler dominates and all pools \
        are within noise of each other. Traced jobs cost one SDK span on top of the \
        metrics variant, plus the context hand-over and attributes: in the earlier runs \
        they sat about 200 ns above `metrics+bare-span`. In those runs, on a 2-core \
        machine shared with other builds, the baseline took about 480 ns per no-op job \
        and 1.2 µs per yielding job, and single runs moved by 20-30 %.",
};

const FULL: u64 = 1_000_000;
const WORKERS: usize = 4;
const QUEUE: usize = 1024;

type BoxJob = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The tracer of `Work::Span` jobs (set when the cases are built).
static FLOOR_TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// What each job does.
#[derive(Clone, Copy)]
enum Work {
    Noop,
    Yield,
    /// Start and end one bare SDK span: the floor under `otelconc-traced`.
    Span,
}

impl Work {
    fn boxed(self) -> BoxJob {
        match self {
            Self::Noop => Box::pin(async {}),
            Self::Yield => Box::pin(tokio::task::yield_now()),
            Self::Span => Box::pin(async { bare_span() }),
        }
    }

    async fn run(self) {
        match self {
            Self::Noop => {}
            Self::Yield => tokio::task::yield_now().await,
            Self::Span => bare_span(),
        }
    }
}

fn bare_span() {
    if let Some(t) = FLOOR_TRACER.get() {
        t.start("floor").end();
    }
}

/// Runs `body` as a task on the runtime's workers (not on the `block_on` thread), so
/// every variant has the same two threads.
fn in_runtime(rt: &Runtime, body: impl Future<Output = Duration> + Send + 'static) -> Duration {
    rt.block_on(async move { tokio::spawn(body).await.expect("bench variant panicked") })
}

/// The end of a results-channel pool: drains `ops` results, joins the producer and the
/// workers, checks every job reported, and returns the time since `start`.
async fn finish<T>(
    start: Instant,
    ops: u64,
    results: &async_channel::Receiver<T>,
    producer: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
) -> Duration {
    let mut got = 0;
    while got < ops && results.recv().await.is_ok() {
        got += 1;
    }
    let _ = producer.await;
    for w in workers {
        let _ = w.await;
    }
    assert_eq!(got, ops);
    start.elapsed()
}

/// The seed's pool without telemetry: 4 tasks looping `recv().await` on an
/// async-channel of boxed futures, sending each output on a results channel.
fn hand_written(rt: &Runtime, ops: u64, work: Work) -> Duration {
    in_runtime(rt, async move {
        let start = Instant::now();
        let (jobs_tx, jobs_rx) = async_channel::bounded::<BoxJob>(QUEUE);
        let (res_tx, res_rx) = async_channel::bounded::<()>(QUEUE);
        let mut workers = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let (rx, tx) = (jobs_rx.clone(), res_tx.clone());
            workers.push(tokio::spawn(async move {
                while let Ok(job) = rx.recv().await {
                    let out = job.await;
                    if tx.send(out).await.is_err() {
                        break;
                    }
                }
            }));
        }
        drop(res_tx);
        let producer = tokio::spawn(async move {
            for _ in 0..ops {
                if jobs_tx.send(work.boxed()).await.is_err() {
                    break;
                }
            }
        });
        finish(start, ops, &res_rx, producer, workers).await
    })
}

/// `tokio::spawn` per job, at most 4 at once (a `Semaphore`), results from a `JoinSet`.
fn spawn_semaphore(rt: &Runtime, ops: u64, work: Work) -> Duration {
    in_runtime(rt, async move {
        let start = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(WORKERS));
        let mut set = tokio::task::JoinSet::new();
        let mut got = 0;
        for _ in 0..ops {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            set.spawn(async move {
                work.run().await;
                drop(permit);
            });
            while let Some(r) = set.try_join_next() {
                got += u64::from(r.is_ok());
            }
        }
        while let Some(r) = set.join_next().await {
            got += u64::from(r.is_ok());
        }
        assert_eq!(got, ops);
        start.elapsed()
    })
}

/// How an `otelconc` variant learns every result.
#[derive(Clone, Copy, PartialEq)]
enum Await {
    /// The shutdown report (no per-job result delivery).
    Report,
    /// Draining the outcomes stream.
    Outcomes,
    /// One handle per job.
    Handles,
}

fn otelconc_pool(
    rt: &Runtime,
    ops: u64,
    work: Work,
    telemetry: Telemetry,
    parent: Option<Context>,
    how: Await,
) -> Duration {
    in_runtime(rt, async move {
        let start = Instant::now();
        let mut b = WorkerPool::builder("bench")
            .workers(WORKERS)
            .queue_capacity(QUEUE)
            .telemetry(telemetry);
        if how == Await::Outcomes {
            b = b.outcomes(QUEUE);
        }
        let pool = b.build().expect("valid pool configuration");
        let p = pool.clone();
        let (handles_tx, handles_rx) = async_channel::unbounded();
        let submit = async move {
            for _ in 0..ops {
                let job = move || work.run();
                let sent = if how == Await::Handles {
                    match p.submit_handle(job).await {
                        Ok(h) => handles_tx.send(h).await.is_ok(),
                        Err(_) => false,
                    }
                } else {
                    p.submit(job).await.is_ok()
                };
                if !sent {
                    break;
                }
            }
        };
        let producer = match parent {
            Some(cx) => tokio::spawn(submit.with_context(cx)),
            None => tokio::spawn(submit),
        };
        let outcomes = (how == Await::Outcomes).then(|| {
            let outcomes = pool.outcomes().expect("enabled");
            tokio::spawn(async move {
                let mut got = 0_u64;
                while let Some(o) = outcomes.recv().await {
                    got += u64::from(o.result.is_ok());
                }
                got
            })
        });
        let mut got = 0;
        if how == Await::Handles {
            while let Ok(h) = handles_rx.recv().await {
                got += u64::from(h.await.is_ok());
            }
        }
        let _ = producer.await;
        let report = pool.shutdown(Duration::from_secs(60)).await;
        assert_eq!(report.completed, ops);
        if let Some(drain) = outcomes {
            // The stream ends after shutdown; what it could not buffer was counted.
            got = drain.await.unwrap_or(0) + pool.stats().outcomes_dropped;
        }
        if how != Await::Report {
            assert_eq!(got, ops);
        }
        start.elapsed()
    })
}

/// The seed's instrumentation on the hand-written pool: a submit span with an event, a
/// worker span that lives as long as the pool, a job span per job (child of the worker
/// span) with status and attributes set, and a histogram record with freshly built
/// attributes including the job id, per job.
fn seed_style(rt: &Runtime, ops: u64, work: Work, env: &SeedEnv) -> Duration {
    let tracer = env.tracer.clone();
    let hist = env.hist.clone();
    in_runtime(rt, async move {
        let start = Instant::now();
        let (jobs_tx, jobs_rx) = async_channel::bounded::<(String, BoxJob)>(QUEUE);
        let (res_tx, res_rx) = async_channel::bounded::<(String, Duration)>(QUEUE);
        // The seed's plain atomics: active workers, total and successful jobs.
        let counts = Arc::new([AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)]);
        let mut workers = Vec::with_capacity(WORKERS);
        for worker_id in 0..WORKERS {
            let (rx, tx) = (jobs_rx.clone(), res_tx.clone());
            let (tracer, hist, counts) = (tracer.clone(), hist.clone(), counts.clone());
            workers.push(tokio::spawn(async move {
                let worker_span = tracer
                    .span_builder("workerpool.worker")
                    .with_attributes([
                        KeyValue::new("pool.name", "bench"),
                        KeyValue::new("worker.id", worker_id as i64),
                    ])
                    .start(&tracer);
                let worker_cx = Context::current().with_span(worker_span);
                while let Ok((id, job)) = rx.recv().await {
                    counts[0].fetch_add(1, Ordering::Relaxed);
                    let mut span = tracer
                        .span_builder("workerpool.execute_job")
                        .with_attributes([
                            KeyValue::new("pool.name", "bench"),
                            KeyValue::new("worker.id", worker_id as i64),
                            KeyValue::new("job.id", id.clone()),
                        ])
                        .start_with_context(&tracer, &worker_cx);
                    let t0 = Instant::now();
                    counts[1].fetch_add(1, Ordering::Relaxed);
                    job.await;
                    let took = t0.elapsed();
                    hist.record(
                        took.as_millis() as f64,
                        &[
                            KeyValue::new("pool.name", "bench"),
                            KeyValue::new("job.id", id.clone()),
                        ],
                    );
                    counts[2].fetch_add(1, Ordering::Relaxed);
                    span.set_status(opentelemetry::trace::Status::Ok);
                    span.set_attribute(KeyValue::new("job.success", true));
                    span.set_attribute(KeyValue::new("job.duration_ms", took.as_millis() as f64));
                    span.end();
                    counts[0].fetch_sub(1, Ordering::Relaxed);
                    if tx.send((id, took)).await.is_err() {
                        break;
                    }
                }
                worker_cx.span().end();
            }));
        }
        drop(res_tx);
        let producer = tokio::spawn(async move {
            for i in 0..ops {
                let id = format!("job-{i}");
                let mut span = tracer
                    .span_builder("workerpool.submit")
                    .with_attributes([
                        KeyValue::new("pool.name", "bench"),
                        KeyValue::new("job.id", id.clone()),
                    ])
                    .start(&tracer);
                let sent = jobs_tx.send((id, work.boxed())).await.is_ok();
                span.add_event("job submitted", vec![]);
                span.end();
                if !sent {
                    break;
                }
            }
        });
        finish(start, ops, &res_rx, producer, workers).await
    })
}

struct SeedEnv {
    tracer: SdkTracer,
    hist: opentelemetry::metrics::Histogram<f64>,
}

fn case(env: &Env, name: &'static str, work: Work) -> Case {
    let seed = Arc::new(SeedEnv {
        tracer: env.telemetry.sdk_tracer_provider().tracer("seed-pool"),
        hist: env
            .telemetry
            .sdk_meter_provider()
            .meter("seed-pool")
            .f64_histogram("workerpool.job.duration")
            .with_unit("ms")
            .build(),
    });
    let nosdk = env.telemetry.nosdk();
    let metrics = env.telemetry.metrics();
    let (m2, m3) = (metrics.clone(), metrics.clone());
    let traced = env.telemetry.traced();
    let root = env.telemetry.sampled_root();
    let m4 = metrics.clone();
    // Quick mode: a few seconds for the whole suite.
    let ops = if env.quick { FULL / 25 } else { FULL };
    let mut variants = vec![
        Variant::new("hand-written", move |rt, ops| hand_written(rt, ops, work)),
        Variant::new("spawn-semaphore", move |rt, ops| {
            spawn_semaphore(rt, ops, work)
        }),
        Variant::new("otelconc-nosdk", move |rt, ops| {
            otelconc_pool(rt, ops, work, nosdk.clone(), None, Await::Report)
        }),
        Variant::new("otelconc-metrics", move |rt, ops| {
            otelconc_pool(rt, ops, work, metrics.clone(), None, Await::Report)
        }),
        Variant::new("otelconc-outcomes", move |rt, ops| {
            otelconc_pool(rt, ops, work, m2.clone(), None, Await::Outcomes)
        }),
        Variant::new("otelconc-handles", move |rt, ops| {
            otelconc_pool(rt, ops, work, m3.clone(), None, Await::Handles)
        }),
        Variant::new("otelconc-traced", move |rt, ops| {
            otelconc_pool(
                rt,
                ops,
                work,
                traced.clone(),
                Some(root.clone()),
                Await::Report,
            )
        }),
        Variant::new("seed-style", move |rt, ops| {
            seed_style(rt, ops, work, &seed)
        }),
    ];
    if matches!(work, Work::Noop) {
        // What `otelconc-traced` cannot go below: the metrics pool plus one bare SDK span
        // per job (no context carried, no attributes).
        variants.push(Variant::new("metrics+bare-span", move |rt, ops| {
            otelconc_pool(rt, ops, Work::Span, m4.clone(), None, Await::Report)
        }));
    }
    Case {
        name,
        ops,
        variants,
    }
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    let _ = FLOOR_TRACER.set(env.telemetry.sdk_tracer_provider().tracer("pool-floor"));
    vec![
        case(env, "noop-jobs", Work::Noop),
        case(env, "yield-once-jobs", Work::Yield),
    ]
}
