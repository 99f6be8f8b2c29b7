//! The values that carry a producer's trace through a fan-in: [`Traced`] into it, the
//! merge tasks' messages across it.

use opentelemetry::Context;

use crate::telemetry::sampled_context;

/// A value with the OpenTelemetry context of the code that produced it, for
/// [`FanInBuilder::traced_input`](super::FanInBuilder::traced_input): each item keeps
/// its own producer's trace.
///
/// # Examples
/// ```
/// use otelconc::fan::Traced;
/// let t = Traced::new(5); // captures the current context if it is sampled
/// assert!(t.context.is_none());
/// assert_eq!(t.value, 5);
/// ```
#[derive(Debug, Clone)]
pub struct Traced<T> {
    /// The value.
    pub value: T,
    /// The producer's context; `None` outside a sampled trace.
    pub context: Option<Context>,
}

impl<T> Traced<T> {
    /// `value` with the current context when it holds a sampled span (one thread-local
    /// read and no allocation otherwise).
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::fan::Traced::new("job");
    /// assert_eq!(t.value, "job");
    /// ```
    pub fn new(value: T) -> Self {
        Self {
            value,
            context: sampled_context(),
        }
    }

    /// `value` with an explicit producer context.
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::fan::Traced::with_context("job", None);
    /// assert!(t.context.is_none());
    /// ```
    pub fn with_context(value: T, context: Option<Context>) -> Self {
        Self { value, context }
    }
}

/// What merge tasks send the output.
pub(crate) enum Msg<T> {
    Item {
        value: T,
        input: usize,
        producer: Option<Context>,
    },
    Panicked {
        input: usize,
        message: String,
    },
}
