//! [`Worker`]: reads a queue's entries, runs them on a worker pool, commits, retries,
//! dead-letters and reclaims.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt as _;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use otelconc::pool::WorkerPool;
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_OUTCOME};
use otelconc::telemetry::{SpanPolicy, Telemetry};
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::{Effects, JobContext};
use crate::error::Error;
use crate::keys::{GROUP, JOB_FIELD, Keys};
use crate::metrics::{Outcome, WorkerMetrics};
use crate::queue::{Queue, RESPONSE_TIMEOUT, manager_config, within_connect_timeout};
use crate::report::WorkerReport;
use crate::scripts::{
    COMMIT_SCRIPT, Call, DEAD_LETTER_SCRIPT, DELETE_IF_IDLE_SCRIPT, HEARTBEAT_SCRIPT,
    RELEASE_SCRIPT,
};

type Handler<J> = Arc<
    dyn Fn(J, JobContext) -> futures_util::future::BoxFuture<'static, Result<(), String>>
        + Send
        + Sync,
>;

type Run = Box<
    dyn FnOnce(JobContext) -> futures_util::future::BoxFuture<'static, Result<(), String>> + Send,
>;

/// One delivery as a pool job. It settles itself: when the handler returns, fails,
/// panics or times out, the job hands its [`Ticket`] to the committer with how it
/// ended, in the pool worker's own task (no task per job waits for it). Dropped
/// before that (cancelled by a shutdown, or never started), the ticket releases the
/// entry.
struct Delivery {
    run: Run,
    timeout: Option<Duration>,
    ticket: Ticket,
}

impl otelconc::pool::Job for Delivery {
    type Output = ();

    fn run(self, token: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let Self {
            run,
            timeout,
            ticket,
        } = self;
        async move {
            // The job's own token under a timeout: the worker cancels it when the job
            // times out, and the pool's token (a shutdown) still reaches it.
            let (token, own) = match timeout {
                Some(_) => {
                    let own = token.child_token();
                    (own.clone(), Some(own))
                }
                None => (token, None),
            };
            let cx = JobContext::new(
                ticket.id(),
                ticket.shared.queue.clone(),
                ticket.attempt(),
                token,
            );
            let handler = std::panic::AssertUnwindSafe(run(cx.clone())).catch_unwind();
            let ran = match timeout {
                Some(limit) => tokio::time::timeout(limit, handler).await.ok(),
                None => Some(handler.await),
            };
            let seconds = cx.started().elapsed().as_secs_f64();
            let metrics = &ticket.shared.metrics;
            match ran {
                Some(Ok(Ok(()))) => {
                    metrics.processed(seconds, None);
                    ticket.finish(Ended::Ok(cx.take_effects()));
                }
                Some(Ok(Err(e))) => {
                    metrics.processed(seconds, Some("job"));
                    ticket.finish(Ended::Unfinished(Unfinished::Failed(e, "job")));
                }
                Some(Err(panic)) => {
                    metrics.processed(seconds, Some("panic"));
                    let why = format!("panicked: {}", otelconc::pool::panic_message(&*panic));
                    ticket.finish(Ended::Unfinished(Unfinished::Failed(why, "panic")));
                    // The pool counts it as the panic it is.
                    std::panic::resume_unwind(panic);
                }
                None => {
                    if let Some(own) = own {
                        own.cancel();
                    }
                    metrics.processed(seconds, Some("timeout"));
                    ticket.finish(Ended::Unfinished(Unfinished::Failed(
                        "timed out".into(),
                        "timeout",
                    )));
                }
            }
        }
    }
}

type Submitted = Result<(), otelconc::pool::SubmitError<Delivery>>;

/// Queues the delivery on the pool inside `cx` (the `process` span's context, under
/// which the handler runs). Boxed at a concrete type: the pool's generic submit future
/// trips rustc's higher-ranked `Send` inference inside generic async code.
fn submit(
    pool: WorkerPool,
    delivery: Delivery,
    cx: Context,
) -> futures_util::future::BoxFuture<'static, Submitted> {
    Box::pin(async move { pool.submit_with_context(delivery, &cx).await })
}

/// One delivery's duty to settle: carried by its pool job and consumed once, by
/// [`Ticket::finish`] with how the job ended, or by its drop (the job was cancelled or
/// never started: the entry is released).
struct Ticket {
    shared: Arc<Shared>,
    open: Option<Open>,
}

/// What settling a delivery needs.
struct Open {
    id: Arc<str>,
    attempt: u64,
    span_cx: Context,
    /// Its read slot, or its place in the commit room once it finished.
    permit: OwnedSemaphorePermit,
}

/// What the committer hears.
enum Settle {
    /// A delivery ended.
    Ended(Open, Ended),
    /// Every message before this one was heard: answer once all of them are settled.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Ticket {
    fn id(&self) -> Arc<str> {
        self.open
            .as_ref()
            .map_or_else(|| Arc::from(""), |o| o.id.clone())
    }

    fn attempt(&self) -> u64 {
        self.open.as_ref().map_or(1, |o| o.attempt)
    }

    fn finish(mut self, ended: Ended) {
        if let Some(mut open) = self.open.take() {
            // Done running: while the commit room has space the delivery waits there to
            // be settled (its commit, retry or dead letter) and frees its read slot, so
            // the reader goes on while commits are out.
            if let Ok(room) = self.shared.commit_room.clone().try_acquire_owned() {
                open.permit = room;
            }
            self.shared.hand_over(open, ended);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            self.shared
                .hand_over(open, Ended::Unfinished(Unfinished::Released));
        }
    }
}

/// Settings of a [`Worker`], from [`Worker::builder`].
///
/// # Examples
/// ```no_run
/// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
/// use std::time::Duration;
/// let worker = otelconc_redis::Worker::builder(q, |n: u64, _cx| async move {
///     if n == 0 { Err("zero") } else { Ok(()) }
/// })
/// .workers(4)
/// .visibility_timeout(Duration::from_secs(30))
/// .max_deliveries(5)
/// .start()
/// .await?;
/// # let _ = worker; Ok(()) }
/// ```
pub struct WorkerBuilder<J> {
    queue: Queue<J>,
    handler: Handler<J>,
    workers: usize,
    visibility: Duration,
    heartbeat: Option<Duration>,
    reclaim_interval: Duration,
    max_deliveries: u64,
    backoff_base: Duration,
    backoff_max: Option<Duration>,
    job_timeout: Option<Duration>,
    read_batch: usize,
    block: Duration,
    dedup_ttl: Duration,
    consumer: Option<String>,
    telemetry: Option<Telemetry>,
    metrics_refresh: Duration,
}

impl<J> fmt::Debug for WorkerBuilder<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("queue", &self.queue)
            .field("workers", &self.workers)
            .field("visibility", &self.visibility)
            .field("max_deliveries", &self.max_deliveries)
            .finish_non_exhaustive()
    }
}

/// Consumes a [`Queue`]: see the [crate docs](crate) for its delivery semantics.
///
/// # Examples
/// ```no_run
/// # async fn f(q: otelconc_redis::Queue<u64>) -> Result<(), otelconc_redis::Error> {
/// use std::time::Duration;
/// let worker = otelconc_redis::Worker::builder(q, |_n: u64, _cx| async {
///     Ok::<(), String>(())
/// })
/// .start()
/// .await?;
/// let report = worker.shutdown(Duration::from_secs(10)).await;
/// println!("{} completed", report.completed);
/// # Ok(()) }
/// ```
pub struct Worker {
    shared: Arc<Shared>,
    pool: WorkerPool,
    stop: CancellationToken,
    loops: TaskTracker,
    heartbeat_stop: CancellationToken,
    heartbeat: TaskTracker,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.shared.keys.name)
            .field("consumer", &self.shared.consumer)
            .finish_non_exhaustive()
    }
}

struct Shared {
    keys: Keys,
    /// The queue's name, shared by every delivery's [`JobContext`].
    queue: Arc<str>,
    consumer: Arc<str>,
    /// `process {queue}`, the `process` spans' name.
    process_name: String,
    conn: ConnectionManager,
    visibility: Duration,
    max_deliveries: u64,
    backoff_base: Duration,
    backoff_max: Duration,
    dedup_ttl: Duration,
    /// Whether the server is a Redis Cluster node (effect keys are then checked).
    cluster: bool,
    /// To the committer task (see [`commit_loop`]).
    settles: tokio::sync::mpsc::UnboundedSender<Settle>,
    /// The deliveries running or waiting to be settled, each with what is known of its
    /// lease.
    in_flight: Mutex<HashMap<Arc<str>, Lease>>,
    /// Held by the heartbeat from its snapshot of `in_flight` until its call's answer
    /// is read: a retry or release waits for it (see [`Shared::settling`]).
    heartbeat_call: tokio::sync::Mutex<()>,
    settlers: TaskTracker,
    counts: Counts,
    metrics: WorkerMetrics,
    /// Where the `process` spans go (the builder's handle, else the queue's).
    telemetry: Telemetry,
    /// Room for finished jobs waiting to be settled ([`COMMIT_ROOM`]), apart from the
    /// read slots.
    commit_room: Arc<Semaphore>,
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    reclaimed: AtomicU64,
    completed: AtomicU64,
    duplicates: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    decode_errors: AtomicU64,
    released: AtomicU64,
    leases_lost: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

static CONSUMER_SEQ: AtomicU64 = AtomicU64::new(0);

/// Default of [`WorkerBuilder::metrics_refresh`].
const DEFAULT_METRICS_REFRESH: Duration = Duration::from_secs(5);

/// A consumer name no other process (and no earlier run of this one) uses:
/// host, process id, start time in microseconds and a per-process counter.
fn unique_consumer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let seq = CONSUMER_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{host}-{}-{micros}-{seq}", std::process::id())
}

impl Worker {
    /// A builder for a worker consuming `queue` with `handler`. Defaults: 4 workers,
    /// visibility timeout 30 s, heartbeat every third of it, reclaim every second,
    /// 5 deliveries, backoff from 100 ms doubling up to the visibility timeout, no
    /// per-job timeout, reads of up to 64 entries blocking 1 s, dedup markers kept 24 h,
    /// the queue's levels read for the metrics every 5 s.
    ///
    /// The handler's error `E` is recorded with its `Display` text (in the dead-letter
    /// entry and the `process` span).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(q: otelconc_redis::Queue<String>) {
    /// let b = otelconc_redis::Worker::builder(q, |s: String, _cx| async move {
    ///     s.parse::<u32>().map(|_| ())
    /// });
    /// # let _ = b; }
    /// ```
    pub fn builder<J, H, Fut, E>(queue: Queue<J>, handler: H) -> WorkerBuilder<J>
    where
        J: Serialize + DeserializeOwned + Send + 'static,
        H: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let handler: Handler<J> = Arc::new(move |job, cx| {
            let fut = handler(job, cx);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        WorkerBuilder {
            queue,
            handler,
            workers: 4,
            visibility: Duration::from_secs(30),
            heartbeat: None,
            reclaim_interval: Duration::from_secs(1),
            max_deliveries: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: None,
            job_timeout: None,
            read_batch: 64,
            block: Duration::from_secs(1),
            dedup_ttl: Duration::from_secs(24 * 3600),
            consumer: None,
            telemetry: None,
            metrics_refresh: DEFAULT_METRICS_REFRESH,
        }
    }

    /// This worker's consumer name in the group.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(w: otelconc_redis::Worker) { println!("{}", w.consumer()); }
    /// ```
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// The counts so far (the `pool` field is zero until shutdown).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(w: otelconc_redis::Worker) { println!("{}", w.stats().completed); }
    /// ```
    pub fn stats(&self) -> WorkerReport {
        let c = &self.shared.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerReport {
            received: l(&c.received),
            reclaimed: l(&c.reclaimed),
            completed: l(&c.completed),
            duplicates: l(&c.duplicates),
            retried: l(&c.retried),
            dead_lettered: l(&c.dead_lettered),
            decode_errors: l(&c.decode_errors),
            released: l(&c.released),
            leases_lost: l(&c.leases_lost),
            pool: Default::default(),
        }
    }

    /// Stops reading and reclaiming, lets running and queued jobs finish until
    /// `deadline` (each committed, retried or dead-lettered as usual), cancels the rest
    /// (released: left pending, reclaimable at once by another consumer; so are entries
    /// read but still waiting for room in the pool's queue, at once), stops the
    /// heartbeats, removes this consumer from the group if it holds no entry, and
    /// returns the final counts. Waits up to the read block time (1 s by default) for a
    /// read in progress to return.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped midway, the worker keeps shutting down in its tasks but
    /// the report is lost.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(w: otelconc_redis::Worker) {
    /// let report = w.shutdown(std::time::Duration::from_secs(30)).await;
    /// assert!(report.adds_up());
    /// # }
    /// ```
    pub async fn shutdown(self, deadline: Duration) -> WorkerReport {
        self.stop.cancel();
        self.loops.close();
        self.loops.wait().await;
        let pool_report = self.pool.shutdown(deadline).await;
        // Every job has handed its delivery over by now (finished, cancelled or
        // dropped unstarted): wait until the committer has settled them all.
        let (flushed, done) = tokio::sync::oneshot::channel();
        if self.shared.settles.send(Settle::Flush(flushed)).is_ok() {
            let _ = done.await;
        }
        self.shared.settlers.close();
        self.shared.settlers.wait().await;
        self.heartbeat_stop.cancel();
        self.heartbeat.close();
        self.heartbeat.wait().await;
        let mut conn = self.shared.conn.clone();
        let _: redis::RedisResult<i64> = Call::default()
            .key(&self.shared.keys.stream)
            .arg(GROUP)
            .arg(&*self.shared.consumer)
            .invoke(&DELETE_IF_IDLE_SCRIPT, &mut conn)
            .await;
        let mut report = self.stats();
        report.pool = pool_report;
        report
    }

    /// Stops at once: [`shutdown`](Self::shutdown) with no deadline. Running jobs are
    /// cancelled and released to other consumers.
    ///
    /// # Cancel safety
    /// As [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(w: otelconc_redis::Worker) {
    /// let report = w.abort().await;
    /// # let _ = report; }
    /// ```
    pub async fn abort(self) -> WorkerReport {
        self.shutdown(Duration::ZERO).await
    }
}

impl<J> WorkerBuilder<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    /// Jobs run at once (the pool's workers). Default 4.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.workers(16); }
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How long an entry may sit unacked without a heartbeat before another consumer
    /// reclaims it. Default 30 s.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.visibility_timeout(std::time::Duration::from_secs(60)); }
    /// ```
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility = timeout;
        self
    }

    /// How often running jobs' idle times are reset; must be shorter than the visibility
    /// timeout. Default a third of it.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.heartbeat(std::time::Duration::from_secs(5)); }
    /// ```
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every);
        self
    }

    /// How often to look for entries idle past the visibility timeout (and failed
    /// entries whose backoff passed). Default 1 s.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.reclaim_interval(std::time::Duration::from_millis(200)); }
    /// ```
    pub fn reclaim_interval(mut self, every: Duration) -> Self {
        self.reclaim_interval = every;
        self
    }

    /// Deliveries before a failing job is dead-lettered. Default 5; at least 1.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.max_deliveries(3); }
    /// ```
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.max_deliveries = deliveries;
        self
    }

    /// Retry backoff: `base * 2^(attempt-1)`, at most `max` (default, and at most, the
    /// visibility timeout). Default base 100 ms.
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.backoff(Duration::from_millis(50), Duration::from_secs(5)); }
    /// ```
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = Some(max);
        self
    }

    /// A per-job timeout: a job running longer fails with `timed out` (`error.type`
    /// `timeout`; retried, or dead-lettered at `max_deliveries`). Its handler's future is
    /// dropped and its [`JobContext::token`] fires. Default none; at least 1 ms
    /// ([`start`](Self::start) refuses a shorter one).
    ///
    /// The worker enforces it around the handler, not the pool: the pool counts a timed
    /// out job as completed in [`WorkerReport::pool`], while the worker's own counts,
    /// metrics and `process` span say it timed out.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.job_timeout(std::time::Duration::from_secs(10)); }
    /// ```
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = Some(timeout);
        self
    }

    /// Most entries taken per `XREADGROUP`. Default 64.
    ///
    /// A worker reads only as many entries as it has room for: at most
    /// `workers + 2 × max(workers, read_batch)` running, queued for its pool, or read
    /// and waiting for room in that queue, plus up to 512 finished ones waiting to be
    /// settled: committed in batches (one commit of up to 128 jobs out at a time), or
    /// retried or dead-lettered.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.read_batch(128); }
    /// ```
    pub fn read_batch(mut self, batch: usize) -> Self {
        self.read_batch = batch;
        self
    }

    /// How long one `XREADGROUP` blocks when the queue is empty (also the longest a
    /// shutdown waits for a read in progress). Default 1 s.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.read_block(std::time::Duration::from_millis(100)); }
    /// ```
    pub fn read_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// How long a job's dedup marker is kept after its commit: a duplicate delivery
    /// committing later than this applies its effects again. Default 24 h; at least 1 ms
    /// (it is set in milliseconds; [`start`](Self::start) refuses a shorter one). Each marker
    /// holds about 150 bytes of Redis memory for this long (only jobs with effects set
    /// one): see the [crate docs](crate#delivery-semantics).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.dedup_ttl(std::time::Duration::from_secs(7 * 24 * 3600)); }
    /// ```
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.dedup_ttl = ttl;
        self
    }

    /// Records the worker's metrics (and its pool's) and its `process` spans through
    /// `telemetry` instead of the queue's handle (see [`Queue::with_telemetry`]).
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.telemetry(otelconc::telemetry::Telemetry::global()); }
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// How often the worker reads the queue's levels from Redis (`XPENDING` and
    /// `XINFO GROUPS`: two commands in one round trip) for the gauges
    /// `otelconc.queue.pending`, `otelconc.queue.lag` and
    /// `otelconc.queue.pending.oldest.age`. A collection reports the last values read,
    /// so they are at most this old. Default 5 s; the first read is at start.
    ///
    /// # Examples
    /// ```no_run
    /// # fn f(b: otelconc_redis::WorkerBuilder<u64>) { let _ = b.metrics_refresh(std::time::Duration::from_secs(15)); }
    /// ```
    pub fn metrics_refresh(mut self, every: Duration) -> Self {
        self.metrics_refresh = every;
        self
    }

    /// Starts the worker: its pool, reader, reclaimer and heartbeat tasks, on their own
    /// connections.
    ///
    /// # Errors
    /// [`Error::Config`] for a setting out of range: zero workers, read batch or
    /// deliveries; a visibility timeout, read block, heartbeat, reclaim interval,
    /// metrics refresh, job timeout or dedup TTL under 1 ms; a heartbeat not shorter
    /// than the visibility timeout;
    /// [`Error::Redis`] when Redis cannot be reached (within
    /// [`CONNECT_TIMEOUT`](crate::CONNECT_TIMEOUT)).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(b: otelconc_redis::WorkerBuilder<u64>) -> Result<(), otelconc_redis::Error> {
    /// let worker = b.start().await?;
    /// # let _ = worker; Ok(()) }
    /// ```
    pub async fn start(self) -> Result<Worker, Error> {
        let heartbeat = self.heartbeat.unwrap_or(self.visibility / 3);
        if self.workers == 0 || self.read_batch == 0 || self.max_deliveries == 0 {
            return Err(Error::Config(
                "workers, read_batch and max_deliveries must be at least 1".into(),
            ));
        }
        let ms = Duration::from_millis(1);
        // The dedup TTL is a `SET ... PX` in milliseconds, which Redis refuses at 0: a
        // shorter one would fail every commit of a job with effects.
        if self.visibility < ms
            || self.block < ms
            || heartbeat.is_zero()
            || self.reclaim_interval.is_zero()
            || self.metrics_refresh.is_zero()
            || self.job_timeout.is_some_and(|t| t < ms)
            || self.dedup_ttl < ms
        {
            return Err(Error::Config(
                "visibility timeout, read block, heartbeat, reclaim interval, metrics refresh, job timeout and dedup TTL must be at least 1 ms".into(),
            ));
        }
        if heartbeat >= self.visibility {
            return Err(Error::Config(format!(
                "heartbeat ({heartbeat:?}) must be shorter than the visibility timeout ({:?})",
                self.visibility
            )));
        }
        let telemetry = self
            .telemetry
            .clone()
            .unwrap_or_else(|| self.queue.inner.telemetry.clone());
        // The pool's metrics, but not its `otelconc.pool.job` span: the `process` span
        // already covers the job's run (and its failure), so a third span per job would
        // only add export cost. The handler still runs under the `process` span.
        // The job timeout is the delivery's own (see `Delivery`), so the job settles
        // itself as timed out; the pool has none.
        let pool = WorkerPool::builder(format!("redis:{}", self.queue.name()))
            .telemetry(telemetry.clone().with_span_policy(SpanPolicy::Never))
            .workers(self.workers)
            .queue_capacity(self.workers.max(self.read_batch))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let client = self.queue.inner.client.clone();
        let url = client.get_connection_info().addr().to_string();
        let (conn, read_conn, cluster) = within_connect_timeout(&url, async {
            let conn = ConnectionManager::new_with_config(
                client.clone(),
                manager_config(RESPONSE_TIMEOUT),
            )
            .await?;
            let read_conn = ConnectionManager::new_with_config(
                client.clone(),
                manager_config(RESPONSE_TIMEOUT + self.block),
            )
            .await?;
            let mut info_conn = conn.clone();
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut info_conn)
                .await?;
            let cluster = info.lines().any(|l| l.trim() == "cluster_enabled:1");
            Ok((conn, read_conn, cluster))
        })
        .await?;
        let (settles_tx, settles_rx) = tokio::sync::mpsc::unbounded_channel();
        let queue = self.queue.keys().name_arc();
        let shared = Arc::new(Shared {
            keys: self.queue.keys().clone(),
            metrics: WorkerMetrics::new(&telemetry, &queue),
            queue,
            consumer: self.consumer.clone().unwrap_or_else(unique_consumer).into(),
            process_name: format!("process {}", self.queue.name()),
            conn,
            visibility: self.visibility,
            max_deliveries: self.max_deliveries,
            backoff_base: self.backoff_base,
            backoff_max: self
                .backoff_max
                .unwrap_or(self.visibility)
                .min(self.visibility),
            dedup_ttl: self.dedup_ttl,
            cluster,
            settles: settles_tx,
            in_flight: Mutex::new(HashMap::new()),
            heartbeat_call: tokio::sync::Mutex::new(()),
            settlers: TaskTracker::new(),
            counts: Counts::default(),
            telemetry,
            commit_room: Arc::new(Semaphore::new(COMMIT_ROOM)),
        });
        // In flight at once: what the pool runs, what its queue holds, and one read
        // batch in the reader's hands waiting for room in that queue, so the next read
        // can take a whole batch while the pool works through the last one (finished
        // jobs waiting for their commit move to `commit_room` while it has room).
        let slots = Arc::new(Semaphore::new(
            self.workers + 2 * self.workers.max(self.read_batch),
        ));
        let stop = CancellationToken::new();
        let loops = TaskTracker::new();
        let d = Dispatch {
            shared: shared.clone(),
            pool: pool.clone(),
            handler: self.handler.clone(),
            slots: slots.clone(),
            timeout: self.job_timeout,
            stop: stop.clone(),
        };
        loops.spawn(read_loop(
            d.clone(),
            read_conn,
            self.read_batch,
            self.block,
            stop.clone(),
        ));
        loops.spawn(reclaim_loop(
            d,
            self.reclaim_interval,
            self.read_batch,
            stop.clone(),
        ));
        let heartbeat_stop = CancellationToken::new();
        let hb = TaskTracker::new();
        hb.spawn(heartbeat_loop(
            shared.clone(),
            heartbeat,
            heartbeat_stop.clone(),
        ));
        hb.spawn(commit_loop(
            shared.clone(),
            settles_rx,
            hb.clone(),
            heartbeat_stop.clone(),
        ));
        hb.spawn(levels_loop(
            shared.clone(),
            self.metrics_refresh,
            heartbeat_stop.clone(),
        ));
        Ok(Worker {
            shared,
            pool,
            stop,
            loops,
            heartbeat_stop,
            heartbeat: hb,
        })
    }
}

struct Dispatch<J> {
    shared: Arc<Shared>,
    pool: WorkerPool,
    handler: Handler<J>,
    slots: Arc<Semaphore>,
    timeout: Option<Duration>,
    /// The reader's and reclaimer's stop: a delivery still waiting for room in the pool
    /// when it fires is released instead (the pool may have no room until a job ends).
    stop: CancellationToken,
}

impl<J> Clone for Dispatch<J> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            pool: self.pool.clone(),
            handler: self.handler.clone(),
            slots: self.slots.clone(),
            timeout: self.timeout,
            stop: self.stop.clone(),
        }
    }
}

impl<J> Dispatch<J> {
    /// A read slot, waiting for one while they are all taken; `None` once `stop` fired
    /// (the slots free up only as jobs end, which a shutdown need not wait for).
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            p = self.slots.clone().acquire_owned() => p.ok(),
            () = self.stop.cancelled() => None,
        }
    }

    /// Stopped while waiting for a slot: the entries read (or, `reclaimed`, claimed)
    /// and not dispatched go back to the group, counted as received and released.
    async fn give_back(&self, ids: impl Iterator<Item = String>, reclaimed: bool) {
        for id in ids {
            bump(&self.shared.counts.received);
            if reclaimed {
                bump(&self.shared.counts.reclaimed);
            }
            self.shared.release_now(&id).await;
        }
    }
}

/// Waits for `d`, or returns false when `stop` fires first.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

async fn read_loop<J: DeserializeOwned + Send + 'static>(
    d: Dispatch<J>,
    mut conn: ConnectionManager,
    batch: usize,
    block: Duration,
    stop: CancellationToken,
) {
    let keys = d.shared.keys.clone();
    while !stop.is_cancelled() {
        // Read only as many entries as there are free slots (at least one).
        let first = tokio::select! {
            () = stop.cancelled() => break,
            p = d.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let count = (d.slots.available_permits() + 1).min(batch);
        let reply: redis::RedisResult<redis::Value> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&*d.shared.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&keys.stream)
            .arg(">")
            .query_async(&mut conn)
            .await;
        match reply.map_err(|e| e.to_string()).and_then(read_entries) {
            Ok(entries) => {
                let mut first = Some(first);
                d.shared.metrics.consumed(entries.len() as u64, false);
                let mut entries = entries.into_iter();
                while let Some(entry) = entries.next() {
                    let permit = match first.take() {
                        Some(p) => p,
                        None => match d.slot().await {
                            Some(p) => p,
                            None => {
                                d.give_back(
                                    std::iter::once(entry).chain(entries).map(|e| e.id),
                                    false,
                                )
                                .await;
                                return;
                            }
                        },
                    };
                    bump(&d.shared.counts.received);
                    d.dispatch(entry, 1, permit).await;
                }
            }
            Err(_) => {
                // Redis unreachable (the connection manager reconnects), or a reply
                // that is not an XREADGROUP reply: try again soon.
                drop(first);
                if !pause(&stop, Duration::from_millis(100)).await {
                    break;
                }
            }
        }
    }
}

async fn reclaim_loop<J: DeserializeOwned + Send + 'static>(
    d: Dispatch<J>,
    every: Duration,
    batch: usize,
    stop: CancellationToken,
) {
    let mut conn = d.shared.conn.clone();
    let mut cursor = "0-0".to_string();
    while pause(&stop, every).await {
        loop {
            let free = d.slots.available_permits().min(batch);
            if free == 0 || stop.is_cancelled() {
                break;
            }
            let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                .arg(&d.shared.keys.stream)
                .arg(GROUP)
                .arg(&*d.shared.consumer)
                .arg(d.shared.visibility.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(free)
                .query_async(&mut conn)
                .await;
            let Ok(reply) = reply else { break };
            cursor = reply.next_stream_id.clone();
            let claimed = reply.claimed;
            if !claimed.is_empty() {
                d.shared.metrics.consumed(claimed.len() as u64, true);
                let counts = delivery_counts(&mut conn, &d.shared.keys.stream, &claimed).await;
                let mut claimed = claimed.into_iter();
                while let Some(entry) = claimed.next() {
                    let Some(permit) = d.slot().await else {
                        d.give_back(std::iter::once(entry).chain(claimed).map(|e| e.id), true)
                            .await;
                        return;
                    };
                    bump(&d.shared.counts.received);
                    bump(&d.shared.counts.reclaimed);
                    let attempt = counts.get(&entry.id).copied().unwrap_or(2);
                    d.dispatch(Entry::from(entry), attempt, permit).await;
                }
            }
            if cursor == "0-0" {
                break;
            }
        }
    }
}

/// Redis's delivery count of each claimed entry (one pipelined `XPENDING` per entry).
async fn delivery_counts(
    conn: &mut ConnectionManager,
    stream: &str,
    claimed: &[StreamId],
) -> HashMap<String, u64> {
    let mut pipe = redis::pipe();
    for e in claimed {
        pipe.cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .arg(&e.id)
            .arg(&e.id)
            .arg(1);
    }
    let replies: redis::RedisResult<Vec<StreamPendingCountReply>> = pipe.query_async(conn).await;
    replies
        .map(|rs| {
            rs.into_iter()
                .flat_map(|r| r.ids)
                .map(|p| (p.id, p.times_delivered as u64))
                .collect()
        })
        .unwrap_or_default()
}

async fn heartbeat_loop(shared: Arc<Shared>, every: Duration, stop: CancellationToken) {
    let mut conn = shared.conn.clone();
    while pause(&stop, every).await {
        let _call = shared.heartbeat_call.lock().await;
        // Not those known lost: they are another consumer's now. Nor those being
        // settled: the settling call decides their idle time (a retry's backoff).
        let ids: Vec<Arc<str>> = shared
            .in_flight()
            .iter()
            .filter(|(_, lease)| !lease.lost && !lease.settling)
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let mut call = Call::default();
        call.key(&shared.keys.stream)
            .arg(GROUP)
            .arg(&*shared.consumer);
        for id in &ids {
            call.arg(&**id);
        }
        let lost: redis::RedisResult<Vec<String>> = call.invoke(&HEARTBEAT_SCRIPT, &mut conn).await;
        if let Ok(lost) = lost {
            // An id this worker acked between the snapshot and the script is not a lost
            // lease: its settling call was out by then (and may still be, its answer
            // not read yet), or it is settled and out of the set.
            let mut in_flight = shared.in_flight();
            for id in &lost {
                if let Some(lease) = in_flight.get_mut(id.as_str())
                    && !lease.settling
                    && !std::mem::replace(&mut lease.lost, true)
                {
                    bump(&shared.counts.leases_lost);
                }
            }
        }
    }
}

/// Most jobs committed by one call.
const COMMIT_BATCH: usize = 128;
/// Commit calls in flight at once; while they are all out, finished jobs gather into
/// the next batch. One: the batches grow with the load (a group commit), and Redis
/// pays its per-call cost once per batch instead of once per few jobs.
const COMMITS_IN_FLIGHT: usize = 1;
/// Finished jobs that may wait to be settled (committed, retried or dead-lettered)
/// without holding a read slot.
const COMMIT_ROOM: usize = 512;

/// Settles deliveries as their jobs hand them over ([`Ticket`]). Completed ones are
/// committed in batches: one commit ([`Shared::commit_batch`]: a call for the jobs
/// without effects and one for those with, sent together) for every job that completed
/// while the previous commit was out (up to [`COMMIT_BATCH`]), each job still with its
/// own dedup marker, effects and outcome; the answers settle each job in the commit's
/// own task. Failed and
/// released ones each get a task of their own (a retry, a dead letter or a release).
/// Runs until `stop`, which [`Worker::shutdown`] fires only after a
/// [`Settle::Flush`] was answered.
async fn commit_loop(
    shared: Arc<Shared>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Settle>,
    calls: TaskTracker,
    stop: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    let mut batch: Vec<(Open, Effects)> = Vec::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            p = in_flight.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let first = tokio::select! {
            () = stop.cancelled() => break,
            m = rx.recv() => match m { Some(m) => m, None => break },
        };
        let mut flush = None;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Settle::Ended(open, Ended::Ok(effects)) => batch.push((open, effects)),
                Settle::Ended(open, Ended::Unfinished(unfinished)) => {
                    let shared = shared.clone();
                    shared.settlers.clone().spawn(async move {
                        shared.settle_unfinished(open, unfinished).await;
                    });
                }
                Settle::Flush(done) => {
                    flush = Some(done);
                    break;
                }
            }
            if batch.len() < COMMIT_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            drop(permit);
        } else {
            let jobs = std::mem::take(&mut batch);
            let shared = shared.clone();
            calls.spawn(async move {
                shared.commit_batch(jobs).await;
                drop(permit);
            });
        }
        if let Some(done) = flush {
            // Every delivery handed over before the flush is in a call or a settler.
            let _ = in_flight.acquire_many(COMMITS_IN_FLIGHT as u32).await;
            shared.settlers.close();
            shared.settlers.wait().await;
            let _ = done.send(());
        }
    }
}

/// What a worker knows of the lease on one of its deliveries.
#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    /// Found owned by another consumer (so one entry counts once in `leases_lost`).
    lost: bool,
    /// The call that settles it (commit, retry, dead letter or release) is out: it acks
    /// the entry or sets its idle time, and finds by itself whether another consumer
    /// owns it. Heartbeats leave the entry alone from then on, and a heartbeat that
    /// finds it no longer pending (acked by that call) has found no lost lease.
    settling: bool,
}

impl Shared {
    /// The ids of the deliveries running or waiting to be settled, for the heartbeats,
    /// each with what is known of its lease. Nothing panics while holding it, so a
    /// poisoned lock still holds a whole map.
    fn in_flight(&self) -> MutexGuard<'_, HashMap<Arc<str>, Lease>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks deliveries whose settling call is about to go out (see [`Lease::settling`]).
    fn settling<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut in_flight = self.in_flight();
        for id in ids {
            if let Some(lease) = in_flight.get_mut(id) {
                lease.settling = true;
            }
        }
    }

    /// Counts a lease found lost on entry `id`, unless a heartbeat or an earlier
    /// settling step already counted this delivery's.
    fn lease_lost(&self, id: &str) {
        let first = match self.in_flight().get_mut(id) {
            Some(lease) => !std::mem::replace(&mut lease.lost, true),
            None => true,
        };
        if first {
            bump(&self.counts.leases_lost);
        }
    }

    /// Hands a delivery to the committer; when the committer is gone (the worker is
    /// being dropped), settles it here as released: it stays pending in Redis, and is
    /// reclaimed after the visibility timeout.
    fn hand_over(&self, open: Open, ended: Ended) {
        if let Err(e) = self.settles.send(Settle::Ended(open, ended))
            && let Settle::Ended(open, _) = e.0
        {
            self.count_released();
            self.close(open, Notes::released());
        }
    }

    /// The end of a delivery: out of the in-flight set, its span ended with `notes`,
    /// its slot freed.
    fn close(&self, open: Open, notes: Notes) {
        self.in_flight().remove(&*open.id);
        let span = open.span_cx.span();
        if let Some(et) = notes.error_type {
            span.set_attribute(KeyValue::new(ATTR_ERROR_TYPE, et));
        }
        if let Some(kv) = notes.mark {
            span.set_attribute(kv);
        }
        if let Some(e) = notes.error {
            span.set_status(Status::error(e));
        }
        span.end();
        drop(open.permit);
    }

    /// Commits one batch and settles each job. Jobs without effects need no dedup
    /// marker and no script: their entries are acked and deleted by one `MULTI` /
    /// `XACK` / `XDEL` / `EXEC`, each one completed. Jobs with effects go through the
    /// commit script, which applies each one's effects at most once. With both kinds in
    /// a batch the two calls go out together.
    async fn commit_batch(&self, batch: Vec<(Open, Effects)>) {
        self.settling(batch.iter().map(|(open, _)| &*open.id));
        let (plain, effects): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, e)| e.is_empty());
        tokio::join!(self.commit_plain(plain), self.commit_effects(effects));
    }

    async fn commit_plain(&self, batch: Vec<(Open, Effects)>) {
        if batch.is_empty() {
            return;
        }
        let ids: Vec<&str> = batch.iter().map(|(o, _)| &*o.id).collect();
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(&ids)
            .ignore()
            .cmd("XDEL")
            .arg(&self.keys.stream)
            .arg(&ids)
            .ignore()
            .query_async(&mut conn)
            .await;
        let n = batch.len();
        self.settle_committed(batch, r.map(|()| vec![(1, String::new()); n]));
    }

    async fn commit_effects(&self, batch: Vec<(Open, Effects)>) {
        if batch.is_empty() {
            return;
        }
        let mut call = Call::default();
        call.key(&self.keys.stream).key(&self.keys.dead);
        for (open, _) in &batch {
            call.key(self.keys.done(&open.id));
        }
        call.arg(GROUP)
            .arg(self.dedup_ttl.as_millis() as u64)
            .arg(if self.cluster { "1" } else { "0" })
            .arg(batch.len());
        for (open, effects) in &batch {
            call.arg(&*open.id).arg(open.attempt).arg(effects.len());
            for cmd in effects {
                call.arg(cmd.len());
                for a in cmd {
                    call.arg(a.as_slice());
                }
            }
        }
        let mut conn = self.conn.clone();
        let r = call.invoke(&COMMIT_SCRIPT, &mut conn).await;
        self.settle_committed(batch, r);
    }

    /// Settles each job of a committed batch by its own `(code, error)` of `results`
    /// (as the commit script answers; a plain commit answers `(1, "")` for each), or by
    /// the call's error.
    fn settle_committed(
        &self,
        batch: Vec<(Open, Effects)>,
        results: redis::RedisResult<Vec<(i64, String)>>,
    ) {
        let results = match results {
            Ok(r) if r.len() != batch.len() => {
                Err(redis::RedisError::from(std::io::Error::other(format!(
                    "the commit script answered {} results for {} jobs",
                    r.len(),
                    batch.len()
                ))))
            }
            other => other,
        };
        match results {
            Ok(results) => {
                for ((open, _), result) in batch.into_iter().zip(results) {
                    self.committed(open, Ok(result));
                }
            }
            Err(e) => {
                for (open, _) in batch {
                    self.committed(open, Err(e.clone()));
                }
            }
        }
    }

    /// Settles a completed delivery by its commit's answer: `(code, error)` as the
    /// commit script returns it, or the call's error.
    fn committed(&self, open: Open, r: redis::RedisResult<(i64, String)>) {
        let mut notes = Notes::default();
        match r {
            Ok((1, _)) => {
                bump(&self.counts.completed);
                self.metrics.settled(Outcome::Completed, None);
            }
            Ok((0, _)) => {
                notes.mark = Some(KeyValue::new("otelconc.job.duplicate", true));
                bump(&self.counts.duplicates);
                self.metrics.settled(Outcome::Duplicate, None);
            }
            Ok((_, err)) => {
                notes.error_type = Some("effect");
                notes.error = Some(err);
                bump(&self.counts.dead_lettered);
                self.metrics.settled(Outcome::DeadLettered, Some("effect"));
            }
            Err(e) => {
                // Left pending: reclaimed after the visibility timeout.
                notes.error_type = Some("commit");
                notes.error = Some(e.to_string());
                self.count_released();
            }
        }
        self.close(open, notes);
    }
}

/// What a release (or retry) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Released {
    /// Its idle time is set.
    Done,
    /// Another consumer owns the entry now (or it was acked): left alone.
    NotOwned,
    /// Redis could not be reached: it stays pending and is reclaimed after the
    /// visibility timeout.
    Unreachable,
}

/// Reads the queue's levels every `every` for the gauges (see
/// [`WorkerBuilder::metrics_refresh`]): `XPENDING` (summary) and `XINFO GROUPS`, in
/// one round trip.
async fn levels_loop(shared: Arc<Shared>, every: Duration, stop: CancellationToken) {
    let mut conn = shared.conn.clone();
    loop {
        let mut pipe = redis::pipe();
        pipe.cmd("XPENDING").arg(&shared.keys.stream).arg(GROUP);
        pipe.cmd("XINFO").arg("GROUPS").arg(&shared.keys.stream);
        pipe.cmd("XLEN").arg(&shared.keys.stream);
        let r: redis::RedisResult<(redis::Value, redis::Value, i64)> =
            pipe.query_async(&mut conn).await;
        if let Ok((pending, groups, len)) = r {
            let levels = &shared.metrics.levels;
            let (count, oldest) = pending_summary(&pending);
            levels.pending.store(count, Ordering::Relaxed);
            let age = oldest.map_or(-1, |ms| now_ms().saturating_sub(ms) as i64);
            levels.oldest_ms.store(age, Ordering::Relaxed);
            // Redis 7.0 reports no lag once entries were deleted from the stream (as
            // every ack here does); the stream then holds only undelivered and pending
            // entries, so the lag is its length less the pending ones.
            let lag = group_lag(&groups).unwrap_or((len - count).max(0));
            levels.lag.store(lag, Ordering::Relaxed);
            levels.valid.store(true, Ordering::Release);
        }
        if !pause(&stop, every).await {
            break;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The count and the smallest id's time (ms) of an `XPENDING key group` summary.
fn pending_summary(v: &redis::Value) -> (i64, Option<u64>) {
    let redis::Value::Array(items) = v else {
        return (0, None);
    };
    let count = match items.first() {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    };
    let oldest = items
        .get(1)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .and_then(|id| id.split('-').next().and_then(|ms| ms.parse().ok()));
    (count, oldest)
}

/// The `lag` of this crate's group in an `XINFO GROUPS` reply (Redis 7.0+; `None` when
/// Redis cannot tell, or an older server does not say).
fn group_lag(v: &redis::Value) -> Option<i64> {
    let redis::Value::Array(groups) = v else {
        return None;
    };
    for g in groups {
        let pairs: Vec<(String, redis::Value)> = match g {
            redis::Value::Array(flat) => flat
                .chunks(2)
                .filter_map(|kv| match kv {
                    [k, v] => redis::from_redis_value_ref::<String>(k)
                        .ok()
                        .map(|k| (k, v.clone())),
                    _ => None,
                })
                .collect(),
            redis::Value::Map(m) => m
                .iter()
                .filter_map(|(k, v)| {
                    redis::from_redis_value_ref::<String>(k)
                        .ok()
                        .map(|k| (k, v.clone()))
                })
                .collect(),
            _ => continue,
        };
        let name = pairs
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| redis::from_redis_value_ref::<String>(v).ok());
        if name.as_deref() != Some(GROUP) {
            continue;
        }
        return pairs
            .iter()
            .find(|(k, _)| k == "lag")
            .and_then(|(_, v)| match v {
                redis::Value::Int(n) => Some(*n),
                _ => None,
            });
    }
    None
}

/// One stream entry as read: its id and its fields, in the order Redis sent them (a
/// handful: the job and the trace context, so a scan beats hashing).
struct Entry {
    id: String,
    fields: Vec<(Vec<u8>, redis::Value)>,
}

impl Entry {
    fn get(&self, name: &str) -> Option<&redis::Value> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| v)
    }
}

impl From<StreamId> for Entry {
    fn from(s: StreamId) -> Self {
        Self {
            id: s.id,
            fields: s
                .map
                .into_iter()
                .map(|(k, v)| (k.into_bytes(), v))
                .collect(),
        }
    }
}

/// An entry's fields as a propagation carrier: the propagator reads `traceparent`,
/// `tracestate` and `baggage` straight from the entry.
impl opentelemetry::propagation::Extractor for Entry {
    fn get(&self, key: &str) -> Option<&str> {
        match Entry::get(self, key)? {
            redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
            redis::Value::SimpleString(s) => Some(s),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter_map(|(k, _)| std::str::from_utf8(k).ok())
            .collect()
    }
}

/// The entries of an `XREADGROUP` reply, taken apart without copying them (the typed
/// `StreamReadReply` clones every field into a map): RESP2 (an array of `[stream,
/// entries]` pairs) or RESP3 (a map from stream to entries); nil when the read timed
/// out.
fn read_entries(reply: redis::Value) -> Result<Vec<Entry>, String> {
    use redis::Value;
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|pair| match pair {
                Value::Array(pair) => match <[Value; 2]>::try_from(pair) {
                    Ok([_, entries]) => Ok(entries),
                    Err(_) => Err("an XREADGROUP stream is not a [name, entries] pair".to_string()),
                },
                _ => Err("an XREADGROUP stream is not a [name, entries] pair".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err("the XREADGROUP reply is not an array or a map".to_string()),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            return Err("an XREADGROUP stream's entries are not an array".to_string());
        };
        out.reserve(entries.len());
        for entry in entries {
            let Value::Array(parts) = entry else {
                return Err("an XREADGROUP entry is not an array".to_string());
            };
            let mut parts = parts.into_iter();
            let id = match parts.next() {
                Some(Value::BulkString(b)) => {
                    String::from_utf8(b).map_err(|_| "an entry id is not UTF-8".to_string())?
                }
                Some(Value::SimpleString(s)) => s,
                _ => return Err("an XREADGROUP entry has no id".to_string()),
            };
            let fields = match parts.next() {
                Some(Value::Array(flat)) => {
                    let mut fields = Vec::with_capacity(flat.len() / 2);
                    let mut flat = flat.into_iter();
                    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                        fields.push((field_name(k), v));
                    }
                    fields
                }
                Some(Value::Map(pairs)) => {
                    pairs.into_iter().map(|(k, v)| (field_name(k), v)).collect()
                }
                // An entry deleted while pending reads as nil fields.
                _ => Vec::new(),
            };
            out.push(Entry { id, fields });
        }
    }
    Ok(out)
}

fn field_name(v: redis::Value) -> Vec<u8> {
    match v {
        redis::Value::BulkString(b) => b,
        redis::Value::SimpleString(s) => s.into_bytes(),
        _ => Vec::new(),
    }
}

/// What settling writes on the `process` span: at most an `error.type`, one mark
/// (duplicate, dead-lettered or released) and an error status. Fixed fields, so a
/// delivery with no span (outside a sampled trace) allocates nothing for them.
#[derive(Default)]
struct Notes {
    error_type: Option<&'static str>,
    mark: Option<KeyValue>,
    error: Option<String>,
}

impl Notes {
    /// A delivery left for another consumer.
    fn released() -> Self {
        Self {
            mark: Some(KeyValue::new(ATTR_OUTCOME, "released")),
            ..Self::default()
        }
    }
}

/// How a delivery ended.
enum Ended {
    /// The handler returned `Ok`; the effects it added. Committed in a batch.
    Ok(Effects),
    /// Settled on its own: a retry, a dead letter or a release.
    Unfinished(Unfinished),
}

/// A delivery that did not succeed.
enum Unfinished {
    /// The error and its `error.type`.
    Failed(String, &'static str),
    /// Cancelled or never started: left for another consumer.
    Released,
}

impl<J: DeserializeOwned + Send + 'static> Dispatch<J> {
    /// Decodes `entry` and hands it to the pool; an undecodable entry is dead-lettered.
    async fn dispatch(&self, entry: Entry, attempt: u64, permit: OwnedSemaphorePermit) {
        let s = &self.shared;
        if attempt > s.max_deliveries {
            let why = format!(
                "delivered {} times without an outcome (max_deliveries {}): its consumers were lost",
                attempt - 1,
                s.max_deliveries
            );
            s.clone()
                .dead_letter_owned(entry.id, why, attempt - 1, "lost")
                .await;
            drop(permit);
            return;
        }
        let decoded: Result<J, String> = match entry.get(JOB_FIELD) {
            None => Err(format!(
                "decode error: the entry has no `{JOB_FIELD}` field"
            )),
            Some(redis::Value::BulkString(bytes)) => {
                serde_json::from_slice(bytes).map_err(|e| format!("decode error: {e}"))
            }
            Some(redis::Value::SimpleString(text)) => {
                serde_json::from_str(text).map_err(|e| format!("decode error: {e}"))
            }
            Some(_) => Err(format!(
                "decode error: the `{JOB_FIELD}` field is not a string"
            )),
        };
        let job = match decoded {
            Ok(job) => job,
            Err(why) => {
                s.clone()
                    .dead_letter_owned(entry.id, why, attempt, "decode")
                    .await;
                drop(permit);
                return;
            }
        };
        let creation = otelconc::telemetry::extract(&entry);
        let id: Arc<str> = entry.id.into();
        // As everywhere in otelconc, a span only inside a sampled trace (unless the
        // handle's span policy is `Always`; `process_span` builds none under `Never`):
        // an entry submitted outside one (or with no SDK at the producer) still runs
        // under the context it carried (baggage included), without a span.
        let span_cx = if s.telemetry.span_policy() == SpanPolicy::Always
            || creation.span().span_context().is_sampled()
        {
            crate::telemetry::process_span(
                &s.telemetry,
                &creation,
                &s.process_name,
                &s.queue,
                &id,
                &s.consumer,
                attempt,
            )
            .unwrap_or(creation)
        } else {
            creation
        };
        s.in_flight().insert(id.clone(), Lease::default());
        let handler = self.handler.clone();
        // Erases `J` before the pool sees the job.
        let run: Run = Box::new(move |cx| handler(job, cx));
        let delivery = Delivery {
            run,
            timeout: self.timeout,
            ticket: Ticket {
                shared: s.clone(),
                open: Some(Open {
                    id,
                    attempt,
                    span_cx: span_cx.clone(),
                    permit,
                }),
            },
        };
        // A pool that closed (shutdown) hands the delivery back, and dropping it
        // releases the entry to another consumer. So does a stop while the delivery
        // waits for room in the pool's queue (room comes only as jobs end, and a
        // shutdown must not wait for that): the dropped submit never queued it.
        tokio::select! {
            biased;
            _ = submit(self.pool.clone(), delivery, span_cx) => {}
            () = self.stop.cancelled() => {}
        }
    }
}

impl Shared {
    /// Settles a delivery that failed or was released: a retry with backoff, a dead
    /// letter, or a release, then its end.
    async fn settle_unfinished(&self, open: Open, unfinished: Unfinished) {
        self.settling([&*open.id]);
        // A heartbeat call that read this delivery as running must not reach Redis
        // after the retry (or release) below: it would reset the idle time that sets
        // the backoff, and hold the retry back for the whole visibility timeout. Later
        // heartbeats skip it.
        drop(self.heartbeat_call.lock().await);
        let mut notes = Notes::default();
        let (id, attempt) = (&*open.id, open.attempt);
        match unfinished {
            Unfinished::Failed(why, et) => {
                notes.error_type = Some(et);
                if attempt >= self.max_deliveries {
                    self.dead_letter(id, &why, attempt, et).await;
                    notes.mark = Some(KeyValue::new("otelconc.job.dead_lettered", true));
                } else {
                    let shift = (attempt - 1).min(20) as u32;
                    let backoff = self
                        .backoff_base
                        .saturating_mul(1u32 << shift)
                        .min(self.backoff_max);
                    let idle = self.visibility.saturating_sub(backoff);
                    match self.release(id, idle).await {
                        Released::Done => {
                            bump(&self.counts.retried);
                            self.metrics.settled(Outcome::Retried, Some(et));
                        }
                        Released::NotOwned => {
                            // Another consumer reclaimed it meanwhile: its retry is theirs.
                            self.lease_lost(id);
                            self.count_released();
                        }
                        Released::Unreachable => {
                            self.count_released();
                        }
                    }
                }
                notes.error = Some(why);
            }
            Unfinished::Released => {
                notes = Notes::released();
                self.release_now(id).await;
            }
        }
        self.close(open, notes);
    }

    /// Releases entry `id` to another consumer at once (its idle time set to the
    /// visibility timeout), counted as released: a delivery cancelled, or an entry read
    /// or claimed but never handed to the pool (the worker stopped first).
    async fn release_now(&self, id: &str) {
        if self.release(id, self.visibility).await == Released::NotOwned {
            self.lease_lost(id);
        }
        self.count_released();
    }

    /// Counts a delivery left pending for another consumer.
    fn count_released(&self) {
        bump(&self.counts.released);
        self.metrics.settled(Outcome::Released, None);
    }

    /// Sets the entry's idle time to `idle` (reclaimable after `visibility - idle`),
    /// if this consumer still owns it.
    fn release<'a>(
        &'a self,
        id: &'a str,
        idle: Duration,
    ) -> futures_util::future::BoxFuture<'a, Released> {
        Box::pin(self.release_inner(id, idle))
    }

    async fn release_inner(&self, id: &str, idle: Duration) -> Released {
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<i64> = Call::default()
            .key(&self.keys.stream)
            .arg(GROUP)
            .arg(&*self.consumer)
            .arg(id)
            .arg(idle.as_millis() as u64)
            .invoke(&RELEASE_SCRIPT, &mut conn)
            .await;
        match r {
            Ok(1) => Released::Done,
            Ok(_) => Released::NotOwned,
            Err(_) => Released::Unreachable,
        }
    }

    fn dead_letter<'a>(
        &'a self,
        id: &'a str,
        why: &'a str,
        deliveries: u64,
        error_type: &'static str,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(self.dead_letter_inner(id, why, deliveries, error_type))
    }

    fn dead_letter_owned(
        self: Arc<Self>,
        id: String,
        why: String,
        deliveries: u64,
        error_type: &'static str,
    ) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            self.dead_letter_inner(&id, &why, deliveries, error_type)
                .await
        })
    }

    /// Moves the entry to the dead-letter stream if this consumer still owns it.
    async fn dead_letter_inner(
        &self,
        id: &str,
        why: &str,
        deliveries: u64,
        error_type: &'static str,
    ) {
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<i64> = Call::default()
            .key(&self.keys.stream)
            .key(&self.keys.dead)
            .arg(GROUP)
            .arg(id)
            .arg(&*self.consumer)
            .arg(why)
            .arg(deliveries)
            .invoke(&DEAD_LETTER_SCRIPT, &mut conn)
            .await;
        match r {
            Ok(1) => {
                bump(&self.counts.dead_lettered);
                if error_type == "decode" {
                    bump(&self.counts.decode_errors);
                }
                self.metrics
                    .settled(Outcome::DeadLettered, Some(error_type));
            }
            Ok(_) => {
                // Another consumer reclaimed it meanwhile: the verdict is theirs.
                self.lease_lost(id);
                self.count_released();
            }
            Err(_) => {
                self.count_released();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::read_entries;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        let flat = fields
            .iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect();
        Value::Array(vec![bulk(id), Value::Array(flat)])
    }

    #[test]
    fn a_resp2_reply_gives_each_entry_its_fields_in_order() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("otelconc:{q}"),
            Value::Array(vec![
                entry("1-0", &[("job", "1"), ("traceparent", "00-x")]),
                entry("2-0", &[("job", "2")]),
            ]),
        ])]);
        let entries = read_entries(reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(entries[0].get("traceparent"), Some(&bulk("00-x")));
        assert_eq!(entries[1].get("job"), Some(&bulk("2")));
        assert_eq!(entries[1].get("traceparent"), None);
    }

    #[test]
    fn a_resp3_reply_and_a_timed_out_read_are_understood() {
        let reply = Value::Map(vec![(
            bulk("otelconc:{q}"),
            Value::Array(vec![Value::Array(vec![
                bulk("3-0"),
                Value::Map(vec![(bulk("job"), bulk("3"))]),
            ])]),
        )]);
        let entries = read_entries(reply).unwrap();
        assert_eq!(entries[0].id, "3-0");
        assert_eq!(entries[0].get("job"), Some(&bulk("3")));
        assert!(read_entries(Value::Nil).unwrap().is_empty());
        // An entry deleted while pending has nil fields: it reads as an entry without
        // fields (and is dead-lettered as undecodable).
        let deleted = Value::Array(vec![Value::Array(vec![
            bulk("otelconc:{q}"),
            Value::Array(vec![Value::Array(vec![bulk("4-0"), Value::Nil])]),
        ])]);
        let entries = read_entries(deleted).unwrap();
        assert!(entries[0].fields.is_empty());
    }

    #[test]
    fn a_reply_of_another_shape_is_an_error_not_a_panic() {
        for bad in [
            Value::Int(1),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk("s")])]),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Int(2)])]),
            Value::Array(vec![Value::Array(vec![
                bulk("s"),
                Value::Array(vec![Value::Array(vec![])]),
            ])]),
        ] {
            assert!(read_entries(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
