//! [`TaskGroup`]: errgroup done right.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::{Context, KeyValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::error::{BuildError, GroupError, SpawnError, TaskError, TrySpawnError};
use super::metrics::Metrics;
use super::token::{CancelCause, CauseCell, GroupToken};
use crate::telemetry::names::{ATTR_NAME, group as names};
use crate::telemetry::{Counter, End, EndingSpan, Guarded, Telemetry, error_type};

/// What the group's tasks share.
struct Shared {
    cell: Arc<CauseCell>,
    /// Indexes of tasks dropped before they finished (aborted), written by their
    /// guards: the cold path, so no per-task map from task id to index is needed.
    aborted: Mutex<Vec<usize>>,
    /// Orders failures: the order they happened in, across tasks.
    failures: AtomicU64,
    metrics: Metrics,
    telemetry: Telemetry,
    /// The group's name, as the `otelconc.name` attribute.
    name: KeyValue,
}

impl Shared {
    /// The span of task `index`, by the consumer rule: a task runs outside any span, so
    /// its parent is the spawner's context when that is sampled, linked to it. `None`
    /// without a sampled spawner (the task then runs under `producer`, if any).
    fn task_span(&self, producer: Option<&Context>, index: usize) -> Option<Context> {
        let producer = producer?;
        let attributes = if self.telemetry.spans_under(producer) {
            vec![
                self.name.clone(),
                KeyValue::new(
                    names::ATTR_TASK_INDEX,
                    i64::try_from(index).unwrap_or(i64::MAX),
                ),
            ]
        } else {
            Vec::new()
        };
        self.telemetry
            .consumer_span(&names::TASK, Some(producer), attributes)
    }
}

/// What a task hands back to the group.
struct Done<T, E> {
    index: usize,
    result: Result<T, Failure<E>>,
}

struct Failure<E> {
    /// Whether this failure fired the token (it is then the first error).
    fired: bool,
    seq: u64,
    error: TaskError<E>,
}

/// Ends the task's bookkeeping whether it finishes or is aborted mid-poll.
/// Built before the task is spawned and moved into it, so it is dropped (and does its
/// bookkeeping) even when the task is aborted before its first poll.
struct TaskGuard {
    shared: Arc<Shared>,
    /// The spawner's context, until the task's first poll takes it to run under.
    producer: Option<Context>,
    index: usize,
    done: bool,
}

impl TaskGuard {
    fn finish(&mut self, outcome: fn(&Metrics) -> &Counter) {
        self.done = true;
        outcome(&self.shared.metrics).add(1);
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        // Aborted before its first poll: the task still gets its span, which ends as
        // cancelled at once (a task aborted while running ends its own, in `Guarded`).
        if let Some(producer) = self.producer.take() {
            drop(EndingSpan::new(
                self.shared.task_span(Some(&producer), self.index),
                None,
            ));
        }
        self.shared.metrics.active.add(-1);
        if !self.done {
            self.shared.metrics.cancelled.add(1);
            // While unwinding, the join error reports the panic instead.
            if !std::thread::panicking()
                && let Ok(mut aborted) = self.shared.aborted.lock()
            {
                aborted.push(self.index);
            }
        }
    }
}

/// A set of tasks that succeed or fail together: errgroup done right.
///
/// Spawn tasks that return `Result<T, E>`; [`wait`](TaskGroup::wait) returns every
/// task's value in spawn order, or a [`GroupError`] that holds *every* error, first
/// failure first. On the first error or panic the group's token ([`GroupToken`]) fires
/// with a [`CancelCause`] the other tasks can read, and the group starts no new task.
/// A panic in a task becomes [`TaskError::Panicked`] with the panic message; it never
/// takes the group down.
///
/// With a concurrency limit ([`Builder::limit`]), [`spawn`](TaskGroup::spawn) waits for
/// a slot and [`try_spawn`](TaskGroup::try_spawn) refuses when none is free.
///
/// # Shutdown
/// - [`wait`](TaskGroup::wait): graceful, waits for every task.
/// - [`shutdown`](TaskGroup::shutdown): fires the token, gives the tasks a grace period
///   to notice it, then aborts the rest and waits until they are gone.
/// - Dropping the group (or a `wait`/`shutdown` future) fires the token and **aborts**
///   every task still running. A `Drop` cannot wait, so the aborted tasks are dropped by
///   the runtime at their next scheduling point: a task in the middle of a poll on
///   another worker thread finishes that poll first. Use `shutdown` when you must know
///   they are gone.
///
/// # Telemetry
/// Tasks started, finished by outcome (a failure with `error.type`) and active. Each
/// task runs inside the context current at `spawn` (sampled or not, with its baggage);
/// inside a sampled trace it runs in an `otelconc.group.task` span, a child of the
/// spawner's span linked to it, which ends with status Error and `error.type` when the
/// task fails or panics, and with status Unset and `otelconc.outcome=cancelled` when it
/// is aborted. See
/// [`docs/telemetry.md`](https://example.invalid/otelconc/blob/main/docs/telemetry.md).
///
/// # Examples
/// ```
/// use otelconc::group::TaskGroup;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group: TaskGroup<u32, String> = TaskGroup::new();
/// for i in 0..3 {
///     group.spawn(async move { Ok(i * 10) }).await.ok();
/// }
/// assert_eq!(group.wait().await.unwrap(), vec![0, 10, 20]);
/// # }
/// ```
pub struct TaskGroup<T, E> {
    tasks: JoinSet<Done<T, E>>,
    results: Vec<Option<T>>,
    failures: Vec<Failure<E>>,
    shared: Arc<Shared>,
    limit: Option<Arc<Semaphore>>,
}

impl<T, E> fmt::Debug for TaskGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("name", &self.shared.name.value)
            .field("tasks", &self.tasks.len())
            .field("spawned", &self.results.len())
            .field("cancelled", &self.shared.cell.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TaskGroup`].
///
/// # Examples
/// ```
/// use otelconc::group::TaskGroup;
/// let group: TaskGroup<(), std::io::Error> = TaskGroup::builder()
///     .name("fetch")
///     .limit(8)
///     .build()
///     .expect("limit is not 0");
/// # let _ = group;
/// ```
pub struct Builder<T, E> {
    name: Cow<'static, str>,
    limit: Option<usize>,
    telemetry: Option<Telemetry>,
    parent: Option<CancellationToken>,
    _types: PhantomData<fn() -> (T, E)>,
}

impl<T, E> fmt::Debug for Builder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<T, E> Builder<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// The group's name: the `otelconc.name` attribute of its metrics and spans
    /// (default `"group"`). Keep the set of names small: it is a metric attribute.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::builder().name("resize").build().unwrap();
    /// # let _ = group;
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// At most `limit` tasks run at once: [`TaskGroup::spawn`] waits for a slot and
    /// [`TaskGroup::try_spawn`] refuses. Unlimited by default. `0` is rejected by
    /// [`Builder::build`].
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::builder().limit(4).build().unwrap();
    /// # let _ = group;
    /// ```
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Where metrics and spans go (default [`Telemetry::global`], read at `build`).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// use otelconc::telemetry::Telemetry;
    /// let group: TaskGroup<(), String> =
    ///     TaskGroup::builder().telemetry(Telemetry::global()).build().unwrap();
    /// # let _ = group;
    /// ```
    #[must_use]
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Makes the group's token a child of `parent`: cancelling `parent` cancels the
    /// group (cause [`CancelCause::Parent`]), never the other way round.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::{CancelCause, TaskGroup};
    /// use tokio_util::sync::CancellationToken;
    /// let server = CancellationToken::new();
    /// let group: TaskGroup<(), String> = TaskGroup::builder().parent_token(&server).build().unwrap();
    /// server.cancel();
    /// assert_eq!(group.token().cause(), Some(CancelCause::Parent));
    /// ```
    #[must_use]
    pub fn parent_token(mut self, parent: &CancellationToken) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    /// Builds the group and its instruments.
    ///
    /// # Errors
    /// [`BuildError::ZeroLimit`] when the limit is 0.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// assert!(TaskGroup::<(), String>::builder().limit(0).build().is_err());
    /// ```
    pub fn build(self) -> Result<TaskGroup<T, E>, BuildError> {
        let limit = match self.limit {
            Some(0) => return Err(BuildError::ZeroLimit),
            Some(n) => Some(Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))),
            None => None,
        };
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let name = KeyValue::new(ATTR_NAME, self.name);
        let token = match &self.parent {
            Some(p) => p.child_token(),
            None => CancellationToken::new(),
        };
        let shared = Arc::new(Shared {
            cell: Arc::new(CauseCell::new(token)),
            aborted: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
            metrics: Metrics::new(&telemetry, &name, error_type::<E>()),
            telemetry,
            name,
        });
        Ok(TaskGroup {
            tasks: JoinSet::new(),
            results: Vec::new(),
            failures: Vec::new(),
            shared,
            limit,
        })
    }
}

impl<T, E> Default for TaskGroup<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> TaskGroup<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// A group named `"group"` without a concurrency limit, reporting to
    /// [`Telemetry::global`].
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// assert!(group.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("no limit was set"))
    }

    /// A builder, for a name, a concurrency limit, a telemetry handle or a parent token.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::builder().name("io").limit(2).build().unwrap();
    /// # let _ = group;
    /// ```
    pub fn builder() -> Builder<T, E> {
        Builder {
            name: Cow::Borrowed("group"),
            limit: None,
            telemetry: None,
            parent: None,
            _types: PhantomData,
        }
    }

    /// The group's token: tasks wait on it and read its [`CancelCause`].
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// let token = group.token();
    /// group.spawn(async move {
    ///     token.cancelled().await; // stops when a sibling fails
    ///     Ok(())
    /// }).await.ok();
    /// group.spawn(async { Err("sibling failed".to_owned()) }).await.ok();
    /// assert!(group.wait().await.is_err());
    /// # }
    /// ```
    pub fn token(&self) -> GroupToken {
        GroupToken::new(self.shared.cell.clone())
    }

    /// Fires the token (cause [`CancelCause::Cancelled`] unless it fired already).
    /// Running tasks keep running until they notice; new spawns are refused.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// group.cancel();
    /// assert!(group.token().is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.shared.cell.fire(CancelCause::Cancelled);
    }

    /// Tasks spawned and not yet collected (running, or ended and not yet reaped).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// group.spawn(std::future::pending()).await.ok();
    /// assert_eq!(group.len(), 1);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is left to collect.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// assert!(group.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Starts `task` on the current tokio runtime, waiting for a slot first when the
    /// group has a concurrency limit.
    ///
    /// The task runs inside the context current at this call when it holds a valid span
    /// context (sampled or not) or baggage. Inside a sampled trace it runs in a span
    /// `otelconc.group.task`, a child of the current span that links to it.
    ///
    /// # Errors
    /// [`SpawnError`] (with the task handed back, not started) when the group's token
    /// has fired, also while waiting for a slot.
    ///
    /// # Panics
    /// When called outside a tokio runtime (as [`tokio::spawn`] does).
    ///
    /// # Cancel safety
    /// If `spawn` is used as a branch in [`tokio::select!`] and another branch completes
    /// first, then it is guaranteed that the task was not started. **However, in that
    /// case, the task is dropped and will be lost.**
    ///
    /// To avoid losing the task, use [`try_spawn`](Self::try_spawn), which hands it back
    /// when no slot is free.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group: TaskGroup<&str, String> = TaskGroup::builder().limit(2).build().unwrap();
    /// group.spawn(async { Ok("done") }).await.expect("group not cancelled");
    /// assert_eq!(group.wait().await.unwrap(), ["done"]);
    /// # }
    /// ```
    pub async fn spawn<F>(&mut self, task: F) -> Result<(), SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let producer = self.shared.telemetry.capture();
        self.spawn_carrying(task, producer).await
    }

    /// [`spawn`](Self::spawn) with `parent` as the spawner's context instead of the
    /// current one (a fan-out passes its own span, or the context it carries).
    pub(crate) async fn spawn_with_parent<F>(
        &mut self,
        task: F,
        parent: Option<&Context>,
    ) -> Result<(), SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.spawn_carrying(task, parent.cloned()).await
    }

    async fn spawn_carrying<F>(
        &mut self,
        task: F,
        producer: Option<Context>,
    ) -> Result<(), SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.reap();
        if self.shared.cell.is_cancelled() {
            return Err(SpawnError(task));
        }
        let permit = match &self.limit {
            None => None,
            Some(limit) => {
                tokio::select! {
                    biased;
                    () = self.shared.cell.token().cancelled() => return Err(SpawnError(task)),
                    permit = limit.clone().acquire_owned() => match permit {
                        Ok(p) => Some(p),
                        // The group never closes its semaphore.
                        Err(_) => return Err(SpawnError(task)),
                    },
                }
            }
        };
        self.start(task, permit, producer);
        Ok(())
    }

    /// Starts `task` if a slot is free, without waiting. It carries the current context
    /// as [`spawn`](Self::spawn) does.
    ///
    /// # Errors
    /// [`TrySpawnError::Full`] when the concurrency limit is reached,
    /// [`TrySpawnError::Cancelled`] when the group's token has fired; the task is
    /// handed back, not started.
    ///
    /// # Panics
    /// When called outside a tokio runtime (as [`tokio::spawn`] does).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group: TaskGroup<(), String> = TaskGroup::builder().limit(1).build().unwrap();
    /// assert!(group.try_spawn(async { Ok(()) }).is_ok());
    /// # }
    /// ```
    pub fn try_spawn<F>(&mut self, task: F) -> Result<(), TrySpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.reap();
        if self.shared.cell.is_cancelled() {
            return Err(TrySpawnError::Cancelled(task));
        }
        let permit = match &self.limit {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(TryAcquireError::NoPermits) => return Err(TrySpawnError::Full(task)),
                Err(TryAcquireError::Closed) => return Err(TrySpawnError::Cancelled(task)),
            },
        };
        let producer = self.shared.telemetry.capture();
        self.start(task, permit, producer);
        Ok(())
    }

    /// Spawns `task`. It runs under its span (see [`Shared::task_span`]) when the
    /// spawner's context `producer` is sampled, else under `producer` itself, so work
    /// nested in it stays in the spawner's trace and sees its baggage.
    fn start<F>(&mut self, task: F, permit: Option<OwnedSemaphorePermit>, producer: Option<Context>)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let index = self.results.len();
        self.results.push(None);
        let shared = self.shared.clone();
        shared.metrics.started.add(1);
        shared.metrics.active.add(1);
        let guard = TaskGuard {
            shared,
            producer,
            index,
            done: false,
        };
        self.tasks.spawn(async move {
            let _permit = permit;
            let mut guard = guard;
            // The span starts here, on the task's first poll, outside any span of the
            // runtime's: so the consumer rule parents it on the spawner's context.
            let producer = guard.producer.take();
            let span = guard.shared.task_span(producer.as_ref(), index);
            // Aborted from here on, this drops first and ends the span as cancelled.
            let mut run = pin!(Guarded::new(task, EndingSpan::new(span, producer.as_ref())));
            let (result, end) = match run.as_mut().await {
                Ok(Ok(value)) => {
                    guard.finish(|m| &m.ok);
                    (Ok(value), End::Ok)
                }
                Ok(Err(error)) => {
                    let end = End::error(&error);
                    let message: Arc<str> = error.to_string().into();
                    let failure = fail(
                        &guard.shared,
                        CancelCause::TaskFailed {
                            index,
                            message: message.clone(),
                        },
                        TaskError::Failed { index, error },
                    );
                    guard.finish(|m| &m.error);
                    (Err(failure), end)
                }
                Err(message) => {
                    let shared_message: Arc<str> = message.as_str().into();
                    let end = End::panic(message.clone());
                    let failure = fail(
                        &guard.shared,
                        CancelCause::TaskPanicked {
                            index,
                            message: shared_message,
                        },
                        TaskError::Panicked { index, message },
                    );
                    guard.finish(|m| &m.panic);
                    (Err(failure), end)
                }
            };
            run.as_mut().span().finish(end);
            Done { index, result }
        });
    }

    /// Collects the tasks that ended, so a long-lived group does not keep finished
    /// tasks: every 32 spawns, which keeps the JoinSet's lock off most spawns.
    fn reap(&mut self) {
        if !self.results.len().is_multiple_of(32) {
            return;
        }
        while let Some(joined) = self.tasks.try_join_next() {
            self.record(joined);
        }
    }

    fn record(&mut self, joined: Result<Done<T, E>, JoinError>) {
        match joined {
            Ok(done) => match done.result {
                Ok(value) => {
                    if let Some(slot) = self.results.get_mut(done.index) {
                        *slot = Some(value);
                    }
                }
                Err(failure) => self.failures.push(failure),
            },
            // An aborted task's guard recorded its index (see `outcome`). A panic can
            // only escape the task from otelconc's own bookkeeping, not from the user's
            // future (caught by `Guarded`); its index is unknown.
            Err(err) if err.is_panic() => self.push_unfired(TaskError::Panicked {
                index: usize::MAX,
                message: crate::util::panic_payload::message(&*err.into_panic()),
            }),
            Err(_) => {}
        }
    }

    /// A failure found at join time, which fired no token: ordered after the ones that
    /// did, by when it was found.
    fn push_unfired(&mut self, error: TaskError<E>) {
        let seq = self.shared.failures.fetch_add(1, Ordering::Relaxed);
        self.failures.push(Failure {
            fired: false,
            seq,
            error,
        });
    }

    /// Records every task as it ends, until none is left. Cancel safe: a task joined
    /// before the future is dropped is already recorded.
    async fn join_all(&mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            self.record(joined);
        }
    }

    fn outcome(&mut self) -> Result<Vec<T>, GroupError<E>> {
        let aborted = self
            .shared
            .aborted
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        for index in aborted {
            self.push_unfired(TaskError::Cancelled { index });
        }
        let mut failures = std::mem::take(&mut self.failures);
        failures.sort_by_key(|f| (!f.fired, f.seq));
        let errors = failures.into_iter().map(|f| f.error).collect();
        match GroupError::from_errors(errors) {
            Some(err) => Err(err),
            // No task failed, so every task stored its value.
            None => Ok(std::mem::take(&mut self.results)
                .into_iter()
                .flatten()
                .collect()),
        }
    }

    /// Waits for every task, then returns their values in spawn order, or every error
    /// (first failure first) when any task failed, panicked or was aborted. The token
    /// fires (cause [`CancelCause::Finished`], unless it fired before) when this returns.
    ///
    /// # Errors
    /// [`GroupError`] holding every [`TaskError`] when at least one task did not
    /// succeed.
    ///
    /// # Cancel safety
    /// If `wait` is used as a branch in [`tokio::select!`] and another branch completes
    /// first, then the group is dropped: its token fires and the tasks still running are
    /// aborted (see the type's docs on shutdown). **However, in that case, the results
    /// of the tasks that had finished are dropped and will be lost.**
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group: TaskGroup<u8, String> = TaskGroup::new();
    /// group.spawn(async { Ok(1) }).await.ok();
    /// group.spawn(async { Err("bad".to_owned()) }).await.ok();
    /// let err = group.wait().await.unwrap_err();
    /// assert_eq!(err.first().index(), 1);
    /// # }
    /// ```
    pub async fn wait(mut self) -> Result<Vec<T>, GroupError<E>> {
        self.join_all().await;
        self.shared.cell.fire(CancelCause::Finished);
        self.outcome()
    }

    /// Fires the token (cause [`CancelCause::Shutdown`] unless it fired before), waits
    /// up to `grace` for the tasks to notice and end, then aborts the rest and waits
    /// until they are gone. Returns like [`TaskGroup::wait`]; an aborted task is a
    /// [`TaskError::Cancelled`].
    ///
    /// # Errors
    /// [`GroupError`] holding every [`TaskError`] when at least one task did not
    /// succeed, including the aborted ones.
    ///
    /// # Cancel safety
    /// If `shutdown` is used as a branch in [`tokio::select!`] and another branch
    /// completes first, then the group is dropped and the tasks still running are
    /// aborted. **However, in that case, the results of the tasks that had finished are
    /// dropped and will be lost.**
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use otelconc::group::{TaskError, TaskGroup};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// group.spawn(std::future::pending()).await.ok(); // ignores the token
    /// let err = group.shutdown(Duration::from_millis(10)).await.unwrap_err();
    /// assert!(matches!(err.first(), TaskError::Cancelled { index: 0 }));
    /// # }
    /// ```
    pub async fn shutdown(mut self, grace: Duration) -> Result<Vec<T>, GroupError<E>> {
        self.shared.cell.fire(CancelCause::Shutdown);
        if tokio::time::timeout(grace, self.join_all()).await.is_err() {
            self.tasks.abort_all();
            self.join_all().await;
        }
        self.outcome()
    }
}

/// Records a failure: fires the token with `cause` if it is the first.
fn fail<E>(shared: &Shared, cause: CancelCause, error: TaskError<E>) -> Failure<E> {
    let seq = shared.failures.fetch_add(1, Ordering::Relaxed);
    let fired = shared.cell.fire(cause);
    Failure { fired, seq, error }
}

impl<T, E> Drop for TaskGroup<T, E> {
    fn drop(&mut self) {
        self.shared.cell.fire(CancelCause::Dropped);
        // The JoinSet, dropped next, aborts every task still in it.
    }
}
