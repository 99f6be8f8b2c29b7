//! The errors of a task group: one small type per operation.

use std::error::Error;
use std::fmt;

/// How one task of a group failed.
///
/// # Examples
/// ```
/// use otelconc::group::{TaskError, TaskGroup};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group: TaskGroup<(), String> = TaskGroup::new();
/// group.spawn(async { panic!("boom") }).await.ok();
/// let err = group.wait().await.unwrap_err();
/// assert!(matches!(err.first(), TaskError::Panicked { index: 0, message } if message == "boom"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError<E> {
    /// The task returned `Err(error)`.
    Failed {
        /// The task's index (spawn order, from 0).
        index: usize,
        /// What the task returned.
        error: E,
    },
    /// The task panicked.
    Panicked {
        /// The task's index (spawn order, from 0).
        index: usize,
        /// The panic message.
        message: String,
    },
    /// The task was aborted before it finished (by [`TaskGroup::shutdown`] after its
    /// grace period).
    ///
    /// [`TaskGroup::shutdown`]: super::TaskGroup::shutdown
    Cancelled {
        /// The task's index (spawn order, from 0).
        index: usize,
    },
}

impl<E> TaskError<E> {
    /// The index of the task (spawn order, from 0).
    ///
    /// # Examples
    /// ```
    /// use otelconc::group::TaskError;
    /// assert_eq!(TaskError::<()>::Cancelled { index: 3 }.index(), 3);
    /// ```
    pub fn index(&self) -> usize {
        match self {
            Self::Failed { index, .. }
            | Self::Panicked { index, .. }
            | Self::Cancelled { index } => *index,
        }
    }

    /// The error the task returned, if it returned one.
    ///
    /// # Examples
    /// ```
    /// use otelconc::group::TaskError;
    /// let e = TaskError::Failed { index: 0, error: "no" };
    /// assert_eq!(e.into_error(), Some("no"));
    /// ```
    pub fn into_error(self) -> Option<E> {
        match self {
            Self::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for TaskError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { index, error } => write!(f, "task {index} failed: {error}"),
            Self::Panicked { index, message } => write!(f, "task {index} panicked: {message}"),
            Self::Cancelled { index } => write!(f, "task {index} was cancelled before it finished"),
        }
    }
}

/// Any `E` that prints (`String`, `&str`, `anyhow::Error`, ...) makes an error type, so
/// `?` works without wrapping; the message includes `E`'s own.
impl<E: fmt::Debug + fmt::Display> Error for TaskError<E> {}

/// Every task error of a group, first failure first.
///
/// The first error is the one that fired the group's token; the others follow in the
/// order they happened. None is dropped (the Go seed keeps only the first).
///
/// # Examples
/// ```
/// use otelconc::group::TaskGroup;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group: TaskGroup<(), String> = TaskGroup::new();
/// group.spawn(async { Err("a".to_owned()) }).await.ok();
/// let err = group.wait().await.unwrap_err();
/// assert_eq!(err.len(), 1);
/// assert_eq!(err.to_string(), "task 0 failed: a");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError<E> {
    // Never empty.
    errors: Vec<TaskError<E>>,
    first: TaskError<E>,
}

impl<E> GroupError<E> {
    /// `None` when `errors` is empty.
    pub(crate) fn from_errors(mut errors: Vec<TaskError<E>>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        let first = errors.remove(0);
        Some(Self { errors, first })
    }

    /// The first error: the one that fired the group's token.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// # group.spawn(async { Err("a".to_owned()) }).await.ok();
    /// let err = group.wait().await.unwrap_err();
    /// assert_eq!(err.first().index(), 0);
    /// # }
    /// ```
    pub fn first(&self) -> &TaskError<E> {
        &self.first
    }

    /// How many tasks failed (at least 1).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// # group.spawn(async { Err("a".to_owned()) }).await.ok();
    /// let err = group.wait().await.unwrap_err();
    /// assert_eq!(err.len(), 1);
    /// # }
    /// ```
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.errors.len() + 1
    }

    /// Every error, first failure first.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// # group.spawn(async { Err("a".to_owned()) }).await.ok();
    /// let err = group.wait().await.unwrap_err();
    /// assert_eq!(err.iter().count(), 1);
    /// # }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &TaskError<E>> {
        std::iter::once(&self.first).chain(self.errors.iter())
    }

    /// Every error, first failure first.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// # group.spawn(async { Err("a".to_owned()) }).await.ok();
    /// let errors = group.wait().await.unwrap_err().into_errors();
    /// assert_eq!(errors[0].index(), 0);
    /// # }
    /// ```
    pub fn into_errors(self) -> Vec<TaskError<E>> {
        let mut all = Vec::with_capacity(self.errors.len() + 1);
        all.push(self.first);
        all.extend(self.errors);
        all
    }

    /// The first error only.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut group: TaskGroup<(), String> = TaskGroup::new();
    /// # group.spawn(async { Err("a".to_owned()) }).await.ok();
    /// let first = group.wait().await.unwrap_err().into_first();
    /// assert_eq!(first.into_error().as_deref(), Some("a"));
    /// # }
    /// ```
    pub fn into_first(self) -> TaskError<E> {
        self.first
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first)?;
        match self.errors.len() {
            0 => Ok(()),
            1 => f.write_str(" (and 1 more task error)"),
            n => write!(f, " (and {n} more task errors)"),
        }
    }
}

/// Any `E` that prints makes an error type (see [`TaskError`]).
impl<E: fmt::Debug + fmt::Display> Error for GroupError<E> {}

/// [`TaskGroup::spawn`](super::TaskGroup::spawn) refused the task because the group's
/// token fired: the task was not started and is handed back.
///
/// # Examples
/// ```
/// # use otelconc::group::TaskGroup;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group: TaskGroup<(), String> = TaskGroup::new();
/// group.cancel();
/// let refused = group.spawn(async { Ok(()) }).await.unwrap_err();
/// let _task = refused.into_inner();
/// # }
/// ```
pub struct SpawnError<F>(pub F);

impl<F> SpawnError<F> {
    /// The task that was not started.
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::group::SpawnError(7);
    /// assert_eq!(e.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpawnError(..)")
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task group is cancelled; the task was not started")
    }
}

impl<F> Error for SpawnError<F> {}

/// [`TaskGroup::try_spawn`](super::TaskGroup::try_spawn) refused the task; it was not
/// started and is handed back.
///
/// # Examples
/// ```
/// use otelconc::group::{TaskGroup, TrySpawnError};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group: TaskGroup<(), String> = TaskGroup::builder().limit(1).build().unwrap();
/// group.try_spawn(std::future::pending()).unwrap();
/// let refused = group.try_spawn(async { Ok(()) }).unwrap_err();
/// assert!(matches!(refused, TrySpawnError::Full(_)));
/// # }
/// ```
#[non_exhaustive]
pub enum TrySpawnError<F> {
    /// Every slot of the concurrency limit is taken.
    Full(F),
    /// The group's token fired.
    Cancelled(F),
}

impl<F> TrySpawnError<F> {
    /// The task that was not started.
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::group::TrySpawnError::Full(7);
    /// assert_eq!(e.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> F {
        match self {
            Self::Full(f) | Self::Cancelled(f) => f,
        }
    }
}

impl<F> fmt::Debug for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Cancelled(_) => f.write_str("Cancelled(..)"),
        }
    }
}

impl<F> fmt::Display for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str(
                "every slot of the task group's limit is taken; the task was not started",
            ),
            Self::Cancelled(_) => {
                f.write_str("the task group is cancelled; the task was not started")
            }
        }
    }
}

impl<F> Error for TrySpawnError<F> {}

/// [`Builder::build`](super::Builder::build) rejected the configuration.
///
/// # Examples
/// ```
/// use otelconc::group::TaskGroup;
/// let err = TaskGroup::<(), String>::builder().limit(0).build().unwrap_err();
/// assert!(err.to_string().contains("at least 1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A concurrency limit of 0 would never start a task.
    ZeroLimit,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroLimit => f.write_str(
                "task group limit must be at least 1 (a limit of 0 would never start a task); \
                 leave it unset for no limit",
            ),
        }
    }
}

impl Error for BuildError {}
