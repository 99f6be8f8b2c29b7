//! One small error type per operation.

use std::fmt;

/// Why a job did not produce its output.
///
/// # Examples
/// ```
/// use otelconc::pool::JobError;
/// let e = JobError::Panicked("boom".into());
/// assert_eq!(e.to_string(), "job panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// The job panicked; the panic message. The worker survived.
    Panicked(String),
    /// The job ran longer than the pool's per-job timeout; its future was dropped and
    /// its token cancelled.
    TimedOut,
    /// The job had started when the pool aborted or a shutdown deadline passed; its
    /// future was dropped and its token cancelled.
    Cancelled,
    /// The job was accepted but never started: the pool aborted, or a shutdown deadline
    /// passed, while it was still queued. (A job the pool refused at submit is handed
    /// back in a [`SubmitError`] or [`TrySubmitError`] instead.)
    NotStarted,
}

/// The message of a caught panic's payload, as [`JobError::Panicked`] carries it: the
/// `&str` or `String` given to `panic!`, else `panic with a non-string payload`. For a
/// job that catches its own panics (to settle work of its own before the pool counts
/// the panic) and wants the text the pool would report.
///
/// # Examples
/// ```
/// use std::panic::{AssertUnwindSafe, catch_unwind};
/// let payload = catch_unwind(AssertUnwindSafe(|| panic!("bad input {}", 7))).unwrap_err();
/// assert_eq!(otelconc::pool::panic_message(&*payload), "bad input 7");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    crate::util::panic_payload::message(payload)
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked(m) => write!(f, "job panicked: {m}"),
            Self::TimedOut => f.write_str("job timed out"),
            Self::Cancelled => f.write_str("job cancelled by pool shutdown"),
            Self::NotStarted => f.write_str("job not started: the pool shut down first"),
        }
    }
}

impl std::error::Error for JobError {}

/// [`WorkerPool::submit`](super::WorkerPool::submit) on a closed pool: the job is handed
/// back.
///
/// # Examples
/// ```
/// use otelconc::pool::SubmitError;
/// let e = SubmitError(5);
/// assert_eq!(e.to_string(), "the worker pool is closed");
/// assert_eq!(e.into_inner(), 5);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SubmitError<J>(pub J);

impl<J> SubmitError<J> {
    /// The job that was not submitted.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(otelconc::pool::SubmitError("job").into_inner(), "job");
    /// ```
    pub fn into_inner(self) -> J {
        self.0
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubmitError(..)")
    }
}

impl<J> fmt::Display for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the worker pool is closed")
    }
}

impl<J> std::error::Error for SubmitError<J> {}

/// [`WorkerPool::try_submit`](super::WorkerPool::try_submit) refused: the job is handed
/// back.
///
/// # Examples
/// ```
/// use otelconc::pool::TrySubmitError;
/// let e = TrySubmitError::Full(1);
/// assert!(e.is_full());
/// assert_eq!(e.into_inner(), 1);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum TrySubmitError<J> {
    /// The queue is full.
    Full(J),
    /// The pool is closed.
    Closed(J),
}

impl<J> TrySubmitError<J> {
    /// The job that was not submitted.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(otelconc::pool::TrySubmitError::Closed(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> J {
        match self {
            Self::Full(j) | Self::Closed(j) => j,
        }
    }

    /// Whether the queue was full.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::pool::TrySubmitError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the pool was closed.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::pool::TrySubmitError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<J> fmt::Debug for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<J> fmt::Display for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("the worker pool's queue is full"),
            Self::Closed(_) => f.write_str("the worker pool is closed"),
        }
    }
}

impl<J> std::error::Error for TrySubmitError<J> {}

/// An invalid pool configuration, from [`Builder::build`](super::Builder::build).
///
/// # Examples
/// ```
/// let err = otelconc::pool::WorkerPool::builder("p").workers(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "worker pool \"p\": workers must be at least 1, got 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`.
    ZeroWorkers {
        /// The pool's name.
        pool: String,
    },
    /// `queue_capacity(0)`.
    ZeroCapacity {
        /// The pool's name.
        pool: String,
    },
    /// `job_timeout(Duration::ZERO)`.
    ZeroTimeout {
        /// The pool's name.
        pool: String,
    },
    /// `outcomes(0)`.
    ZeroOutcomes {
        /// The pool's name.
        pool: String,
    },
    /// `timing_sample(0)`.
    ZeroSample {
        /// The pool's name.
        pool: String,
    },
    /// `build()` outside a tokio runtime.
    NoRuntime {
        /// The pool's name.
        pool: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroWorkers { pool } => zero_workers(f, pool),
            Self::ZeroCapacity { pool } => write!(
                f,
                "worker pool {pool:?}: queue capacity must be at least 1, got 0"
            ),
            Self::ZeroTimeout { pool } => write!(
                f,
                "worker pool {pool:?}: job timeout must be longer than zero (omit it for no timeout)"
            ),
            Self::ZeroOutcomes { pool } => write!(
                f,
                "worker pool {pool:?}: outcomes buffer must hold at least 1, got 0"
            ),
            Self::ZeroSample { pool } => write!(
                f,
                "worker pool {pool:?}: timing sample must be 1 in at least 1 jobs, got 0"
            ),
            Self::NoRuntime { pool } => write!(
                f,
                "worker pool {pool:?}: must be built inside a tokio runtime"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

fn zero_workers(f: &mut fmt::Formatter<'_>, pool: &str) -> fmt::Result {
    write!(f, "worker pool {pool:?}: workers must be at least 1, got 0")
}

/// [`WorkerPool::resize`](super::WorkerPool::resize) refused; the worker count is
/// unchanged.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use otelconc::pool::{ResizeError, WorkerPool};
/// let pool = WorkerPool::builder("p").workers(2).build()?;
/// assert_eq!(pool.resize(0), Err(ResizeError::ZeroWorkers { pool: "p".into() }));
/// pool.close();
/// let err = pool.resize(4).unwrap_err();
/// assert_eq!(err.to_string(), "worker pool \"p\" is closed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResizeError {
    /// `resize(0)`.
    ZeroWorkers {
        /// The pool's name.
        pool: String,
    },
    /// `resize` after `close` (or a shutdown).
    Closed {
        /// The pool's name.
        pool: String,
    },
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroWorkers { pool } => zero_workers(f, pool),
            Self::Closed { pool } => write!(f, "worker pool {pool:?} is closed"),
        }
    }
}

impl std::error::Error for ResizeError {}
