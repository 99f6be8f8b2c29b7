//! The group's cancellation token and why it fired.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Why a [`TaskGroup`](super::TaskGroup)'s token fired.
///
/// # Examples
/// ```
/// use otelconc::group::{CancelCause, TaskGroup};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group: TaskGroup<(), String> = TaskGroup::new();
/// let token = group.token();
/// group.spawn(async { Err("disk full".to_owned()) }).await.ok();
/// token.cancelled().await;
/// assert!(matches!(token.cause(), Some(CancelCause::TaskFailed { index: 0, .. })));
/// # let _ = group.wait().await;
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelCause {
    /// A task returned an error: the first one to fail.
    TaskFailed {
        /// The failed task's index (spawn order, from 0).
        index: usize,
        /// The error, as its `Display` wrote it.
        message: Arc<str>,
    },
    /// A task panicked: the first one to fail.
    TaskPanicked {
        /// The task's index (spawn order, from 0).
        index: usize,
        /// The panic message.
        message: Arc<str>,
    },
    /// [`TaskGroup::cancel`](super::TaskGroup::cancel) was called.
    Cancelled,
    /// [`TaskGroup::shutdown`](super::TaskGroup::shutdown) was called.
    Shutdown,
    /// [`TaskGroup::wait`](super::TaskGroup::wait) returned: every task had ended.
    Finished,
    /// The group was dropped before it was waited for.
    Dropped,
    /// The parent token given to the builder was cancelled.
    Parent,
}

impl fmt::Display for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TaskFailed { index, message } => write!(f, "task {index} failed: {message}"),
            Self::TaskPanicked { index, message } => {
                write!(f, "task {index} panicked: {message}")
            }
            Self::Cancelled => f.write_str("the group was cancelled"),
            Self::Shutdown => f.write_str("the group was shut down"),
            Self::Finished => f.write_str("every task of the group had ended"),
            Self::Dropped => f.write_str("the group was dropped"),
            Self::Parent => f.write_str("the group's parent token was cancelled"),
        }
    }
}

/// The token and the cause, shared by the group and every [`GroupToken`].
#[derive(Debug)]
pub(crate) struct CauseCell {
    token: CancellationToken,
    cause: OnceLock<CancelCause>,
}

impl CauseCell {
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self {
            token,
            cause: OnceLock::new(),
        }
    }

    /// Records `cause` unless one is recorded already, then cancels the token. Returns
    /// whether `cause` is the one recorded.
    pub(crate) fn fire(&self, cause: CancelCause) -> bool {
        if self.token.is_cancelled() {
            // Cancelled by the parent token, which records no cause of its own.
            let _ = self.cause.set(CancelCause::Parent);
        }
        let won = self.cause.set(cause).is_ok();
        self.token.cancel();
        won
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// A handle on a task group's cancellation: tasks wait on it and read why it fired.
///
/// The token fires on the first task error or panic, on [`TaskGroup::cancel`],
/// [`TaskGroup::shutdown`], when [`TaskGroup::wait`] returns, when the group is dropped,
/// or when the builder's parent token is cancelled. The cause is recorded before the
/// token fires, so [`GroupToken::cause`] is `Some` for anyone woken by it.
///
/// [`TaskGroup::cancel`]: super::TaskGroup::cancel
/// [`TaskGroup::shutdown`]: super::TaskGroup::shutdown
/// [`TaskGroup::wait`]: super::TaskGroup::wait
///
/// # Examples
/// ```
/// use otelconc::group::{CancelCause, TaskGroup};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let group: TaskGroup<(), String> = TaskGroup::new();
/// let token = group.token();
/// assert!(!token.is_cancelled());
/// group.cancel();
/// assert_eq!(token.cause(), Some(CancelCause::Cancelled));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GroupToken {
    cell: Arc<CauseCell>,
}

impl GroupToken {
    pub(crate) fn new(cell: Arc<CauseCell>) -> Self {
        Self { cell }
    }

    /// Whether the token fired.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// assert!(!group.token().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }

    /// Waits until the token fires.
    ///
    /// # Cancel safety
    /// This method is cancel safe.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// let token = group.token();
    /// group.cancel();
    /// token.cancelled().await;
    /// # }
    /// ```
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cell.token().cancelled()
    }

    /// Why the token fired, or `None` while it has not.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::{CancelCause, TaskGroup};
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// assert_eq!(group.token().cause(), None);
    /// group.cancel();
    /// assert_eq!(group.token().cause(), Some(CancelCause::Cancelled));
    /// ```
    pub fn cause(&self) -> Option<CancelCause> {
        if !self.cell.is_cancelled() {
            return None;
        }
        Some(
            self.cell
                .cause
                .get()
                .cloned()
                .unwrap_or(CancelCause::Parent),
        )
    }

    /// The underlying `tokio_util` token, to pass to code that takes one or to derive
    /// child tokens from.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::group::TaskGroup;
    /// let group: TaskGroup<(), String> = TaskGroup::new();
    /// let child = group.token().cancellation_token().child_token();
    /// group.cancel();
    /// assert!(child.is_cancelled());
    /// ```
    pub fn cancellation_token(&self) -> &tokio_util::sync::CancellationToken {
        self.cell.token()
    }
}
