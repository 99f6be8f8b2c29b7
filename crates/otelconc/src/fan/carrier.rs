//! The values that carry a producer's trace through a fan-in: [`Traced`] into it, the
//! merge tasks' messages across it, and [`Merged`] (with its receive span) out of it.

use std::fmt;
use std::ops::Deref;

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;

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

/// The span of one received item, ended when the [`Merged`] is dropped.
pub(crate) struct ReceiveSpan(pub(crate) Option<Context>);

impl Drop for ReceiveSpan {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            cx.span().end();
        }
    }
}

/// One item out of a [`FanIn`](super::FanIn): the value, which input it came from, and its traces.
///
/// When the item was produced inside a sampled trace, receiving it started a span
/// `otelconc.fan_in.receive` linked to the producer's context; run the item's
/// processing under [`Merged::context`] to make it part of that span, which ends when the
/// `Merged` is dropped (or [`Merged::into_inner`] is called).
///
/// # Examples
/// ```
/// use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut out = otelconc::fan::fan_in([futures::stream::iter([7])]);
/// let m = out.next().await.unwrap();
/// assert_eq!((*m, m.input()), (7, 0));
/// # }
/// ```
#[must_use = "dropping a `Merged` drops its value and ends its receive span"]
pub struct Merged<T> {
    pub(crate) value: T,
    pub(crate) input: usize,
    pub(crate) producer: Option<Context>,
    pub(crate) span: ReceiveSpan,
}

impl<T: fmt::Debug> fmt::Debug for Merged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merged")
            .field("value", &self.value)
            .field("input", &self.input)
            .field("traced", &self.producer.is_some())
            .finish()
    }
}

impl<T> Deref for Merged<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Merged<T> {
    /// The value.
    ///
    /// # Examples
    /// ```
    /// # use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut out = otelconc::fan::fan_in([futures::stream::iter([7])]);
    /// let m = out.next().await.unwrap();
    /// assert_eq!(*m.value(), 7);
    /// # }
    /// ```
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value; ends the receive span.
    ///
    /// # Examples
    /// ```
    /// # use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut out = otelconc::fan::fan_in([futures::stream::iter([7])]);
    /// let v: i32 = out.next().await.unwrap().into_inner();
    /// assert_eq!(v, 7);
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The index of the input it came from, in the order inputs were added.
    ///
    /// # Examples
    /// ```
    /// # use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut out = otelconc::fan::fan_in([futures::stream::iter([7])]);
    /// assert_eq!(out.next().await.unwrap().input(), 0);
    /// # }
    /// ```
    pub fn input(&self) -> usize {
        self.input
    }

    /// The producer's context, when the item was produced inside a sampled trace.
    ///
    /// # Examples
    /// ```
    /// # use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut out = otelconc::fan::fan_in([futures::stream::iter([7])]);
    /// assert!(out.next().await.unwrap().producer_context().is_none());
    /// # }
    /// ```
    pub fn producer_context(&self) -> Option<&Context> {
        self.producer.as_ref()
    }

    /// The context of the receive span (`otelconc.fan_in.receive`), to run the item's
    /// processing under (`opentelemetry::context::FutureExt::with_context`); `None` when
    /// no span was started.
    ///
    /// # Examples
    /// ```
    /// # use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut out = otelconc::fan::fan_in([futures::stream::iter([7])]);
    /// assert!(out.next().await.unwrap().context().is_none()); // not traced
    /// # }
    /// ```
    pub fn context(&self) -> Option<&Context> {
        self.span.0.as_ref()
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
