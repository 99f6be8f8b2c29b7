//! A job queue across processes on **Redis Streams consumer groups**: otelconc's worker
//! pool, fed from a stream.
//!
//! Use it when one process no longer does: producers [`Queue::submit`] serde-serializable
//! jobs from anywhere, and any number of [`Worker`] processes run them on an
//! [`otelconc::pool::WorkerPool`] with a handler `async fn(J, JobContext) -> Result<(), E>`.
//! Redis does the bookkeeping a queue needs: the consumer group's pending entries list
//! (PEL) records each in-flight entry's owner, last delivery time and delivery count, and
//! `XAUTOCLAIM` hands entries idle past a visibility timeout to a live consumer. Nothing
//! here rebuilds a queue from lists and Lua.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use otelconc_redis::{JobContext, Queue, Worker};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Resize { image: u64 }
//!
//! let queue = Queue::<Resize>::connect("redis://127.0.0.1:6379", "images").await?;
//! let id = queue.submit(&Resize { image: 21 }).await?; // the entry id, e.g. "1765000000000-0"
//!
//! let worker = Worker::builder(queue, |job: Resize, cx: JobContext| async move {
//!     // An effect in Redis, applied atomically with the ack, once per job.
//!     cx.effect(redis::cmd("HINCRBY").arg("resized").arg(job.image).arg(1));
//!     Ok::<(), std::convert::Infallible>(())
//! })
//! .workers(8)
//! .start()
//! .await?;
//! let report = worker.shutdown(Duration::from_secs(30)).await;
//! assert!(report.adds_up());
//! # let _ = id; Ok(()) }
//! ```
//!
//! # Delivery semantics
//!
//! **At-least-once.** A worker reads new entries with `XREADGROUP ... >` (which puts them
//! in the group's PEL under its consumer name), runs each on its pool, and acknowledges
//! it (`XACK`, then `XDEL` so the stream holds only work not yet done) only after the
//! handler returned `Ok`. A crash anywhere before that leaves the entry pending, and it
//! runs again elsewhere. Handlers must therefore tolerate running more than once; the
//! two tools below make that easy.
//!
//! - **Heartbeats.** While a job runs, its worker resets the entry's idle time every
//!   [`heartbeat`](WorkerBuilder::heartbeat) interval (a script that checks the entry is
//!   still owned by this consumer, then `XCLAIM <self> 0 <id> JUSTID`, which resets the
//!   idle time without counting a delivery). A slow job on a live consumer is therefore
//!   never reclaimed, however long it runs; an entry another consumer already took is
//!   never taken back.
//! - **Reclaim.** Every [`reclaim_interval`](WorkerBuilder::reclaim_interval) each worker
//!   runs `XAUTOCLAIM <self> <visibility timeout>`: entries idle longer than the
//!   [visibility timeout](WorkerBuilder::visibility_timeout), those of a crashed or
//!   partitioned consumer, move to it and run again. `XAUTOCLAIM`'s min-idle check is
//!   atomic, so two reclaimers never both get one entry.
//! - **Retries with backoff.** A handler error, a panic or a per-job
//!   [timeout](WorkerBuilder::job_timeout) is a failed delivery. Before the
//!   [`max_deliveries`](WorkerBuilder::max_deliveries)th delivery the entry stays pending
//!   and its idle time is set (`XCLAIM ... IDLE`, in a script that first checks the
//!   entry is still this consumer's: a failure on an entry another consumer reclaimed
//!   meanwhile leaves it to that consumer, counted as released and a lost lease) so that
//!   it becomes reclaimable after the backoff (`backoff_base * 2^(attempt-1)`, at most `backoff_max`, which is at most the
//!   visibility timeout); the next reclaim runs it again, with Redis's delivery count as
//!   the attempt number.
//! - **Dead letters.** A delivery that fails at `max_deliveries` goes to the dead-letter
//!   stream (`<stream>:dead`) with every field of the entry plus `otelconc.error` (the
//!   last error), `otelconc.deliveries` and `otelconc.source_id`, and is acked and deleted
//!   in the same script. So does an entry reclaimed after `max_deliveries` deliveries that
//!   never reported an outcome (a job that kills its process), and an entry that cannot
//!   be decoded: not written by a [`Queue`] (no `job` field) or not a `J` (a type
//!   mismatch or bad JSON), with the decode error. A bad entry never crashes a worker.
//! - **Unique consumers, never deleted while they hold entries.** Each worker has a
//!   consumer name of its own (host, process id, start time and a counter; see
//!   [`Worker::consumer`]), so a restarted process never inherits a dead one's name.
//!   `XGROUP DELCONSUMER` discards the consumer's pending entries, so a worker deletes its
//!   consumer at shutdown only in a script that first checks that it holds none; dead
//!   consumers' names stay in the group until an operator removes them.
//!
//! **Exactly-once effects where the effect lives in Redis.** A handler adds commands to
//! its [`JobContext`] with [`JobContext::effect`]; they are not sent when added. When
//! such a job succeeds the worker runs one Lua script (atomic in Redis) that sets a per-job dedup
//! marker (`<stream>:done:<entry id>`, `SET NX PX`, kept for
//! [`dedup_ttl`](WorkerBuilder::dedup_ttl), 24 h by default), and only if the marker was
//! new runs the effect commands, then `XACK`s and `XDEL`s the entry. Commits are
//! batched: one commit takes every job that succeeded while the previous commit was
//! out, up to 128 jobs. Those with effects go through one script call, each with its
//! own marker, effects and outcome, acked with one `XACK` and one `XDEL`; one job's
//! failing effect dead-letters that job only. Those without effects need neither
//! marker nor script: one `MULTI` / `XACK` / `XDEL` / `EXEC` acks them. A job that ran twice
//! (reclaimed from a consumer that was slow rather than dead, or whose ack reply was
//! lost) applies its effects once: the second commit finds the marker and only acks.
//! A job that added no effect sets no marker (there is nothing to apply once, and a
//! marker costs memory for its TTL): a second delivery of it is counted as completed,
//! not as a duplicate. Markers cost memory: about 150 bytes each (measured on Redis
//! 7.0 with a 30-character queue name), so a queue committing 1,000 jobs with effects
//! a second holds about 86 million markers (some 13 GB) with the default 24 h TTL; set [`dedup_ttl`](WorkerBuilder::dedup_ttl) to what a duplicate
//! can take at most (a job's longest run plus a few visibility timeouts) for such rates.
//! Redis does not roll a script back: an effect command that fails when it runs (a
//! `WRONGTYPE`, say) leaves the commands before it applied and skips the rest, and the
//! entry goes to the dead-letter stream with that error; the marker stays, so it is never
//! applied again. Effects a handler adds after it returned are ignored.
//!
//! **Effect keys and Redis Cluster.** The commit script declares only the queue's own
//! keys, so in a cluster every key an effect touches must live in the queue's slot:
//! give it the queue's hash tag (`otelconc:{N}:...`, or any key containing `{N}`). On a
//! server running in cluster mode (`cluster_enabled:1`, read when the worker starts)
//! the script checks this before it applies anything (`COMMAND GETKEYS` on each effect):
//! a job with an effect key outside the slot applies none of its effects and goes to
//! the dead-letter stream with the error ``effect key `K` is outside the queue's hash
//! slot: ...`` (a one-node cluster would otherwise run it, and the queue would break
//! once its slots are spread over nodes). On a standalone server any key is allowed.
//! This crate connects to one node (a `redis::Client`, not a cluster client): in a
//! cluster, that must be the node that owns the queue's slot.
//!
//! **External effects** (an email, an HTTP call, another database) cannot join the
//! script: use [`JobContext::id`], the entry id, stable across every delivery of one
//! job, as the idempotency key the external system dedupes on.
//!
//! **Durability** is Redis's: with `appendonly yes` and `appendfsync always` an entry
//! whose `XADD` returned survives a server crash, and so does every pending entry; with
//! the default `appendfsync everysec` up to about a second of writes can be lost.
//!
//! # Throughput
//! Per job, Redis sees one `XADD` (pipelined by [`Queue::submit_many`]: 1,000 per round
//! trip), a share of one `XREADGROUP` (up to [`read_batch`](WorkerBuilder::read_batch)
//! entries, 64 by default) and a share of one commit (up to 128 jobs that succeeded
//! while the previous commit was out: for the jobs without effects one `MULTI` /
//! `XACK` / `XDEL` / `EXEC`, for those with effects one script call with one `SET NX
//! PX` marker per job, then their effects, one `XACK` and one `XDEL`);
//! heartbeats, reclaims and the metrics refresh are per interval, not per job. Measured
//! with `examples/throughput.rs` (200,000 no-op jobs, one producer calling
//! `submit_many`, two workers of 8 with `read_batch(256)`, all in one process, Redis 7.0
//! on loopback with `appendonly yes`, on a quiet 2-core machine whose cores Redis and the
//! process share): 140,000 jobs/s with `appendfsync everysec`, 100,000 with
//! `appendfsync always`; with an effect per job (`HINCRBY`, so a dedup marker and the
//! commit script) 65,000 and 52,000. Per no-op job that is about 4 µs of CPU in the
//! client process and 7 µs in Redis (AOF writes included); with an effect, 7 µs and
//! 15 µs.
//!
//! # Shutdown
//! [`Worker::shutdown`] stops reading, lets the pool drain until a deadline (running
//! jobs finish, and are committed or retried as usual), cancels what is left, and
//! returns a [`WorkerReport`] whose counts add up to the entries it received. A job
//! cancelled by the deadline, or an entry read but still waiting for room in the pool's
//! queue when the shutdown began, is *released*: left pending with its idle time set to
//! the visibility timeout, so another consumer reclaims it at once. A job whose commit
//! could not reach Redis is released too, as it is: another consumer reclaims it once
//! it has been idle for the visibility timeout. [`Worker::abort`] is the same with no
//! deadline.
//!
//! # Keys
//! A queue named `N` lives in the stream `otelconc:{N}`, consumer group `otelconc`,
//! dead letters in `otelconc:{N}:dead`, dedup markers `otelconc:{N}:done:<id>`. The hash
//! tag `{N}` keeps one queue's keys in one Redis Cluster slot.
//!
//! # Beyond one Redis
//! One stream lives on one node. To spread a queue over a cluster, split it into `S`
//! streams `otelconc:{N.0}` .. `otelconc:{N.S-1}` (each its own hash tag, so its own
//! slot), route a job to a shard by a hash of a key the producer chooses (or round
//! robin), and let each worker read all shards (`XREADGROUP` over several keys is a
//! single-slot command in a cluster, so one read per shard). What survives: every
//! per-entry guarantee above (PEL, reclaim, dedup marker and dead letters are all in the
//! entry's slot, so the commit script stays single-slot as long as the effect keys share
//! the tag; see "Effect keys and Redis Cluster" above); ordering only within a shard.
//! This crate does not implement sharding yet, nor a cluster client: today one queue is
//! one stream on the one node a [`Queue`] connects to.
//!
//! # Telemetry
//! [`Queue::submit`] runs in a `send {queue}` PRODUCER span and injects its context
//! (`traceparent`, `tracestate`, `baggage`) into the entry's fields. The worker runs each
//! delivery in a `process {queue}` CONSUMER span, a child of that context (and linked to
//! it; built only when that context is sampled, as every otelconc span, or for every
//! delivery under [`SpanPolicy::Always`](otelconc::telemetry::SpanPolicy::Always)), so
//! one trace follows a job from the process that submitted it to the one that ran it,
//! every retry included. An entry dead-lettered before it runs (undecodable, or
//! delivered `max_deliveries` times without an outcome) gets no `process` span: its
//! dead letter and `otelconc.queue.jobs` (`error.type` `decode` or `lost`) record it.
//! The handler runs under the `process` span, which is the job's span: the worker's pool
//! records its metrics but builds no `otelconc.pool.job` span of its own,
//! so a job costs two spans (`send`, `process`), not three.
//!
//! Spans and metrics come from one [`Telemetry`](otelconc::telemetry::Telemetry) handle:
//! the one given to [`Queue::with_telemetry`] (or [`WorkerBuilder::telemetry`] for a
//! worker), else [`Telemetry::global`](otelconc::telemetry::Telemetry::global) as it was
//! when [`Queue::connect`] ran. Its [`SpanPolicy::Never`](otelconc::telemetry::SpanPolicy::Never)
//! turns both spans off (the context still travels). The entries' context is written and
//! read with the global text-map propagator (`otelconc::telemetry::inject`/`extract`).
//! Attributes: `messaging.system = redis`, `messaging.operation.name`,
//! `messaging.operation.type`, `messaging.destination.name`, `messaging.message.id`,
//! `messaging.consumer.group.name`, `messaging.client.id`, and `otelconc.job.attempt`.
//!
//! Metrics: the messaging conventions' `messaging.client.sent.messages`,
//! `messaging.client.consumed.messages` and `messaging.process.duration`, then
//! `otelconc.queue.jobs` by outcome, `otelconc.queue.redelivered`, and the queue's
//! levels `otelconc.queue.pending`, `otelconc.queue.lag` and
//! `otelconc.queue.pending.oldest.age`. The levels are read from Redis by each worker
//! every [`metrics_refresh`](WorkerBuilder::metrics_refresh) (5 s), not per job, and a
//! collection reports the last values read. [`INSTRUMENTS`] lists them all;
//! `docs/telemetry.md` says what each means.
//!
//! What it costs, measured end to end with `otelconc queue` (one submitting and two
//! worker processes, the demo's job, a local OTLP collector over OTLP/HTTP, all on one
//! 2-core machine), against `OTEL_SDK_DISABLED=true` (82,000 to 85,000 jobs/s in the
//! quietest runs): metrics with every trace sampled out cost about 10% of the jobs per
//! second, most of it the context each entry carries (the `traceparent` field that Redis
//! stores and the worker parses and extracts); `parentbased_traceidratio` at 0.1 costs
//! about 14%; every trace kept, about 29%. A kept trace is a `process` span per job (and
//! a `send` span per submit call), built and exported on the same cores: exporting a
//! span alone (the SDK's exporter threads and the collector) takes about a quarter of
//! the CPU the job takes with telemetry off. Sample traces where the rate is high, and
//! run the collector off the workers' cores.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod context;
mod error;
mod keys;
mod metrics;
mod queue;
mod report;
mod scripts;
mod telemetry;
mod worker;

pub use context::JobContext;
pub use error::Error;
pub use metrics::INSTRUMENTS;
pub use queue::{CONNECT_TIMEOUT, DeadLetter, Queue};
pub use report::WorkerReport;
pub use worker::{Worker, WorkerBuilder};
