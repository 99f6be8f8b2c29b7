//! Streaming pipelines of named stages, plus the seed's simple sequential and parallel
//! forms.
//!
//! Use a [`Pipeline`] if you want a stream of items to flow through several async steps
//! (parse, enrich, store...), each step with its own concurrency, memory bounded end to
//! end, and a trace per item that shows every step it went through. Use a [`Chain`] for
//! a fixed sequence of `T -> T` steps on one value, and [`Parallel`] to run several
//! chains over one input and get every result and every error back.
//!
//! # How a pipeline runs
//! ```text
//!  input ──▶ [input queue] ──▶ stage 1 ×c1 ──▶ [buffer b1] ──▶ stage 2 ×c2 ──▶ [buffer b2] ──▶ output stream
//! ```
//! - Each stage is `concurrency` worker tasks pulling from the stage's input queue (an
//!   `async-channel`, so an idle worker takes the next item), each running the stage's
//!   `async fn(In) -> Result<Out, E>` on one item at a time and sending the result to
//!   the stage's bounded buffer, which is the next stage's input. The input queue of
//!   the first stage holds [`input_buffer`](PipelineBuilder::input_buffer) items
//!   (default: the first stage's buffer).
//! - **Backpressure end to end**: a full buffer makes the stage before it wait, up to
//!   the input, which then waits too (the input stream is not polled, or
//!   [`PipelineSender::send`] waits). At most `input_buffer + Σ (concurrency + buffer)`
//!   items are inside a run at once, whatever the consumer's speed; the feeder of
//!   [`Pipeline::run`] may hold one more, pulled from the input stream and waiting for
//!   room (so the input is polled at most that bound plus one times ahead of the
//!   consumer).
//! - **Ordered output** ([`ordered(true)`](PipelineBuilder::ordered)): items carry a
//!   sequence number and the output stream puts them back in input order. The input
//!   admits at most the bound above (a semaphore permit per item, returned as items
//!   leave), so the reorder buffer never holds more than that either. Unordered output
//!   (the default) skips all of this.
//! - **Errors** ([`ErrorPolicy`]): `FailFast` (default) stops the run at the first
//!   failed item and the stream yields that error; `Skip` drops failed items, counts
//!   them ([`PipelineStream::skipped`] and the `processed` metric) and goes on. A panic
//!   in a stage fails its item like an error, with the panic message
//!   ([`PipelineError::Panic`]).
//! - **Stopping**: dropping the [`PipelineStream`], cancelling the pipeline's
//!   [`cancellation_token`](PipelineBuilder::cancellation_token), or a fail-fast error
//!   aborts every task of the run (input feeder and stage workers) at once; items in
//!   flight are dropped. [`PipelineStream::stop`] does the same and waits until every
//!   task has ended; [`PipelineStream::tasks`] is the run's (closed) `TaskTracker`.
//!   No task outlives its run.
//! - **What is dropped when**: an item a stage is working on is dropped with its
//!   aborted task. The items waiting in the output buffer are dropped when the stream
//!   ends (it yields nothing after its error) or is dropped; those in the other stage
//!   buffers as soon as the run's tasks have stopped, whether or not the stream or the
//!   [`Pipeline`] value lives on (so once `tasks().wait()` or [`PipelineStream::stop`]
//!   returns). Only the input queue of a run fed through [`PipelineSender`]s lives
//!   until the last sender is dropped too; the queue of [`Pipeline::run`] goes with
//!   its feeder task.
//! - Bad configuration (zero concurrency, buffer, input buffer or timing interval, no
//!   stage) is refused by [`PipelineBuilder::build`] with a [`BuildError`] that names the
//!   stage: nothing hangs the way `buffered(0)` does.
//!
//! # Telemetry
//! Per stage, items taken in and finished by outcome, a sampled duration histogram (one
//! item in [`time_every`](PipelineBuilder::time_every) per worker, traced or not;
//! [`Chain`] times every call), and, read at collection time: its output buffer's size
//! and capacity (up-down counters) and the age of its oldest item (a gauge), the stage's
//! worker limit and workers by state (busy, idle), and its workers' busy time (a counter
//! of seconds, exact: the stage with the highest busy time per worker is the
//! bottleneck), with the pipeline's name and `otelconc.stage`. A worker reads the clock
//! for its busy time only when it parks (on an empty input or a full output buffer) and
//! when it takes the next item.
//!
//! **Context.** An item carries the context where it entered (the caller of
//! [`PipelineSender::send`], [`Pipeline::run`] or [`Chain::execute`]) whenever that holds
//! a valid span context, sampled or not, or baggage, and each stage function runs under
//! it: spans it starts stay in that trace (a parent-based sampler drops them with an
//! unsampled parent instead of keeping orphan roots), and its logs carry the trace id
//! and baggage. [`Pipeline::run`] pulls its input stream under that context too.
//!
//! **Spans.** Inside a sampled trace each stage makes an `otelconc.pipeline.stage` span
//! per item, by the consumer rule of [`docs/telemetry.md`][telemetry]: the stage workers
//! run outside any span, so the first stage's span is a child of the context where the
//! item entered and each later one a child of the previous stage's span of the same item
//! (linked to it as well), so one item's spans form a chain that reads in the order the
//! item went; the stage function runs with its span current. A stage that fails ends its
//! span with status Error and `error.type` (the type name of the stage's error, or
//! `panic`); an item dropped mid-stage because the run stopped ends it with status Unset
//! and `otelconc.outcome = cancelled`. Stage durations and the span's queue wait are read
//! from tokio's clock (`tokio::time::Instant`), so under `tokio::time::pause()` they are
//! paused time. Every instrument and span is in [`docs/telemetry.md`][telemetry]. A run's
//! buffers are reported until they close or its stream ends, and are never kept alive
//! for the instruments' sake.
//!
//! # What it costs
//! An item costs about 1.0-1.15x a hand-written pipeline of tokio tasks and
//! `async-channel`s, with no SDK or with SDK metrics, and about 6.5x when every item is
//! in a sampled trace (one SDK span per stage); see [`docs/costs.md`][costs].
//!
//! The stage plumbing is what a hand-written pipeline does: worker tasks joined by
//! bounded `async-channel`s, nothing else on the path. What crosses a channel is the
//! item plus one pointer (null when the item carries no context); ordered runs add an
//! 8-byte sequence number and a semaphore permit per item. An item that carries a
//! context (an unsampled one, say) costs one small allocation where it enters and a
//! context clone per stage, never a span. Per item and stage the telemetry is a few
//! plain additions to counters that only the worker writes (on a cache line of its
//! own, read when metrics are collected) and, for one item in 64 when an SDK reads the
//! metrics, two clock reads and a histogram record.
//!
//! # Why this is hand-written
//! `futures::StreamExt::buffered`/`buffer_unordered` give one stage's concurrency on one
//! task, with no per-stage buffers, no per-item traces, and a hang on `buffered(0)`; no
//! crate offers typed multi-stage pipelines with per-stage worker tasks, bounded
//! buffers, ordering and structured shutdown on tokio. The parts that exist are used:
//! `async-channel` for the queues, `tokio_util::task::TaskTracker` for owned tasks.
//!
//! # Examples
//! ```
//! use futures::{StreamExt, stream};
//! use otelconc::pipeline::{ErrorPolicy, Pipeline};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let pipeline = Pipeline::builder("ingest")
//!     .stage("parse", 4, 256, |line: String| async move { line.trim().parse::<u64>() })
//!     .stage("scale", 2, 256, |n: u64| async move { Ok(n * 10) })
//!     .ordered(true)
//!     .on_error(ErrorPolicy::Skip)
//!     .build()
//!     .expect("valid configuration");
//! let lines = ["1", "2", "oops", "4"].map(String::from);
//! let out: Vec<u64> = pipeline
//!     .run(stream::iter(lines))
//!     .filter_map(|r| async move { r.ok() })
//!     .collect()
//!     .await;
//! assert_eq!(out, [10, 20, 40]);
//! # }
//! ```
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod builder;
mod chain;
mod envelope;
mod error;
mod launch;
mod metrics;
mod output;
mod run;
mod stage;

pub use builder::{DEFAULT_TIME_EVERY, PipelineBuilder};
pub use chain::{Chain, ChainBuilder, Parallel};
pub use error::{BuildError, PipelineError, SendError};
pub use launch::{INPUT_STAGE, Pipeline};
pub use output::{PipelineSender, PipelineStream};

/// What a failed item (a stage returned an error or panicked) does to a pipeline run.
///
/// # Examples
/// ```
/// use otelconc::pipeline::ErrorPolicy;
/// assert_eq!(ErrorPolicy::default(), ErrorPolicy::FailFast);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// Stop the run: every task is aborted, items in flight are dropped, and the output
    /// stream yields the error and ends.
    #[default]
    FailFast,
    /// Drop the failed item, count it, and go on.
    Skip,
}
