//! The two ends of a run: [`PipelineSender`] and [`PipelineStream`].

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use async_channel::{Receiver, Sender, TrySendError};
use futures_core::Stream;
use opentelemetry::Context;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::envelope::{Mode, Ordered, Unordered};
use super::run::RunShared;
use super::{PipelineError, SendError};
use crate::telemetry::Telemetry;
use crate::util::sync::lock;

/// Feeds one run of a [`Pipeline`](super::Pipeline) started with
/// [`Pipeline::start`](super::Pipeline::start). Clone it to feed from several tasks; the
/// run's input ends when every clone is dropped.
///
/// # Examples
/// ```
/// use futures::StreamExt;
/// use otelconc::pipeline::Pipeline;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let p = Pipeline::builder("p")
///     .stage("id", 1, 4, |x: u8| async move { Ok::<_, std::io::Error>(x) })
///     .build()
///     .unwrap();
/// let (tx, out) = p.start();
/// tokio::spawn(async move {
///     for i in 0..3 {
///         tx.send(i).await.unwrap();
///     }
/// });
/// assert_eq!(out.count().await, 3);
/// # }
/// ```
pub struct PipelineSender<In> {
    tx: Tx<In>,
    seq: Arc<AtomicU64>,
    telemetry: Telemetry,
}

/// What crosses a buffer in each output mode.
type UnorderedEnv<T> = <Unordered as Mode>::Env<T>;
type OrderedEnv<T> = <Ordered as Mode>::Env<T>;

enum Tx<In> {
    Unordered(Sender<UnorderedEnv<In>>),
    Ordered(Sender<OrderedEnv<In>>, Arc<Semaphore>),
}

impl<In> Clone for Tx<In> {
    fn clone(&self) -> Self {
        match self {
            Self::Unordered(tx) => Self::Unordered(tx.clone()),
            Self::Ordered(tx, w) => Self::Ordered(tx.clone(), w.clone()),
        }
    }
}

impl<In> Clone for PipelineSender<In> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            seq: self.seq.clone(),
            telemetry: self.telemetry.clone(),
        }
    }
}

impl<In> fmt::Debug for PipelineSender<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineSender")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl<In: Send + 'static> PipelineSender<In> {
    pub(crate) fn unordered(tx: Sender<UnorderedEnv<In>>, telemetry: Telemetry) -> Self {
        Self {
            tx: Tx::Unordered(tx),
            seq: Arc::new(AtomicU64::new(0)),
            telemetry,
        }
    }

    /// `window` is the run's admission semaphore (present in ordered runs).
    pub(crate) fn ordered(
        tx: Sender<OrderedEnv<In>>,
        window: Option<Arc<Semaphore>>,
        telemetry: Telemetry,
    ) -> Self {
        let window = window.unwrap_or_else(|| Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)));
        Self {
            tx: Tx::Ordered(tx, window),
            seq: Arc::new(AtomicU64::new(0)),
            telemetry,
        }
    }

    /// Sends `item` into the pipeline, waiting while the first stage's queue is full (or,
    /// for ordered output, while the pipeline holds as many items as it can).
    ///
    /// The item carries the current context whenever it holds a valid span context,
    /// sampled or not, or baggage ([`propagated_context`]), and every stage runs under
    /// it: a span a stage function starts stays in the sender's trace, and its logs
    /// carry the sender's trace id and baggage. Inside a sampled trace each stage makes
    /// an `otelconc.pipeline.stage` span, the first a child of this context and each
    /// next one a child of the stage before. Outside any, nothing is carried and the
    /// item crosses each buffer bare.
    ///
    /// [`propagated_context`]: crate::telemetry::propagated_context
    ///
    /// # Errors
    /// [`SendError`] with the item when the run has stopped (failed, cancelled, or its
    /// output dropped).
    ///
    /// # Cancel safety
    /// If `send` is used as the event in a [`tokio::select!`] statement and some other
    /// branch completes first, then it is guaranteed that the item was not sent.
    /// **However, in that case, the item is dropped and will be lost.** There is no
    /// `reserve` to send without this risk: send from a task that is not cancelled
    /// (the pipeline's own [`run`](super::Pipeline::run) feeder is one).
    ///
    /// For ordered output a cancelled `send` takes no sequence number, so the output
    /// does not wait for it.
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("id", 1, 4, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap();
    /// let (tx, out) = p.start();
    /// drop(out); // stops the run
    /// tokio::task::yield_now().await;
    /// assert_eq!(tx.send(1).await.unwrap_err().into_inner(), 1);
    /// # }
    /// ```
    pub async fn send(&self, item: In) -> Result<(), SendError<In>> {
        let origin = self.telemetry.capture();
        self.send_from(item, origin).await
    }

    /// As [`send`](Self::send), with the item carrying `cx` (an extracted remote
    /// context, say: see [`telemetry::extract`](crate::telemetry::extract)) instead of
    /// the current context. The stages see it exactly as they would see a local
    /// sender's context: they run inside it when it holds a valid span context (sampled
    /// or not) or baggage, and the first stage's span is its child when it is sampled.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// If `send_with_context` is used as the event in a [`tokio::select!`] statement and
    /// some other branch completes first, then it is guaranteed that the item was not
    /// sent. **However, in that case, the item is dropped and will be lost.**
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("double", 1, 4, |x: u8| async move { Ok::<_, std::io::Error>(x * 2) })
    ///     .build()
    ///     .unwrap();
    /// let (tx, mut out) = p.start();
    /// // Headers of a message from another process (here with no trace in them).
    /// let headers = std::collections::HashMap::<String, String>::new();
    /// let cx = otelconc::telemetry::extract(&headers);
    /// tx.send_with_context(21, &cx).await.unwrap();
    /// drop(tx);
    /// assert_eq!(out.next().await.unwrap().unwrap(), 42);
    /// # }
    /// ```
    pub async fn send_with_context(&self, item: In, cx: &Context) -> Result<(), SendError<In>> {
        let origin = self.telemetry.carried(cx);
        self.send_from(item, origin).await
    }

    async fn send_from(&self, item: In, origin: Option<Context>) -> Result<(), SendError<In>> {
        match &self.tx {
            Tx::Unordered(tx) => {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                send_unordered(tx, &self.telemetry, item, seq, origin.as_ref()).await
            }
            Tx::Ordered(tx, window) => {
                send_ordered(
                    tx,
                    &self.telemetry,
                    window,
                    &self.seq,
                    None,
                    item,
                    origin.as_ref(),
                )
                .await
            }
        }
    }

    /// Sends `item` numbered `seq` (the caller is the only sender: the feeder of
    /// [`Pipeline::run`](super::Pipeline::run)).
    pub(crate) async fn send_with(
        &self,
        item: In,
        seq: u64,
        origin: Option<&Context>,
    ) -> Result<(), SendError<In>> {
        match &self.tx {
            Tx::Unordered(tx) => send_unordered(tx, &self.telemetry, item, seq, origin).await,
            Tx::Ordered(tx, window) => {
                send_ordered(
                    tx,
                    &self.telemetry,
                    window,
                    &self.seq,
                    Some(seq),
                    item,
                    origin,
                )
                .await
            }
        }
    }
}

impl<In> PipelineSender<In> {
    /// Whether the run has stopped taking input.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("id", 1, 4, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap();
    /// let (tx, out) = p.start();
    /// assert!(!tx.is_closed());
    /// out.stop().await;
    /// assert!(tx.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.tx {
            Tx::Unordered(tx) => tx.is_closed(),
            Tx::Ordered(tx, _) => tx.is_closed(),
        }
    }
}

async fn send_unordered<In: Send + 'static>(
    tx: &Sender<UnorderedEnv<In>>,
    telemetry: &Telemetry,
    item: In,
    seq: u64,
    origin: Option<&Context>,
) -> Result<(), SendError<In>> {
    let env = Unordered::item(seq, telemetry.carry(item, origin.cloned()));
    tx.send(env).await.map_err(|e| SendError(e.0.value))
}

/// Takes a permit of the admission window, then numbers and enqueues the item with no
/// await in between, so a cancelled send never leaves a gap the sink would wait on.
/// `seq` is given by a single feeder, else taken from the shared counter.
async fn send_ordered<In: Send + 'static>(
    tx: &Sender<OrderedEnv<In>>,
    telemetry: &Telemetry,
    window: &Semaphore,
    counter: &AtomicU64,
    seq: Option<u64>,
    item: In,
    origin: Option<&Context>,
) -> Result<(), SendError<In>> {
    match window.acquire().await {
        Ok(permit) => permit.forget(),
        Err(_) => return Err(SendError(item)),
    }
    let seq = seq.unwrap_or_else(|| counter.fetch_add(1, Ordering::Relaxed));
    let item = telemetry.carry(item, origin.cloned());
    // The queue holds as many items as the window admits, so it is never full here.
    match tx.try_send((seq, Some(item))) {
        Ok(()) => Ok(()),
        Err(TrySendError::Closed((_, item)) | TrySendError::Full((_, item))) => match item {
            Some(item) => Err(SendError(item.value)),
            None => unreachable!("the sender always sends a value"),
        },
    }
}

enum Slot<T> {
    Empty,
    Skipped,
    Ready(T),
}

/// The sink side of ordered output: puts items back in input order.
struct Reorder<T> {
    next: u64,
    ring: VecDeque<Slot<T>>,
    window: Arc<Semaphore>,
    unreleased: usize,
    batch: usize,
}

impl<T> Reorder<T> {
    fn insert(&mut self, seq: u64, value: Option<T>) {
        let Some(idx) = seq
            .checked_sub(self.next)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return;
        };
        if idx >= self.ring.len() {
            self.ring.resize_with(idx + 1, || Slot::Empty);
        }
        self.ring[idx] = match value {
            Some(v) => Slot::Ready(v),
            None => Slot::Skipped,
        };
    }

    /// The next item in order, if it has arrived: `Some(Some(v))` an item,
    /// `Some(None)` a skipped one.
    fn pop(&mut self) -> Option<Option<T>> {
        if matches!(self.ring.front(), None | Some(Slot::Empty)) {
            return None;
        }
        let slot = self.ring.pop_front()?;
        self.next += 1;
        self.unreleased += 1;
        if self.unreleased >= self.batch {
            self.release();
        }
        match slot {
            Slot::Ready(v) => Some(Some(v)),
            _ => Some(None),
        }
    }

    fn release(&mut self) {
        if self.unreleased > 0 {
            self.window.add_permits(self.unreleased);
            self.unreleased = 0;
        }
    }
}

/// The output of one pipeline run: a stream of each item's result.
///
/// With [`ErrorPolicy::FailFast`](super::ErrorPolicy::FailFast) the first failure is
/// yielded as `Err` and the stream ends (items still in flight are dropped). With
/// [`ErrorPolicy::Skip`](super::ErrorPolicy::Skip) failed items are counted
/// ([`skipped`](Self::skipped)) and never yielded. If the pipeline's cancellation
/// token fires, the stream ends with [`PipelineError::Cancelled`].
///
/// Dropping the stream stops the run: every stage task is aborted (any item in flight
/// is dropped, and its stage span ends with status Unset and
/// `otelconc.outcome = cancelled`). Use
/// [`stop`](Self::stop) to also wait until every task has ended.
///
/// # Examples
/// ```
/// use futures::{StreamExt, stream};
/// use otelconc::pipeline::{ErrorPolicy, Pipeline};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let p = Pipeline::builder("p")
///     .stage("parse", 1, 4, |s: &'static str| async move { s.parse::<u8>() })
///     .on_error(ErrorPolicy::Skip)
///     .build()
///     .unwrap();
/// let mut out = p.run(stream::iter(["1", "x", "3"]));
/// let mut got = Vec::new();
/// while let Some(r) = out.next().await {
///     got.push(r.unwrap());
/// }
/// assert_eq!(got, [1, 3]);
/// assert_eq!(out.skipped(), 1);
/// # }
/// ```
#[must_use = "streams do nothing unless polled; dropping this stops the pipeline run"]
pub struct PipelineStream<Out, E> {
    rx: Rx<Out>,
    run: Arc<RunShared<E>>,
    tracker: TaskTracker,
    done: bool,
}

/// The last stage's output channel, as a run's mode produces it.
pub(crate) enum OutputRx<Out> {
    Unordered(Receiver<UnorderedEnv<Out>>),
    Ordered(Receiver<OrderedEnv<Out>>),
}

enum Rx<Out> {
    Unordered(Pin<Box<Receiver<UnorderedEnv<Out>>>>),
    Ordered(Pin<Box<Receiver<OrderedEnv<Out>>>>, Reorder<Out>),
}

impl<Out, E> fmt::Debug for PipelineStream<Out, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineStream")
            .field("ordered", &matches!(self.rx, Rx::Ordered(..)))
            .field("done", &self.done)
            .field("tasks", &self.tracker.len())
            .finish_non_exhaustive()
    }
}

impl<Out, E> PipelineStream<Out, E> {
    pub(crate) fn new(
        rx: OutputRx<Out>,
        run: Arc<RunShared<E>>,
        tracker: TaskTracker,
        batch: usize,
    ) -> Self {
        let rx = match rx {
            OutputRx::Unordered(rx) => Rx::Unordered(Box::pin(rx)),
            OutputRx::Ordered(rx) => {
                let window = run
                    .window
                    .clone()
                    .unwrap_or_else(|| Arc::new(Semaphore::new(0)));
                Rx::Ordered(
                    Box::pin(rx),
                    Reorder {
                        next: 0,
                        ring: VecDeque::new(),
                        window,
                        unreleased: 0,
                        batch,
                    },
                )
            }
        };
        Self {
            rx,
            run,
            tracker,
            done: false,
        }
    }

    /// How many items failed and were skipped so far
    /// ([`ErrorPolicy::Skip`](super::ErrorPolicy::Skip)).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("id", 1, 4, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap();
    /// let (_tx, out) = p.start();
    /// assert_eq!(out.skipped(), 0);
    /// # }
    /// ```
    pub fn skipped(&self) -> u64 {
        self.run.skipped.load(Ordering::Relaxed)
    }

    /// The tasks of this run (input feeder, stage workers, stop watcher). The tracker is
    /// closed, so its `wait()` resolves once every one of them has ended.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("id", 2, 4, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap();
    /// let (_tx, out) = p.start();
    /// let tasks = out.tasks();
    /// assert_eq!(tasks.len(), 3); // two workers and the watcher
    /// drop(out);
    /// tasks.wait().await;
    /// assert!(tasks.is_empty());
    /// # }
    /// ```
    pub fn tasks(&self) -> TaskTracker {
        self.tracker.clone()
    }

    /// Stops the run (as dropping the stream does) and waits until every one of its
    /// tasks has ended.
    ///
    /// # Cancel safety
    /// This method is cancel safe. The run is stopped at the first poll (or when the
    /// future is dropped unpolled, since the stream goes with it); cancelling the future
    /// only stops the waiting.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("id", 2, 4, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap();
    /// let (_tx, out) = p.start();
    /// let tasks = out.tasks();
    /// out.stop().await;
    /// assert!(tasks.is_empty());
    /// # }
    /// ```
    pub async fn stop(self) {
        let tracker = self.tracker.clone();
        drop(self);
        tracker.wait().await;
    }

    /// Ends the stream: stops the run, lets go of its buffers and drops the items
    /// still in the output buffer (none are yielded after the end).
    fn finish(&mut self) -> Option<Result<Out, PipelineError<E>>> {
        self.done = true;
        self.run.token.cancel();
        self.run.release_probes();
        match &mut self.rx {
            Rx::Unordered(rx) => drain(rx),
            Rx::Ordered(rx, r) => {
                drain(rx);
                r.ring.clear();
            }
        }
        let error = lock(&self.run.error).take();
        match error {
            Some(e) => Some(Err(e)),
            None if self.run.parent.as_ref().is_some_and(|t| t.is_cancelled()) => {
                Some(Err(PipelineError::Cancelled))
            }
            None => None,
        }
    }
}

/// Closes the output buffer, so no worker adds to it, and drops what it holds.
fn drain<T>(rx: &Receiver<T>) {
    rx.close();
    while rx.try_recv().is_ok() {}
}

impl<Out, E> futures_core::FusedStream for PipelineStream<Out, E> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

// Nothing in the stream is ever pinned structurally: the receiver is boxed and the
// reorder buffer holds items by value.
impl<Out, E> Unpin for PipelineStream<Out, E> {}

impl<Out, E> Stream for PipelineStream<Out, E> {
    type Item = Result<Out, PipelineError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            if this.run.failed.load(Ordering::Acquire) {
                return Poll::Ready(this.finish());
            }
            match &mut this.rx {
                Rx::Unordered(rx) => match rx.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => return Poll::Ready(Some(Ok(item.value))),
                    Poll::Ready(None) => return Poll::Ready(this.finish()),
                    Poll::Pending => return Poll::Pending,
                },
                Rx::Ordered(rx, r) => {
                    match r.pop() {
                        Some(Some(v)) => return Poll::Ready(Some(Ok(v))),
                        Some(None) => continue,
                        None => {}
                    }
                    match rx.as_mut().poll_next(cx) {
                        Poll::Ready(Some((seq, item))) => r.insert(seq, item.map(|i| i.value)),
                        Poll::Ready(None) => return Poll::Ready(this.finish()),
                        Poll::Pending => {
                            r.release();
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

impl<Out, E> Drop for PipelineStream<Out, E> {
    fn drop(&mut self) {
        self.run.token.cancel();
    }
}
