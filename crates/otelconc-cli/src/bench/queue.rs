//! Suite `queue`: otelconc-redis end to end (submit, two consumers, commit) against a
//! hand-written Redis Streams consumer with the same batching, on one Redis server
//! (`--redis URL`, or a private `redis-server` from PATH, see [`RedisServer`]).
//!
//! Each otelconc variant hands its providers to the queue as a `Telemetry` handle
//! (`Queue::with_telemetry`), which its workers use too; only the text-map propagator,
//! which writes each entry's context, is global.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use opentelemetry::global;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use otelconc::telemetry::Telemetry;
use otelconc_redis::{JobContext, Queue, Worker};
use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use tokio::runtime::Runtime;

use super::{BenchTelemetry, Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "End-to-end no-op jobs through one Redis server on loopback (the Redis of \
        `--redis URL`, else a private `redis-server` from PATH with `--save ''` and no \
        AOF: the default durability of a cache-style Redis): 20,000 jobs per run \
        (`--quick`: 2,000) submitted in batches of 64 (one pipelined round trip each, 4 \
        batches in flight), run by 2 consumers in the bench's process (each reads up to \
        64 entries a call and runs 4 jobs at once), timed from the first submit until \
        the last job is committed. ns/op is per job; ops/s is jobs per second end to \
        end. The Redis server shares the 2 cores.",
    variants: &[
        (
            "redis-raw",
            "hand-written, with the same batching: `XADD`s pipelined 64 at a time; per \
             consumer a reader (`XREADGROUP COUNT 64`) feeding 4 tasks that decode the \
             job, and an acker sending one `XACK` + `XDEL` pipeline per up to 128 \
             finished jobs, 4 at once (baseline)",
        ),
        (
            "otelconc-nosdk",
            "`Queue::submit_many` (64 jobs a call) and two `Worker`s (4 workers each, read \
             batch 64): jobs committed in batches of up to 128, one call out at a time \
             per worker (these jobs have no effects, so a `MULTI`/`XACK`/`XDEL`/`EXEC` \
             rather than the commit script); a `Telemetry` handle on the no-op providers",
        ),
        (
            "otelconc-metrics",
            "as otelconc-nosdk, with a handle on the SDK meter provider (bound \
             instruments)",
        ),
        (
            "otelconc-traced",
            "as otelconc-metrics, plus the SDK tracer provider (always on, batch \
             processor, discarding exporter): per job a `process` span, per batch of 64 a \
             `send` span",
        ),
    ],
    notes: "A job is, on the client side, its share of a pipelined `XADD` batch, of an \
        `XREADGROUP` and of a commit call (these no-op jobs have no effects, so no dedup \
        marker and no script: one `MULTI`/`XACK`/`XDEL`/`EXEC` per batch; redis-raw: the \
        same `XACK` + `XDEL` pipelined). Redis, on the same 2 cores, does about half the \
        work. otelconc's worker parses the `XREADGROUP` reply itself, where redis-raw \
        uses the `redis` crate's typed `StreamReadReply` (which copies every field into \
        a map): that and batches that grow with the load (one commit call out at a \
        time per worker) are why otelconc can come out ahead of redis-raw. Three runs \
        on a quiet machine (load average under 2.6), each a median of its rounds: \
        redis-raw 131,000 to 146,000 jobs/s; otelconc-nosdk 145,000 to 163,000 (0.81x \
        to 0.95x), otelconc-metrics 140,000 to 163,000 (0.90x to 0.96x), \
        otelconc-traced 99,500 to 118,000 (1.24x to 1.39x). Under load from other \
        processes the spread is wide (1.2x to 1.3x for otelconc-metrics in runs at a \
        load average of 3 to 4). End to end across processes with the demo's job \
        (which has an effect, so its commits run the script): `otelconc queue submit \
        --jobs 200000 --json` with two `queue worker` processes on the same machine, \
        exporting over OTLP/HTTP (the default) to a local rotel, three quiet rounds: \
        82,000 to 85,000 jobs/s with `OTEL_SDK_DISABLED=true` (19.0 to 19.3 us of CPU \
        per job, all processes together); 74,600 to 75,700 (0.90x) with metrics on and \
        every trace sampled out, most of it the context every entry carries (a \
        `traceparent` field Redis stores and the worker parses and extracts); 70,000 to \
        75,000 (0.86x) with `parentbased_traceidratio` at 0.1; 57,700 to 60,000 (0.71x) \
        with every trace kept. With every trace kept, exporting a span costs the SDK's \
        exporter threads 2.4 to 2.5 us of CPU and the collector 1.9 to 2.0 us, together \
        about 23% of the CPU a job takes with telemetry off, before the span is built: \
        on the same 2 cores, that alone puts a kept trace per job beyond a 10% cost \
        (over gRPC it was 3.2 to 3.7 and 2.5 to 2.8 us). `examples/throughput.rs` of \
        otelconc-redis (no-op \
        jobs, 2 workers of 8) 140,000 jobs/s against a Redis with `appendonly yes`, \
        100,000 with `appendfsync always`.",
};

const FULL: u64 = 20_000;
/// Jobs per submit: one `submit_many` (redis-raw: one pipeline of `XADD`s).
const SUBMIT_BATCH: usize = 64;
/// Submit batches in flight at once.
const IN_FLIGHT: usize = 4;
/// Acks per redis-raw `XACK` + `XDEL` pipeline at most, and such pipelines in flight per
/// consumer: the worker's commit batching.
const ACK_BATCH: usize = 128;
const ACKS_IN_FLIGHT: usize = 4;
/// Consumers, each with its own connections.
const CONSUMERS: usize = 2;
/// Jobs run at once per consumer.
const WORKERS: usize = 4;
/// Entries per read.
const BATCH: usize = 64;

/// A private `redis-server` on a free loopback port, stopped by its pid when dropped.
pub(crate) struct RedisServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl RedisServer {
    /// Starts `redis-server` from PATH (no RDB snapshots, no AOF, its own directory)
    /// and waits until it answers.
    ///
    /// # Errors
    /// A message naming what is missing when `redis-server` is not on PATH, or when it
    /// did not answer.
    pub(crate) fn start() -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free loopback port for redis-server: {e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "otelconc-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "bench queue needs a Redis server: could not run `redis-server` from \
                     PATH ({e}); install it (Debian: apt-get install redis-server) or pass \
                     --redis URL"
                )
            })?;
        let server = Self {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while ping(&server.url).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("redis-server did not answer on {}", server.url));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the Redis server at `url` answers a `PING` (connecting for at most 5 s).
fn ping(url: &str) -> redis::RedisResult<()> {
    let mut c = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))?;
    redis::cmd("PING").query::<String>(&mut c).map(drop)
}

/// Checks that the server of `--redis URL` answers, so that a wrong URL is an error
/// naming it before any suite runs.
///
/// # Errors
/// A message naming the URL and why it cannot be used.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    ping(url).map_err(|e| format!("bench queue cannot use the Redis server of --redis {url}: {e}"))
}

/// Each run uses queues of its own.
static RUN: AtomicU64 = AtomicU64::new(0);

fn queue_name(variant: &str) -> String {
    format!(
        "bench-{variant}-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )
}

fn need_url(url: &str) -> &str {
    assert!(
        !url.is_empty(),
        "the queue suite runs only with a Redis URL (bench::run resolves one)"
    );
    url
}

/// The jobs `0..ops` in submit batches.
fn batches(ops: u64) -> impl Iterator<Item = Vec<u64>> {
    (0..ops)
        .step_by(SUBMIT_BATCH)
        .map(move |first| (first..(first + SUBMIT_BATCH as u64).min(ops)).collect())
}

/// `ops` no-op jobs through otelconc-redis: two workers, submits in batches; the time
/// from the first submit to the last commit.
async fn otelconc_run(url: &str, variant: &str, ops: u64, telemetry: Telemetry) -> Duration {
    let queue = Queue::<u64>::connect(url, &queue_name(variant))
        .await
        .expect("the bench's Redis")
        .with_telemetry(telemetry);
    let mut workers = Vec::new();
    for _ in 0..CONSUMERS {
        let w = Worker::builder(queue.clone(), |_n: u64, _cx: JobContext| async {
            Ok::<(), std::convert::Infallible>(())
        })
        .workers(WORKERS)
        .read_batch(BATCH)
        .read_block(Duration::from_millis(50))
        .dedup_ttl(Duration::from_secs(60))
        .start()
        .await
        .expect("a worker");
        workers.push(w);
    }
    let start = Instant::now();
    futures::stream::iter(batches(ops))
        .map(|jobs| queue.submit_many(&jobs))
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("submits");
    while workers.iter().map(|w| w.stats().completed).sum::<u64>() < ops {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let took = start.elapsed();
    for w in workers {
        w.shutdown(Duration::from_secs(5)).await;
    }
    delete(url, &[queue.stream_key(), queue.dead_letter_key()]).await;
    took
}

async fn delete(url: &str, keys: &[&str]) {
    if let Ok(mut c) = connection(url).await {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
    }
}

async fn connection(url: &str) -> redis::RedisResult<ConnectionManager> {
    ConnectionManager::new(redis::Client::open(url)?).await
}

/// One hand-written consumer: a reader (`XREADGROUP COUNT 64`) feeding `WORKERS` tasks
/// that decode the job, and an acker that acks finished ones in batches (`XACK` +
/// `XDEL` of up to `ACK_BATCH` ids in one pipeline, `ACKS_IN_FLIGHT` at once), as the
/// worker commits.
async fn raw_consumer(
    url: String,
    stream: String,
    name: String,
    done: Arc<AtomicU64>,
    ops: u64,
) -> redis::RedisResult<()> {
    let mut read = connection(&url).await?;
    let ack = connection(&url).await?;
    let (tx, rx) = async_channel::bounded::<(String, Vec<u8>)>(BATCH);
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let rx = rx.clone();
        let acks = acks_tx.clone();
        tasks.spawn(async move {
            while let Ok((id, payload)) = rx.recv().await {
                // Decoded as the worker decodes it; the job does nothing.
                let job: Option<u64> = serde_json::from_slice(&payload).ok();
                std::hint::black_box(job);
                let _ = acks.send(id);
            }
        });
    }
    drop(acks_tx);
    let acker = {
        let stream = stream.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut calls = tokio::task::JoinSet::new();
            let mut batch = Vec::with_capacity(ACK_BATCH);
            while acks_rx.recv_many(&mut batch, ACK_BATCH).await > 0 {
                while calls.len() >= ACKS_IN_FLIGHT {
                    calls.join_next().await;
                }
                let ids = std::mem::replace(&mut batch, Vec::with_capacity(ACK_BATCH));
                let mut ack = ack.clone();
                let stream = stream.clone();
                let done = done.clone();
                calls.spawn(async move {
                    let n = ids.len() as u64;
                    let _: redis::RedisResult<()> = redis::pipe()
                        .cmd("XACK")
                        .arg(&stream)
                        .arg("g")
                        .arg(&ids)
                        .ignore()
                        .cmd("XDEL")
                        .arg(&stream)
                        .arg(&ids)
                        .ignore()
                        .query_async(&mut ack)
                        .await;
                    done.fetch_add(n, Ordering::Relaxed);
                });
            }
            while calls.join_next().await.is_some() {}
        })
    };
    while done.load(Ordering::Relaxed) < ops {
        let reply: StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg(&name)
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(50)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut read)
            .await?;
        for e in reply.keys.into_iter().flat_map(|k| k.ids) {
            let payload = e.get::<Vec<u8>>("job").unwrap_or_default();
            if tx.send((e.id, payload)).await.is_err() {
                break;
            }
        }
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
    let _ = acker.await;
    Ok(())
}

/// `ops` no-op jobs through hand-written `XADD` / `XREADGROUP` / `XACK`, batched as the
/// otelconc variants batch.
async fn raw_run(url: &str, ops: u64) -> Duration {
    let stream = format!("bench:{{{}}}", queue_name("raw"));
    let mut conn = connection(url).await.expect("the bench's Redis");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    let done = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            tokio::spawn(raw_consumer(
                url.to_owned(),
                stream.clone(),
                format!("c{i}"),
                done.clone(),
                ops,
            ))
        })
        .collect();
    let start = Instant::now();
    futures::stream::iter(batches(ops))
        .map(|jobs| {
            let mut c = conn.clone();
            let mut pipe = redis::pipe();
            for n in jobs {
                let payload = serde_json::to_vec(&n).expect("a u64 encodes");
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("*")
                    .arg("job")
                    .arg(payload);
            }
            async move { pipe.query_async::<Vec<String>>(&mut c).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("XADDs");
    while done.load(Ordering::Relaxed) < ops {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let took = start.elapsed();
    for c in consumers {
        let _ = c.await;
    }
    delete(url, &[&stream]).await;
    took
}

/// An otelconc variant whose queue records through the handle `providers` makes of
/// the bench's providers (`BenchTelemetry::nosdk`, `metrics` or `traced`).
fn otelconc_variant(
    name: &'static str,
    url: String,
    providers: fn(&BenchTelemetry) -> Telemetry,
    t: &BenchTelemetry,
) -> Variant {
    let t = t.clone();
    Variant::new(name, move |rt: &Runtime, ops| {
        rt.block_on(otelconc_run(need_url(&url), name, ops, providers(&t)))
    })
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    // Entries carry their context as `traceparent` (otelconc-telemetry injects with the
    // global propagator): without it, no `process` span would join the `send` span.
    global::set_text_map_propagator(TraceContextPropagator::new());
    let url = env.redis_url.clone().unwrap_or_default();
    let raw_url = url.clone();
    vec![Case {
        name: "submit-run-commit",
        ops: env.ops(FULL),
        variants: vec![
            Variant::new("redis-raw", move |rt, ops| {
                rt.block_on(raw_run(need_url(&raw_url), ops))
            }),
            otelconc_variant(
                "otelconc-nosdk",
                url.clone(),
                BenchTelemetry::nosdk,
                &env.telemetry,
            ),
            otelconc_variant(
                "otelconc-metrics",
                url.clone(),
                BenchTelemetry::metrics,
                &env.telemetry,
            ),
            otelconc_variant(
                "otelconc-traced",
                url,
                BenchTelemetry::traced,
                &env.telemetry,
            ),
        ],
    }]
}
