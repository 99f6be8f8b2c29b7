//! A worker pool: a fixed (resizable) set of tokio tasks running async jobs from a
//! bounded queue, with panic isolation, per-job timeouts, graceful and hard shutdown, and
//! telemetry built in.
//!
//! Use [`WorkerPool`] when you want to bound how many jobs of a kind run at once and how
//! many may wait, and you want to know what happened to each one: completed, failed,
//! cancelled or never started, in numbers that add up. Use a `tokio::sync::Semaphore` in
//! front of `tokio::spawn` when each job is big and you do not need the queue, the
//! accounting or the shutdown report.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use otelconc::pool::{JobError, WorkerPool};
//!
//! let pool = WorkerPool::builder("thumbnails").workers(4).queue_capacity(256).build()?;
//! pool.submit(|| async { /* fire and forget */ }).await?;
//! let h = pool.submit_handle(|| async { 40 + 2 }).await?;
//! assert_eq!(h.await?, 42);
//! let h = pool.submit_handle(|| async { panic!("bad input") }).await?;
//! assert_eq!(h.await, Err::<(), _>(JobError::Panicked("bad input".into())));
//! let report = pool.shutdown(Duration::from_secs(5)).await;
//! assert_eq!((report.completed, report.failed), (2, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Jobs
//! A job is any `FnOnce() -> impl Future` closure (`|| async { .. }`), called when a
//! worker starts it; a closure that takes the pool's [`CancellationToken`], wrapped in
//! [`with_token`]; or a type implementing [`Job`] (which may carry a name and an id for
//! its span; [`Named`] wraps a job with them). The token fires when the job times out,
//! when the pool aborts, or when a shutdown deadline passes; the pool drops the job's
//! future then, so the token is for work the job handed elsewhere.
//!
//! # Submitting
//! - [`WorkerPool::submit`] waits for queue space; the output is dropped and the outcome
//!   counted. [`WorkerPool::try_submit`] never waits; a full queue hands the job back.
//! - [`WorkerPool::submit_handle`] / [`WorkerPool::try_submit_handle`] return a
//!   [`JobHandle`] resolving to `Result<T, JobError>`: [`JobError::Panicked`] (with the
//!   message), [`JobError::TimedOut`], [`JobError::Cancelled`] (running at abort or
//!   deadline), [`JobError::NotStarted`] (queued at abort or deadline, never started).
//! - The outcomes stream ([`WorkerPool::outcomes`], enabled by the builder's
//!   `outcomes(capacity)`) is the seed's results channel done safely: workers never wait
//!   on it. When nobody reads it, it fills, and each later outcome is dropped and counted
//!   in `otelconc.pool.outcomes.dropped` ([`Stats::outcomes_dropped`]).
//!
//! # Failure, resize, shutdown
//! - A panicking job becomes [`JobError::Panicked`]; the worker keeps running, so the
//!   pool's capacity is unchanged.
//! - [`WorkerPool::resize`] grows or shrinks the worker count at run time; a job is taken
//!   from the queue by exactly one worker, so nothing is lost or run twice.
//! - [`WorkerPool::close`] stops intake (later submits get a `Closed` error).
//!   [`WorkerPool::shutdown`] drains until a deadline, then cancels, and returns a
//!   [`ShutdownReport`] whose counts add up to the jobs accepted; [`WorkerPool::abort`]
//!   stops at once. All are idempotent and safe to race with submits and each other;
//!   when shutdown returns, no task of the pool is alive.
//!
//! # What it costs
//! A job costs about what it costs in a hand-written pool of 4 tasks over an
//! `async-channel` with a results channel (1.0-1.1x, with or without SDK metrics), and
//! about 2-4.5x when submitted inside a sampled trace (one SDK span per job, linked to
//! the submitter; the more work the job does, the less the span weighs: 4.5x for a no-op
//! job, 2x for one that yields once); see
//! [`docs/costs.md`][costs].
//!
//! The hot path is lean by construction: one allocation per job (the type-erased job and
//! room for its future, in one box), one queue operation each way, per-worker counters
//! (plain stores on a cache line only that worker writes, read by observable
//! instruments), and no clock read unless one is recorded. A job is timed for the
//! histograms (three clock reads, two bound-histogram records, and a small box for its
//! queue time) when it is the 1 in N of the builder's `timing_sample` (default 16), so
//! the histograms are a documented sample and the `otelconc.pool.jobs` counter is exact.
//! A job submitted inside a trace (any valid span context, sampled or not) or with
//! baggage carries the submitter's context in that small box: one context clone and one
//! allocation, and a span only when the trace is sampled, which also takes two clock
//! reads for its queue wait. No results channel is needed:
//! [`WorkerPool::shutdown`] reports every accepted job. A [`JobHandle`] adds a oneshot
//! channel per job; a per-job timeout adds a timer.
//!
//! Why hand-written: tokio has no bounded worker pool, and the crates that come close
//! (object pools such as `deadpool`, thread pools such as `rayon` or `threadpool`)
//! neither run async jobs with cancellation tokens nor account for every job through
//! shutdown. This module is
//! `async-channel` (the MPMC queue) plus `tokio-util`'s `TaskTracker` (owning the
//! workers) and a few hundred lines of accounting.
//!
//! # Telemetry
//! Jobs by outcome (`ok`, `panic`, `timeout`, `cancelled`, `not_started`; failures with
//! `error.type`), submissions (accepted, or refused with `error.type` `queue_full` or
//! `closed`), sampled run and queue-wait histograms, and, read at collection time: the
//! queue's size and capacity, the worker limit and workers by state (busy, idle), all
//! up-down counters; the age of the oldest queued job and of the longest-running one
//! (gauges); the workers' busy time (a counter of seconds, exact: utilization over a
//! window is its rate divided by the worker limit); dropped outcomes. Each carries the
//! pool's name and never an id. Busy time costs no clock read per job: a worker reads
//! the clock when it parks on an empty queue and when it takes the next job.
//!
//! A job carries its submitter's context whenever that holds a valid span context,
//! sampled or not, or baggage, and runs inside it: spans the job starts stay in the
//! submitter's trace (a parent-based sampler drops them with an unsampled parent), and
//! logs written in the job carry its trace id and baggage. A job submitted inside a
//! sampled trace runs in an `otelconc.pool.job` span, a child of the submitter's span
//! that also links to it (a worker runs outside any span, so the consumer rule of
//! [`telemetry`](crate::telemetry) parents it on the submitter); there is no span per
//! worker or per pool. A job that panics or times out ends its span with status Error
//! and `error.type` `panic` or `timeout` (no `exception` event); a job cancelled at abort
//! or by a passed shutdown deadline ends it with status Unset and
//! `otelconc.outcome=cancelled`. A job dropped from the queue before it started has no
//! span. Every instrument and span is in [`docs/telemetry.md`][telemetry].
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod builder;
mod error;
mod handle;
mod job;
mod metrics;
mod outcome;
mod state;
mod stats;
mod worker;
mod worker_pool;

pub use builder::Builder;
pub use error::{BuildError, JobError, ResizeError, SubmitError, TrySubmitError, panic_message};
pub use handle::JobHandle;
pub use job::{Job, Named, WithToken, with_token};
pub use outcome::{Outcome, Outcomes};
pub use stats::{ShutdownReport, Stats};
pub use tokio_util::sync::CancellationToken;
pub use worker_pool::WorkerPool;
