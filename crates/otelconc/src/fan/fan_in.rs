//! [`FanIn`]: many streams merged into one by a task per input.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::{Context, KeyValue};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::carrier::{Msg, Traced};
use super::error::BuildError;
use crate::channel::Received;
use crate::telemetry::names::{ATTR_NAME, fan as names};
use crate::telemetry::{Carried, Counter, EndingSpan, Guarded, Telemetry, propagated_context};

const DEFAULT_CAPACITY: usize = 32;

type BoxInput<T> = Pin<Box<dyn Stream<Item = Traced<T>> + Send>>;

/// An input as the builder keeps it: its name (`None` when unnamed), its stream, and
/// the context it was added under.
type Input<T> = (Option<Cow<'static, str>>, BoxInput<T>, Option<Context>);

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
    inputs: Vec<Input<T>>,
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

    /// Adds an input labelled `name`: the `otelconc.fan_in.input` attribute of the
    /// merged-items counter and of its items' receive spans, so the counter has one
    /// series per distinct name. Name inputs from a small fixed set (inputs may share a
    /// name), or add them with [`unnamed_input`](Self::unnamed_input), which adds no
    /// attribute. Its items carry the context current at this call when it is worth
    /// carrying (a valid span context, sampled or not, or baggage:
    /// [`propagated_context`]), and the input is polled under it; with nothing to
    /// carry, its items carry nothing.
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::fan::FanIn::builder("x").input("a", futures::stream::iter([1]));
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn input<S>(self, name: impl Into<Cow<'static, str>>, input: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        self.add_input(Some(name.into()), input)
    }

    /// Adds an input with no name: its items are counted and traced without an
    /// `otelconc.fan_in.input` attribute, under the fan-in's name only (what
    /// [`fan_in`] does for every input). Otherwise the same as [`input`](Self::input).
    ///
    /// # Examples
    /// ```
    /// use futures::{StreamExt, stream};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = otelconc::fan::FanIn::builder("shards")
    ///     .unnamed_input(stream::iter([1, 2]))
    ///     .unnamed_input(stream::iter([3]))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(out.count().await, 3);
    /// # }
    /// ```
    #[must_use]
    pub fn unnamed_input<S>(self, input: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        self.add_input(None, input)
    }

    fn add_input<S>(mut self, name: Option<Cow<'static, str>>, input: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let cx = propagated_context();
        let carried = cx.clone();
        let stream = input.map(move |value| Traced {
            value,
            context: carried.clone(),
        });
        self.inputs.push((name, Box::pin(stream), cx));
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
        self.inputs.push((Some(name.into()), Box::pin(input), None));
        self
    }

    /// Starts one merge task per input and returns the merged stream.
    ///
    /// # Errors
    /// [`BuildError::ZeroCapacity`] when the capacity is 0.
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
    pub fn build(self) -> Result<FanIn<T>, BuildError> {
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let name = KeyValue::new(ATTR_NAME, self.name);
        let (tx, rx) = mpsc::channel(self.capacity);
        let mut tasks = JoinSet::new();
        let mut labels = Vec::with_capacity(self.inputs.len());
        for (input, (label, stream, cx)) in self.inputs.into_iter().enumerate() {
            let label = label.map(|l| KeyValue::new(names::ATTR_INPUT, l));
            let mut attrs = vec![name.clone()];
            attrs.extend(label.clone());
            let merged = telemetry.counter(&names::MERGED, &attrs);
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
        // The input is polled under the context of its merge task (see `input`).
        let next = Guarded::new(stream.next(), EndingSpan::none()).await;
        let msg = match next {
            Ok(Some(item)) => Msg::Item(item.into_carried(), input),
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
/// `otelconc.fan_in.items` counts merged items under the fan-in's name. Inputs added
/// with [`FanInBuilder::input`] also carry their name as `otelconc.fan_in.input` (one
/// series per distinct name: the opt-in, for a small fixed set of names); inputs of
/// [`fan_in`] and [`FanInBuilder::unnamed_input`] carry none, so fanning in thousands of
/// streams adds no series.
///
/// Each item comes out as a [`Received`] with the context to process it under. An item
/// that carries its producer's context (see [`Traced`] and [`FanInBuilder::input`])
/// gets an `otelconc.fan_in.receive` span when received inside a sampled trace, by the
/// consumer rule: a child of the consumer's own sampled span when there is one, else of
/// the producer's context, linked to the producer either way; the span ends when the
/// `Received` is dropped. Outside a sampled trace no span is built and
/// [`Received::context`] is the producer's own context (unsampled, or baggage only), so
/// work run under it stays in the producer's trace. An item from an input with no
/// context carries nothing and gets no span. See
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
#[must_use = "dropping a `FanIn` aborts its merge tasks"]
pub struct FanIn<T> {
    rx: mpsc::Receiver<Msg<T>>,
    tasks: JoinSet<()>,
    telemetry: Telemetry,
    name: KeyValue,
    /// Each input's `otelconc.fan_in.input` attribute, `None` when unnamed.
    labels: Vec<Option<KeyValue>>,
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
    /// This method is cancel safe. If `shutdown` is used as a branch in
    /// [`tokio::select!`] and another branch completes first, the merge tasks are
    /// aborted all the same (the `FanIn` is dropped); only the wait until they are gone
    /// is cut short.
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

    /// The receive span of an item from `input`, by the consumer span rule; the
    /// attributes are built only for a span that starts.
    fn receive(&self, input: usize, producer: &Context) -> Option<Context> {
        self.telemetry
            .consumer_span_with(&names::RECEIVE, Some(producer), || {
                let mut attrs = vec![self.name.clone()];
                attrs.extend(self.labels.get(input).cloned().flatten());
                attrs
            })
    }
}

impl<T: Send + 'static> Stream for FanIn<T> {
    type Item = Received<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Option<Received<T>>> {
        let this = self.get_mut();
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Item(Carried { value, trace }, input))) => {
                let producer = trace.and_then(|t| t.cx);
                let span = producer.as_ref().and_then(|p| this.receive(input, p));
                let span = EndingSpan::new(span, producer.as_ref());
                Poll::Ready(Some(Received::new(value, span, producer, None, input)))
            }
            Poll::Ready(Some(Msg::Panicked { input, message })) => {
                panic!("fan_in input {input} panicked: {message}")
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Merges `inputs` into one stream, one task per input: the seed's `FanIn`. Same as
/// [`FanIn::builder`]`("fan_in")` with each input added by
/// [`unnamed_input`](FanInBuilder::unnamed_input) and the default capacity (32): its
/// metrics and spans carry no per-input attribute, however many inputs there are (name
/// them with [`FanInBuilder::input`] to count by input).
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
        .fold(FanIn::builder("fan_in"), FanInBuilder::unnamed_input);
    builder
        .build()
        .unwrap_or_else(|_| unreachable!("the default capacity is not 0"))
}
