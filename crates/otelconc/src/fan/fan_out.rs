//! [`FanOut`]: fan-out with a name and telemetry, and the free functions over it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::KeyValue;

use super::error::BuildError;
use super::items::{FanOutItems, FanOutItemsUnordered};
use super::state::Shared;
use crate::group::{GroupError, GroupToken, TaskError, TaskGroup};
use crate::telemetry::names::{ATTR_NAME, fan as names};
use crate::telemetry::{End, EndingSpan, Telemetry, error_type};

/// Fan-out with a name and a telemetry handle, built once and reused.
///
/// The free functions [`fan_out`](super::fan_out), [`fan_out_items`](super::fan_out_items)
/// and [`fan_out_items_unordered`](super::fan_out_items_unordered) build a `FanOut`
/// named `"fan_out"` on [`Telemetry::global`] per call, whose instruments (and item
/// counts) every call shares for as long as the global meter provider stays installed;
/// build one yourself to pick the name and the telemetry. Cloning is cheap (one `Arc`).
///
/// # Examples
/// ```
/// use futures::TryStreamExt;
/// use otelconc::fan::FanOut;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let resize = FanOut::new("resize");
/// let sizes: Vec<u32> = resize
///     .items(vec![10, 20, 30], 2, |px| async move { Ok::<_, String>(px / 10) })
///     .unwrap()
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(sizes, [1, 2, 3]);
/// # }
/// ```
#[derive(Clone)]
pub struct FanOut {
    shared: Arc<Shared>,
}

impl fmt::Debug for FanOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("name", &self.shared.name.value)
            .finish_non_exhaustive()
    }
}

/// Configures a [`FanOut`].
///
/// # Examples
/// ```
/// use otelconc::fan::FanOut;
/// use otelconc::telemetry::Telemetry;
/// let fan = FanOut::builder("thumbnails").telemetry(Telemetry::global()).build();
/// # let _ = fan;
/// ```
#[derive(Debug)]
pub struct FanOutBuilder {
    name: Cow<'static, str>,
    telemetry: Option<Telemetry>,
}

impl FanOutBuilder {
    /// Where metrics and spans go (default [`Telemetry::global`], read at `build`).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::fan::FanOut;
    /// let fan = FanOut::builder("x").telemetry(otelconc::telemetry::Telemetry::global()).build();
    /// # let _ = fan;
    /// ```
    #[must_use]
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Builds the fan-out and binds its instruments.
    ///
    /// # Examples
    /// ```
    /// let fan = otelconc::fan::FanOut::builder("x").build();
    /// # let _ = fan;
    /// ```
    pub fn build(self) -> FanOut {
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let name = KeyValue::new(ATTR_NAME, self.name);
        FanOut {
            shared: Arc::new(Shared::new(name, telemetry)),
        }
    }
}

impl FanOut {
    /// The fan-out of the free functions: named `"fan_out"`, on [`Telemetry::global`]
    /// (read per call), with instruments kept for as long as the global meter provider
    /// stays installed.
    fn global() -> Self {
        Self {
            shared: Arc::new(Shared::global()),
        }
    }

    /// A fan-out named `name` (the `otelconc.name` attribute; keep the set of names
    /// small) on [`Telemetry::global`].
    ///
    /// # Examples
    /// ```
    /// let fan = otelconc::fan::FanOut::new("resize");
    /// # let _ = fan;
    /// ```
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self::builder(name).build()
    }

    /// A builder, to pass a telemetry handle.
    ///
    /// # Examples
    /// ```
    /// let fan = otelconc::fan::FanOut::builder("resize").build();
    /// # let _ = fan;
    /// ```
    pub fn builder(name: impl Into<Cow<'static, str>>) -> FanOutBuilder {
        FanOutBuilder {
            name: name.into(),
            telemetry: None,
        }
    }

    /// Runs `workers` copies of `worker` on one `input`, each in its own task of a
    /// [`TaskGroup`] named like this fan-out; returns every worker's result (by worker
    /// index) or every error, first failure first.
    ///
    /// `worker(input, index, token)` gets a clone of `input`, its index and the group's
    /// token, which fires on the first error (cancel-on-error): workers should stop when
    /// it does. `workers == 0` returns an empty vector. Each worker runs under the
    /// caller's context when it is worth carrying (a valid span context, sampled or
    /// not, or baggage). Inside a sampled trace the call has a span `otelconc.fan_out`
    /// (ended with status Error and `error.type` when a worker failed) and each
    /// worker's task span is its child.
    ///
    /// # Errors
    /// [`GroupError`] with every worker's [`TaskError`](crate::group::TaskError):
    /// returned errors and panics (with their message).
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    ///
    /// # Cancel safety
    /// If `run` is used as a branch in [`tokio::select!`] and another branch completes
    /// first, then the workers still running are aborted. **However, in that case, the
    /// results of the workers that had finished are dropped and will be lost.**
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let fan = otelconc::fan::FanOut::new("probe");
    /// let out = fan
    ///     .run("db.internal".to_owned(), 3, |host, i, _token| async move {
    ///         Ok::<_, String>(format!("{host}#{i}"))
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out, ["db.internal#0", "db.internal#1", "db.internal#2"]);
    /// # }
    /// ```
    pub async fn run<T, R, E, W, Fut>(
        &self,
        input: T,
        workers: usize,
        worker: W,
    ) -> Result<Vec<R>, GroupError<E>>
    where
        T: Clone + Send + 'static,
        W: Fn(T, usize, GroupToken) -> Fut,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let shared = &self.shared;
        // The caller's context, whenever it is worth carrying; inside a sampled trace the
        // call gets a span of its own, a child of it.
        let carried = shared.telemetry.capture();
        let parent = carried
            .as_ref()
            .filter(|cx| shared.telemetry.spans_under(cx));
        let span = parent.map(|parent| {
            shared.telemetry.start_span(
                &names::FAN_OUT,
                parent,
                vec![
                    shared.name.clone(),
                    KeyValue::new(
                        names::ATTR_WORKERS,
                        i64::try_from(workers).unwrap_or(i64::MAX),
                    ),
                ],
            )
        });
        // The workers are spawned with the span's context, or the caller's carried one.
        let mut span = EndingSpan::new(span, carried.as_ref());
        let mut group: TaskGroup<R, E> = TaskGroup::builder()
            .name(shared.name.value.as_str().into_owned())
            .telemetry(shared.telemetry.clone())
            .build()
            .unwrap_or_else(|_| unreachable!("no limit was set"));
        let token = group.token();
        for index in 0..workers {
            let task = worker(input.clone(), index, token.clone());
            if group.spawn_with_parent(task, span.context()).await.is_err() {
                // A worker failed already: start no more.
                break;
            }
        }
        let out = group.wait().await;
        span.finish(match &out {
            Ok(_) => End::Ok,
            // Named after the first failure: the worker's error type, or `panic`.
            Err(e) => match e.first() {
                TaskError::Failed { .. } => End::Failed(error_type::<E>(), e.to_string().into()),
                TaskError::Panicked { .. } => End::panic(e.to_string()),
                _ => End::Cancelled,
            },
        });
        out
    }

    /// `f` over every item of `items`, at most `concurrency` at a time, results in input
    /// order (see [`fan_out_items`](super::fan_out_items)).
    ///
    /// # Errors
    /// [`BuildError::ZeroConcurrency`] when `concurrency` is 0.
    ///
    /// # Examples
    /// ```
    /// use futures::TryStreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let fan = otelconc::fan::FanOut::new("square");
    /// let out: Vec<u64> = fan.items(1..=4u64, 2, |x| async move { Ok::<_, String>(x * x) })
    ///     .unwrap().try_collect().await.unwrap();
    /// assert_eq!(out, [1, 4, 9, 16]);
    /// # }
    /// ```
    pub fn items<I, F, Fut, R, E>(
        &self,
        items: I,
        concurrency: usize,
        f: F,
    ) -> Result<FanOutItems<I::IntoIter, F, Fut>, BuildError>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: fmt::Display,
    {
        if concurrency == 0 {
            return Err(BuildError::ZeroConcurrency);
        }
        Ok(FanOutItems::new(
            items.into_iter(),
            concurrency,
            f,
            self.shared.clone(),
        ))
    }

    /// `f` over every item of `items`, at most `concurrency` at a time, results in the
    /// order they complete (see
    /// [`fan_out_items_unordered`](super::fan_out_items_unordered)).
    ///
    /// # Errors
    /// [`BuildError::ZeroConcurrency`] when `concurrency` is 0.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let fan = otelconc::fan::FanOut::new("square");
    /// let n = fan.items_unordered(0..100, 8, |x| async move { Ok::<_, String>(x) })
    ///     .unwrap().count().await;
    /// assert_eq!(n, 100);
    /// # }
    /// ```
    pub fn items_unordered<I, F, Fut, R, E>(
        &self,
        items: I,
        concurrency: usize,
        f: F,
    ) -> Result<FanOutItemsUnordered<I::IntoIter, F, Fut>, BuildError>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: fmt::Display,
    {
        if concurrency == 0 {
            return Err(BuildError::ZeroConcurrency);
        }
        Ok(FanOutItemsUnordered::new(
            items.into_iter(),
            concurrency,
            f,
            self.shared.clone(),
        ))
    }
}

/// Runs `workers` copies of `worker` on one `input` and returns every result or every
/// error, cancelling the other workers' token on the first error: the seed's `FanOut`.
///
/// Same as [`FanOut::run`] on a `FanOut` named `"fan_out"` on [`Telemetry::global`],
/// whose instruments every call shares; build your own [`FanOut`] to pick the name and
/// the telemetry.
///
/// # Errors
/// [`GroupError`] with every failed worker's error or panic message.
///
/// # Panics
/// When called outside a tokio runtime.
///
/// # Cancel safety
/// If `fan_out` is used as a branch in [`tokio::select!`] and another branch completes
/// first, then the workers still running are aborted. **However, in that case, the
/// results of the workers that had finished are dropped and will be lost.**
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let shards = otelconc::fan::fan_out(100u64, 4, |total, i, _token| async move {
///     Ok::<_, String>(total / 4 * i as u64)
/// })
/// .await
/// .unwrap();
/// assert_eq!(shards, [0, 25, 50, 75]);
/// # }
/// ```
pub async fn fan_out<T, R, E, W, Fut>(
    input: T,
    workers: usize,
    worker: W,
) -> Result<Vec<R>, GroupError<E>>
where
    T: Clone + Send + 'static,
    W: Fn(T, usize, GroupToken) -> Fut,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    FanOut::global().run(input, workers, worker).await
}

/// Runs `f` on every item of `items`, at most `concurrency` at a time, and yields the
/// results in input order: `futures`' `buffered`, with telemetry, panics caught, and
/// `concurrency == 0` rejected instead of hanging.
///
/// The returned stream yields every item's `Result`; collect with
/// `TryStreamExt::try_collect` for "all results or the first error": it stops at the
/// first error and dropping the stream cancels the items still running. Items run
/// inside the task that polls the stream (no task per item), like `buffered`; spawn
/// inside `f` for CPU-heavy work. A panic in `f` or in its future becomes that item's
/// [`ItemError::Panicked`](super::ItemError::Panicked).
///
/// Built on a `FanOut` named `"fan_out"` on [`Telemetry::global`], whose instruments
/// every call shares; build your own [`FanOut`] to pick the name and the telemetry.
///
/// # Errors
/// [`BuildError::ZeroConcurrency`] when `concurrency` is 0.
///
/// # Examples
/// ```
/// use futures::TryStreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let lengths: Vec<usize> = otelconc::fan::fan_out_items(["a", "bb", "ccc"], 2, |s| async move {
///     Ok::<_, String>(s.len())
/// })
/// .unwrap()
/// .try_collect()
/// .await
/// .unwrap();
/// assert_eq!(lengths, [1, 2, 3]);
/// # }
/// ```
pub fn fan_out_items<I, F, Fut, R, E>(
    items: I,
    concurrency: usize,
    f: F,
) -> Result<FanOutItems<I::IntoIter, F, Fut>, BuildError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    if concurrency == 0 {
        return Err(BuildError::ZeroConcurrency);
    }
    FanOut::global().items(items, concurrency, f)
}

/// Like [`fan_out_items`], yielding results in the order they complete:
/// `futures`' `buffer_unordered`, with telemetry, panics caught, and `concurrency == 0`
/// rejected.
///
/// # Errors
/// [`BuildError::ZeroConcurrency`] when `concurrency` is 0.
///
/// # Examples
/// ```
/// use futures::TryStreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let total: u64 = otelconc::fan::fan_out_items_unordered(1..=10u64, 4, |x| async move {
///     Ok::<_, String>(x)
/// })
/// .unwrap()
/// .try_fold(0, |acc, x| async move { Ok(acc + x) })
/// .await
/// .unwrap();
/// assert_eq!(total, 55);
/// # }
/// ```
pub fn fan_out_items_unordered<I, F, Fut, R, E>(
    items: I,
    concurrency: usize,
    f: F,
) -> Result<FanOutItemsUnordered<I::IntoIter, F, Fut>, BuildError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    if concurrency == 0 {
        return Err(BuildError::ZeroConcurrency);
    }
    FanOut::global().items_unordered(items, concurrency, f)
}
