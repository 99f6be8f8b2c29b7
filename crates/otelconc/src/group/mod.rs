//! [`TaskGroup`]: structured concurrency for a set of fallible tasks (errgroup done
//! right).
//!
//! Use a `TaskGroup` when several tasks succeed or fail together: fetch three things
//! for one request, run N workers over one input, start a service's components. Use a
//! worker pool for a stream of jobs, and `tokio_util`'s `TaskTracker` when the tasks'
//! results do not matter.
//!
//! What it fixes compared with Go's `errgroup` (the seed):
//! - every error is kept ([`GroupError`]), not only the first;
//! - the cancellation token says *why* it fired ([`CancelCause`]);
//! - a panicking task becomes [`TaskError::Panicked`] with its message instead of
//!   killing the process;
//! - dropping the group aborts its tasks: nothing keeps running unowned;
//! - with a limit, [`TaskGroup::try_spawn`] refuses instead of blocking, and
//!   [`TaskGroup::spawn`] stops waiting for a slot when the group is cancelled.
//!
//! # Cost
//! A task costs about 0.9-1.1x a bare `JoinSet` spawn over repeated runs, with or
//! without SDK metrics (single runs on a busy machine have read up to 1.7x); see
//! [`docs/costs.md`][costs].
//!
//! A task costs a tokio spawn plus a counter add at start and end and an up-down
//! counter pair, the task's panic guard, and a slot for its value. A task spawned
//! inside a trace (any valid span context, sampled or not) or with baggage carries the
//! spawner's context (one context clone); a span is built only when the trace is
//! sampled. Finished tasks are reaped every 32
//! spawns. A group's instruments are built (and, on a handle that binds, bound) once per
//! name for a `Telemetry` handle and its clones; building another group of that name clones them. Still, keep
//! a group for a batch of tasks, not one per tiny task.
//!
//! # Telemetry
//! Tasks started (`otelconc.group.task.started`), finished by outcome
//! (`otelconc.group.task.finished`: `ok`; `error` with `error.type` the type name of the
//! group's error type; `panic` with `error.type = panic`; `cancelled`, not an error)
//! and running (`otelconc.group.task.active`), with the group's name. `active` is a
//! synchronous up-down counter rather than an observable one: groups are often built per
//! request, and a synchronous instrument registers no callback per group.
//!
//! A task carries its spawner's context whenever that holds a valid span context,
//! sampled or not, or baggage, and runs inside it: spans the task starts stay in the
//! spawner's trace, and logs written there carry its trace id and baggage. Inside a
//! sampled trace each task runs in an `otelconc.group.task` span, a child of the
//! spawner's span that also links to it. A task that returns an error or panics ends its
//! span with status Error and `error.type` (the error's type name, or `panic`); a task
//! aborted before it finished (by [`TaskGroup::shutdown`] after its grace period, or by
//! dropping the group, as a caller does when a sibling failed) ends it with status Unset
//! and `otelconc.outcome=cancelled`, so one failing task among many is one error. Every
//! instrument and span is in [`docs/telemetry.md`][telemetry].
//!
//! # Examples
//! ```
//! use otelconc::group::{CancelCause, TaskGroup};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut group: TaskGroup<u32, String> = TaskGroup::builder().name("fetch").limit(2).build().unwrap();
//! let token = group.token();
//! group.spawn(async { Ok(1) }).await.ok();
//! group.spawn(async { Err("backend down".to_owned()) }).await.ok();
//! group.spawn(async move {
//!     token.cancelled().await; // a sibling failed: stop early
//!     Ok(0)
//! }).await.ok();
//! let err = group.wait().await.unwrap_err();
//! assert_eq!(err.to_string(), "task 1 failed: backend down");
//! # }
//! ```
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod error;
mod metrics;
mod task_group;
mod token;

pub use error::{BuildError, GroupError, SpawnError, TaskError, TrySpawnError};
pub use task_group::{Builder, TaskGroup};
pub use token::{CancelCause, GroupToken};
