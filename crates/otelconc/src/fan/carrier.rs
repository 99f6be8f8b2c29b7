//! The values that carry a producer's context through a fan-in: [`Traced`] into it, the
//! merge tasks' messages ([`Msg`]) across it.

use opentelemetry::Context;

use crate::telemetry::{Carried, Trace, propagated_context};

/// A value with the OpenTelemetry context of the code that produced it, for
/// [`FanInBuilder::traced_input`](super::FanInBuilder::traced_input): each item keeps
/// its own producer's context.
///
/// # Examples
/// ```
/// use otelconc::fan::Traced;
/// let t = Traced::new(5); // captures the current context when it is worth carrying
/// assert!(t.context.is_none()); // here there is none
/// assert_eq!(t.value, 5);
/// ```
#[derive(Debug, Clone)]
pub struct Traced<T> {
    /// The value.
    pub value: T,
    /// The producer's context: any valid span context, sampled or not, or baggage;
    /// `None` when there was nothing to carry.
    pub context: Option<Context>,
}

impl<T> Traced<T> {
    /// `value` with the current context when it holds a valid span context (sampled or
    /// not) or baggage ([`propagated_context`]); one thread-local read and no
    /// allocation otherwise.
    ///
    /// The fan-in consumer then gets the item under that context
    /// ([`Received::context`](super::Received::context)): inside a sampled trace under
    /// an `otelconc.fan_in.receive` span, outside one under the producer's own context,
    /// so work done there stays in the producer's trace and sees its baggage.
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::fan::Traced::new("job");
    /// assert_eq!(t.value, "job");
    /// ```
    pub fn new(value: T) -> Self {
        Self {
            value,
            context: propagated_context(),
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

    /// The item a merge task hands over: the value, and a [`Trace`] only when there is
    /// a context to carry (fan-in items are not timed).
    pub(crate) fn into_carried(self) -> Carried<T> {
        Carried {
            value: self.value,
            trace: self.context.map(|cx| {
                Box::new(Trace {
                    cx: Some(cx),
                    enqueued: None,
                    sent: None,
                    timed: false,
                    seq: 0,
                })
            }),
        }
    }
}

/// What merge tasks send the output.
pub(crate) enum Msg<T> {
    /// An item from input `.1`.
    Item(Carried<T>, usize),
    /// Input `input` panicked with `message`.
    Panicked { input: usize, message: String },
}
