//! The errors of the pipeline module.

use std::fmt;
use std::sync::Arc;

/// Why an item (or a whole run, with [`ErrorPolicy::FailFast`]) failed.
///
/// [`ErrorPolicy::FailFast`]: super::ErrorPolicy::FailFast
///
/// # Examples
/// ```
/// use otelconc::pipeline::PipelineError;
/// let e: PipelineError<std::io::Error> = PipelineError::Cancelled;
/// assert_eq!(e.to_string(), "pipeline cancelled");
/// assert!(e.stage().is_none());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError<E> {
    /// A stage function returned an error.
    Stage {
        /// The stage's name.
        stage: Arc<str>,
        /// What the stage function returned.
        error: E,
    },
    /// A stage function panicked.
    Panic {
        /// The stage's name.
        stage: Arc<str>,
        /// The panic message.
        message: String,
    },
    /// The run's cancellation token fired before the run finished.
    Cancelled,
}

impl<E> PipelineError<E> {
    /// The name of the stage that failed, if a stage failed.
    ///
    /// # Examples
    /// ```
    /// use otelconc::pipeline::PipelineError;
    /// let e = PipelineError::Stage { stage: "parse".into(), error: "bad digit" };
    /// assert_eq!(e.stage(), Some("parse"));
    /// ```
    pub fn stage(&self) -> Option<&str> {
        match self {
            Self::Stage { stage, .. } | Self::Panic { stage, .. } => Some(stage),
            Self::Cancelled => None,
        }
    }

    /// The stage function's error, when that is what failed.
    ///
    /// # Examples
    /// ```
    /// use otelconc::pipeline::PipelineError;
    /// let e = PipelineError::Stage { stage: "parse".into(), error: "bad digit" };
    /// assert_eq!(e.into_stage_error(), Some("bad digit"));
    /// ```
    pub fn into_stage_error(self) -> Option<E> {
        match self {
            Self::Stage { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stage { stage, error } => write!(f, "stage {stage:?} failed: {error}"),
            Self::Panic { stage, message } => write!(f, "stage {stage:?} panicked: {message}"),
            Self::Cancelled => f.write_str("pipeline cancelled"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PipelineError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stage { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A pipeline or chain configuration that cannot run: a zero concurrency, buffer or
/// sampling interval, or a pipeline without stages.
///
/// # Examples
/// ```
/// use otelconc::pipeline::Pipeline;
/// let err = Pipeline::builder("p")
///     .stage("parse", 0, 16, |x: u64| async move { Ok::<_, std::io::Error>(x) })
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "pipeline \"p\", stage \"parse\": concurrency must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub(crate) pipeline: Arc<str>,
    pub(crate) stage: Option<Arc<str>>,
    pub(crate) reason: &'static str,
}

impl BuildError {
    /// The stage whose configuration is invalid, if the problem is one stage's.
    ///
    /// # Examples
    /// ```
    /// use otelconc::pipeline::Pipeline;
    /// let err = Pipeline::builder("p")
    ///     .stage("parse", 1, 0, |x: u64| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.stage(), Some("parse"));
    /// ```
    pub fn stage(&self) -> Option<&str> {
        self.stage.as_deref()
    }

    /// What is wrong, without the names.
    ///
    /// # Examples
    /// ```
    /// use otelconc::pipeline::Pipeline;
    /// let err = Pipeline::builder("p")
    ///     .stage("parse", 1, 0, |x: u64| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), "buffer must be at least 1");
    /// ```
    pub fn reason(&self) -> &str {
        self.reason
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stage {
            Some(s) => write!(
                f,
                "pipeline {:?}, stage {s:?}: {}",
                self.pipeline, self.reason
            ),
            None => write!(f, "pipeline {:?}: {}", self.pipeline, self.reason),
        }
    }
}

impl std::error::Error for BuildError {}

/// The pipeline has stopped taking input (it failed, was cancelled, or its output was
/// dropped); the item is handed back.
///
/// # Examples
/// ```
/// let e = otelconc::pipeline::SendError(7_u64);
/// assert_eq!(e.into_inner(), 7);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The item that was not sent.
    ///
    /// # Examples
    /// ```
    /// let e = otelconc::pipeline::SendError("x");
    /// assert_eq!(e.into_inner(), "x");
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending into a stopped pipeline")
    }
}

impl<T> std::error::Error for SendError<T> {}
