//! [`FanIn`]: many streams merged into one by a task per input.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Link, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::error::ZeroConcurrency;
use crate::group::Guarded;
use crate::telemetry::names::{ATTR_NAME, fan as names};
use crate::telemetry::{Counter, SpanPolicy, Telemetry, sampled_context};

const DEFAULT_CAPACITY: usize = 32;

/// A value with the OpenTelemetry context of the code that produced it, for
/// [`FanInBuilder::traced_input`]: each item keeps its own producer's trace.
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
struct ReceiveSpan(Option<Context>);

impl Drop for ReceiveSpan {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            cx.span().end();
        }
    }
}

/// One item out of a [`FanIn`]: the value, which input it came from, and its traces.
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
pub struct Merged<T> {
    value: T,
    input: usize,
    producer: Option<Context>,
    span: ReceiveSpan,
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
enum Msg<T> {
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

type BoxInput<T> = Pin<Box<dyn Stream<Item = Traced<T>> + Send>>;

/// Configures a [`FanIn`]: its name, telemetry, buffer and inputs.
///
/// # Examples
/// ```
/// use futures::{StreamExt, stream};
/// use otelconc::fan::FanIn;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = FanIn::builder("events")
///     .capacity(16)
///     .input("kafka", stream::iter([1, 2]))
///     .input("http", stream::iter([3]))
///     .build()
///     .unwrap();
/// assert_eq!(out.count().await, 3);
/// # }
/// ```
pub struct FanInBuilder<T> {
    name: Cow<'static, str>,
    telemetry: Option<Telemetry>,
    capacity: usize,
    inputs: Vec<(Cow<'static, str>, BoxInput<T>, Option<Context>)>,
}

impl<T> fmt::Debug for FanInBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanInBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("inputs", &self.inputs.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> FanInBuilder<T> {
    /// Where metrics and spans go (default [`Telemetry::global`], read at `build`).
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::fan::FanIn::<u8>::builder("x").telemetry(otelconc::telemetry::Telemetry::global());
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// How many merged items may wait for the consumer (default 32). When it is full
    /// the merge tasks stop pulling from their inputs: memory stays bounded. `0` is
    /// rejected by [`FanInBuilder::build`].
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::fan::FanIn::<u8>::builder("x").capacity(4);
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Adds an input labelled `name` (the `otelconc.fan_in.input` attribute of the
    /// merged-items counter; inputs may share a name). Its items carry the context
    /// current at this call, when sampled; the input is polled under it.
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::fan::FanIn::builder("x").input("a", futures::stream::iter([1]));
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn input<S>(mut self, name: impl Into<Cow<'static, str>>, input: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let cx = sampled_context().filter(|_| self.spans_on());
        let carried = cx.clone();
        let stream = input.map(move |value| Traced {
            value,
            context: carried.clone(),
        });
        self.inputs.push((name.into(), Box::pin(stream), cx));
        self
    }

    /// Adds an input whose items carry their own producer context ([`Traced`]): use it
    /// when the items of one input come from different traces.
    ///
    /// # Examples
    /// ```
    /// use otelconc::fan::{FanIn, Traced};
    /// let b = FanIn::builder("x").traced_input("a", futures::stream::iter([Traced::new(1)]));
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn traced_input<S>(mut self, name: impl Into<Cow<'static, str>>, input: S) -> Self
    where
        S: Stream<Item = Traced<T>> + Send + 'static,
    {
        self.inputs.push((name.into(), Box::pin(input), None));
        self
    }

    fn spans_on(&self) -> bool {
        self.telemetry
            .as_ref()
            .is_none_or(|t| t.span_policy() != SpanPolicy::Never)
    }

    /// Starts one merge task per input and returns the merged stream.
    ///
    /// # Errors
    /// [`ZeroConcurrency`] when the capacity is 0.
    ///
    /// # Panics
    /// When called outside a tokio runtime (it spawns the merge tasks).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = otelconc::fan::FanIn::<u8>::builder("x").capacity(0).build().unwrap_err();
    /// assert!(err.to_string().contains("capacity must be at least 1"));
    /// # }
    /// ```
    pub fn build(self) -> Result<FanIn<T>, ZeroConcurrency> {
        if self.capacity == 0 {
            return Err(ZeroConcurrency {
                what: "fan_in: capacity must be at least 1 (0 could never hand an item over)",
            });
        }
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let name = KeyValue::new(ATTR_NAME, self.name);
        let (tx, rx) = mpsc::channel(self.capacity);
        let mut tasks = JoinSet::new();
        let mut labels = Vec::with_capacity(self.inputs.len());
        for (input, (label, stream, cx)) in self.inputs.into_iter().enumerate() {
            let label = KeyValue::new(names::ATTR_INPUT, label);
            let merged = telemetry.counter(&names::MERGED, &[name.clone(), label.clone()]);
            labels.push(label);
            let merge = merge(stream, input, tx.clone(), merged);
            match cx {
                Some(cx) => tasks.spawn(merge.with_context(cx)),
                None => tasks.spawn(merge),
            };
        }
        Ok(FanIn {
            rx,
            tasks,
            telemetry,
            name,
            labels,
        })
    }
}

/// One input's merge task: pull, hand over, count; stop when the input ends, the
/// output is gone, or the input panics (reported to the output).
async fn merge<T>(
    mut stream: BoxInput<T>,
    input: usize,
    tx: mpsc::Sender<Msg<T>>,
    merged: Counter,
) {
    loop {
        let next = Guarded::new(stream.next(), None::<Context>).await;
        let msg = match next {
            Ok(Some(item)) => Msg::Item {
                value: item.value,
                input,
                producer: item.context,
            },
            Ok(None) => return,
            Err(message) => {
                let _ = tx.send(Msg::Panicked { input, message }).await;
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return; // the output was dropped
        }
        merged.add(1);
    }
}

/// Many streams merged into one: the seed's `FanIn`, with producer contexts kept and
/// no task left behind.
///
/// One task per input pulls from it and hands items to a bounded buffer that this
/// stream reads; the stream ends when every input has ended. Dropping it aborts the
/// merge tasks (they are dropped at their next scheduling point; a merge task blocked
/// on the full buffer also stops because the buffer is gone);
/// [`FanIn::shutdown`] does the same and waits until they are gone.
///
/// # Panics
/// Polling panics, with the input's index and message, when an input stream panicked:
/// the panic is carried to the consumer instead of silently ending that input.
///
/// # Telemetry
/// `otelconc.fan_in.items` counts merged items by input, the name given to
/// [`FanInBuilder::input`] (or the index for [`fan_in`]): give inputs names from a small
/// set rather than fanning in thousands of indexed inputs. An item produced inside a
/// sampled trace gets an `otelconc.fan_in.receive` span when received, linked to its
/// producer; see [`Merged`] and
/// [`docs/telemetry.md`](https://example.invalid/otelconc/blob/main/docs/telemetry.md).
///
/// # Examples
/// ```
/// use futures::{StreamExt, stream};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = otelconc::fan::fan_in([stream::iter(vec![1, 2]), stream::iter(vec![3])]);
/// let mut all: Vec<i32> = out.map(|m| m.into_inner()).collect().await;
/// all.sort();
/// assert_eq!(all, [1, 2, 3]);
/// # }
/// ```
pub struct FanIn<T> {
    rx: mpsc::Receiver<Msg<T>>,
    tasks: JoinSet<()>,
    telemetry: Telemetry,
    name: KeyValue,
    labels: Vec<KeyValue>,
}

impl<T> fmt::Debug for FanIn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanIn")
            .field("name", &self.name.value)
            .field("inputs", &self.labels.len())
            .field("merge_tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> FanIn<T> {
    /// A builder: name, telemetry, capacity and named inputs.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = otelconc::fan::FanIn::builder("m").input("a", futures::stream::iter([1])).build().unwrap();
    /// # let _ = out;
    /// # }
    /// ```
    pub fn builder(name: impl Into<Cow<'static, str>>) -> FanInBuilder<T> {
        FanInBuilder {
            name: name.into(),
            telemetry: None,
            capacity: DEFAULT_CAPACITY,
            inputs: Vec::new(),
        }
    }

    /// Aborts the merge tasks and waits until they are gone. Items already merged and
    /// not yet received are dropped.
    ///
    /// # Cancel safety
    /// Dropping the future drops the `FanIn`, which aborts the tasks without waiting.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = otelconc::fan::fan_in([futures::stream::pending::<u8>()]);
    /// out.shutdown().await; // the pending input's task is gone
    /// # }
    /// ```
    pub async fn shutdown(mut self) {
        self.rx.close();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    fn receive(&self, input: usize, producer: &Context) -> Option<Context> {
        if self.telemetry.span_policy() == SpanPolicy::Never {
            return None;
        }
        // Inside the consumer's own sampled trace the span belongs there and links to the
        // producer; a consumer outside any trace continues the producer's trace instead,
        // so the item's trace runs on through the fan-in.
        let parent = self
            .telemetry
            .span_parent()
            .unwrap_or_else(|| producer.clone());
        let mut attrs = vec![self.name.clone()];
        attrs.extend(self.labels.get(input).cloned());
        Some(self.telemetry.start_linked_span(
            &names::RECEIVE,
            &parent,
            vec![Link::with_context(producer.span().span_context().clone())],
            attrs,
        ))
    }
}

impl<T: Send + 'static> Stream for FanIn<T> {
    type Item = Merged<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Option<Merged<T>>> {
        let this = self.get_mut();
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Item {
                value,
                input,
                producer,
            })) => {
                let span = producer.as_ref().and_then(|p| this.receive(input, p));
                Poll::Ready(Some(Merged {
                    value,
                    input,
                    producer,
                    span: ReceiveSpan(span),
                }))
            }
            Poll::Ready(Some(Msg::Panicked { input, message })) => {
                panic!("fan_in input {input} panicked: {message}")
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Merges `inputs` into one stream, one task per input, labelled by index: the seed's
/// `FanIn`. Same as [`FanIn::builder`]`("fan_in")` with each input added under its
/// index and the default capacity (32).
///
/// # Panics
/// When called outside a tokio runtime (it spawns the merge tasks).
///
/// # Examples
/// ```
/// use futures::{StreamExt, stream};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let n = otelconc::fan::fan_in([stream::iter(0..10), stream::iter(10..15)]).count().await;
/// assert_eq!(n, 15);
/// # }
/// ```
pub fn fan_in<S, T>(inputs: impl IntoIterator<Item = S>) -> FanIn<T>
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    let builder = inputs
        .into_iter()
        .enumerate()
        .fold(FanIn::builder("fan_in"), |b, (i, s)| {
            b.input(i.to_string(), s)
        });
    builder
        .build()
        .unwrap_or_else(|_| unreachable!("the default capacity is not 0"))
}
