//! One stage: its state ([`StageState`], [`Shared`] for all the stages of a pipeline),
//! the call of the stage function under its span, and the worker loop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskCx, Poll, ready};

use async_channel::{Receiver, Sender, TryRecvError, TrySendError};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::envelope::Mode;
use super::metrics::{ERROR, Metrics, OK, PANIC, StageKind, TAKEN, WorkerCounts};
use super::run::RunShared;
use super::{ErrorPolicy, PipelineError};
use crate::telemetry::names::pipeline::{ATTR_SEQ, ATTR_STAGE, STAGE_SPAN};
use crate::telemetry::names::{ATTR_NAME, ATTR_QUEUE_WAIT};
use crate::telemetry::{Carried, End, EndingSpan, Guarded, Telemetry, Trace};
use crate::util::counts::Roster;

/// One stage of a pipeline (or chain): its name, the attributes of its telemetry and
/// its instruments, shared by every run of its pipeline (or every call of its chain).
pub(crate) struct StageState {
    pub(crate) name: Arc<str>,
    pub(crate) name_kv: KeyValue,
    pub(crate) stage_kv: KeyValue,
    pub(crate) metrics: Arc<Metrics>,
}

impl StageState {
    /// The stage `stage` of the pipeline (or chain) `pipeline`, and its instruments.
    pub(crate) fn new(
        telemetry: &Telemetry,
        pipeline: &Arc<str>,
        stage: &Arc<str>,
        kind: StageKind,
    ) -> Arc<Self> {
        let name_kv = KeyValue::new(ATTR_NAME, pipeline.clone());
        let stage_kv = KeyValue::new(ATTR_STAGE, stage.clone());
        let metrics = Metrics::new(telemetry, &[name_kv.clone(), stage_kv.clone()], kind);
        Arc::new(Self {
            name: stage.clone(),
            name_kv,
            stage_kv,
            metrics,
        })
    }

    /// This stage's span for one item that `producer` handed over (the previous
    /// stage's span, or the context where the item entered), by the consumer span
    /// rule: `None` outside a sampled trace. The attributes (and the queue wait since
    /// `enqueued`) are built only for a span that starts.
    pub(crate) fn start_span(
        &self,
        telemetry: &Telemetry,
        producer: Option<&Context>,
        seq: Option<u64>,
        enqueued: Option<Instant>,
    ) -> Option<Context> {
        telemetry.consumer_span_with(&STAGE_SPAN, producer, || {
            let mut attrs = Vec::with_capacity(4);
            attrs.push(self.name_kv.clone());
            attrs.push(self.stage_kv.clone());
            if let Some(seq) = seq {
                attrs.push(KeyValue::new(
                    ATTR_SEQ,
                    i64::try_from(seq).unwrap_or(i64::MAX),
                ));
            }
            if let Some(e) = enqueued {
                attrs.push(KeyValue::new(ATTR_QUEUE_WAIT, e.elapsed().as_secs_f64()));
            }
            attrs
        })
    }
}

/// A failed stage call.
pub(crate) enum Failure<E> {
    Error(E),
    Panic(String),
}

impl<E> Failure<E> {
    /// The run error this failure of `stage` becomes.
    pub(crate) fn into_error(self, stage: &Arc<str>) -> PipelineError<E> {
        let stage = stage.clone();
        match self {
            Self::Error(error) => PipelineError::Stage { stage, error },
            Self::Panic(message) => PipelineError::Panic { stage, message },
        }
    }
}

pin_project! {
    /// One call of the stage function (see [`call`]): a single future over the
    /// [`Guarded`] call, with no `async fn` layer between it and the worker loop.
    pub(crate) struct Call<Fut> {
        #[pin]
        run: Guarded<Fut>,
    }
}

impl<Fut, O, E> Future for Call<Fut>
where
    Fut: Future<Output = Result<O, E>>,
    E: fmt::Display,
{
    type Output = Result<O, Failure<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let mut run = self.project().run;
        let out = ready!(run.as_mut().poll(cx));
        Poll::Ready(settle(out, run.span()))
    }
}

/// Ends `span` with the outcome of a call (built only for a span of its own) and turns
/// the outcome into the stage's result.
#[inline]
fn settle<O, E: fmt::Display>(
    out: Result<Result<O, E>, String>,
    span: &mut EndingSpan,
) -> Result<O, Failure<E>> {
    match out {
        Ok(Ok(v)) => {
            if span.has_span() {
                span.finish(End::Ok);
            }
            Ok(v)
        }
        Ok(Err(e)) => {
            if span.has_span() {
                span.finish(End::error(&e));
            }
            Err(Failure::Error(e))
        }
        Err(message) => {
            if span.has_span() {
                span.finish(End::panic(message.clone()));
            }
            Err(Failure::Panic(message))
        }
    }
}

/// Calls the stage function under `span` (its context current while the call is
/// polled, panics caught: [`Guarded`]) and ends the span with the call's outcome: a
/// returned error with its type as `error.type`, a panic (while building or polling the
/// future) as [`Failure::Panic`] with the panic message and `error.type = panic`.
/// Dropped before it finishes (the run stopped), the span ends as cancelled.
#[inline]
pub(crate) fn call<I, O, E, F, Fut>(
    f: &F,
    input: I,
    span: EndingSpan,
) -> Call<impl Future<Output = Result<O, E>>>
where
    F: Fn(I) -> Fut + ?Sized,
    Fut: Future<Output = Result<O, E>>,
    E: fmt::Display,
{
    Call {
        run: Guarded::new(async move { f(input).await }, span),
    }
}

/// What the stage workers of every run of one pipeline share (not generic).
pub(crate) struct Shared {
    pub(crate) telemetry: Telemetry,
    /// The stages, with their instruments: these live as long as the pipeline or any
    /// of its runs does, so a run that outlives its `Pipeline` value is still reported.
    pub(crate) stages: Vec<Arc<StageState>>,
    pub(crate) policy: ErrorPolicy,
    pub(crate) time_every: u32,
    /// Whether an SDK reads the stages' metrics; if not, no stage call is timed.
    pub(crate) timed: bool,
    /// Whether an SDK reads the stages' buffer depth; if not, runs register no probe.
    pub(crate) depth_read: bool,
}

/// One of a stage's `concurrency` workers: takes items from the stage's input, runs
/// the stage function, and sends results to the stage's output buffer (`probe`, when an
/// SDK reads the buffer's instruments, counts them).
///
/// Its busy time runs from taking an item until it parks on an empty input or a full
/// output buffer (see [`util::busy`](crate::util::busy)): the clock is read at those
/// transitions only, never while it drains a non-empty input into a buffer with room.
pub(crate) async fn worker<M, I, O, E, F, Fut>(
    rx: Receiver<M::Env<I>>,
    tx: Sender<M::Env<O>>,
    f: Arc<F>,
    stage: Arc<StageState>,
    shared: Arc<Shared>,
    run: Arc<RunShared<E>>,
    probe: Option<Arc<Roster<1>>>,
) where
    M: Mode,
    M::Env<I>: Send,
    M::Env<O>: Send,
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    let counts = WorkerCounts::join(stage.metrics.clone(), probe);
    let mut timing = Timing {
        on: shared.timed,
        every: shared.time_every,
        tick: 0,
    };
    loop {
        // `try_recv` first: an item that is already there costs no `Recv` future.
        let env = match rx.try_recv() {
            Ok(env) => env,
            Err(TryRecvError::Empty) => {
                counts.shift.idle();
                match rx.recv().await {
                    Ok(env) => env,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Closed) => break,
        };
        counts.shift.busy();
        let (seq, item) = M::open(env);
        let Some(Carried { value, trace }) = item else {
            // A skipped item's marker (ordered mode): pass it on to the sink.
            if let Some(skip) = M::skipped(seq)
                && !put_marker(&tx, skip, &counts).await
            {
                break;
            }
            continue;
        };
        counts.one(TAKEN);
        let (result, trace) = match trace {
            None => {
                let start = timing.start();
                let r = call(&*f, value, EndingSpan::none()).await;
                timing.stop(&stage, start);
                (r, None)
            }
            Some(tr) => {
                let (r, tr) = carried(&stage, &shared, &mut timing, &*f, value, tr, seq).await;
                (r, Some(tr))
            }
        };
        match result {
            Ok(v) => {
                counts.one(OK);
                // `try_send` first: room in the buffer costs no `Send` future.
                match tx.try_send(M::item(seq, Carried { value: v, trace })) {
                    Ok(()) => {}
                    Err(TrySendError::Full(out)) => {
                        // Blocked by the next stage: not busy.
                        counts.shift.idle();
                        if tx.send(out).await.is_err() {
                            break;
                        }
                    }
                    Err(TrySendError::Closed(_)) => break,
                }
                counts.entered();
            }
            Err(failure) => {
                counts.one(match failure {
                    Failure::Error(_) => ERROR,
                    Failure::Panic(_) => PANIC,
                });
                let error = failure.into_error(&stage.name);
                match shared.policy {
                    ErrorPolicy::FailFast => {
                        run.fail(error);
                        break;
                    }
                    ErrorPolicy::Skip => {
                        run.skipped.fetch_add(1, Ordering::Relaxed);
                        if let Some(skip) = M::skipped(seq)
                            && !put_marker(&tx, skip, &counts).await
                        {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Puts a skipped item's marker in the worker's output buffer as an item goes there:
/// the worker is idle while it waits for room, and the marker counts as entered. Returns
/// `false` once the buffer is closed. (Skips are off the item path, so this is a call
/// of its own.)
async fn put_marker<T>(tx: &Sender<T>, marker: T, counts: &WorkerCounts) -> bool {
    match tx.try_send(marker) {
        Ok(()) => {}
        Err(TrySendError::Full(marker)) => {
            // Blocked by the next stage: not busy.
            counts.shift.idle();
            if tx.send(marker).await.is_err() {
                return false;
            }
        }
        Err(TrySendError::Closed(_)) => return false,
    }
    counts.entered();
    true
}

/// A worker's 1-in-N sample of the items it times for the duration histogram (only
/// when an SDK reads it: else it drops the value): every Nth item the worker takes,
/// traced or not, and no other.
struct Timing {
    on: bool,
    every: u32,
    tick: u32,
}

impl Timing {
    /// The start of a call's time, when the call is in the sample.
    #[inline]
    fn start(&mut self) -> Option<Instant> {
        self.sampled().then(Instant::now)
    }

    /// Counts one item; whether it is in the sample (for an item whose call is timed
    /// anyway, for its span).
    #[inline]
    fn sampled(&mut self) -> bool {
        if !self.on {
            return false;
        }
        self.tick += 1;
        if self.tick < self.every {
            return false;
        }
        self.tick = 0;
        true
    }

    /// Records the time since `start`, if the call was in the sample.
    #[inline]
    fn stop(&self, stage: &StageState, start: Option<Instant>) {
        if let Some(start) = start {
            stage.metrics.duration.record(start.elapsed().as_secs_f64());
        }
    }
}

/// Runs the stage on an item that carries its producer's context `tr`. Inside a sampled
/// trace the stage gets a span (by the consumer span rule), the call is timed (for the
/// span, and for the histogram when the item is in the worker's sample), and the
/// item goes on carrying the span's context, the next stage's producer, and the instant
/// it left. Outside one, the call runs under the carried context (so the stage
/// function's logs, baggage and spans stay in the producer's trace), sampled for timing
/// like an untraced item, and the item goes on carrying the same context.
async fn carried<I, O, E, F, Fut>(
    stage: &StageState,
    shared: &Shared,
    timing: &mut Timing,
    f: &F,
    value: I,
    mut tr: Box<Trace>,
    seq: u64,
) -> (Result<O, Failure<E>>, Box<Trace>)
where
    F: Fn(I) -> Fut + ?Sized,
    Fut: Future<Output = Result<O, E>>,
    E: fmt::Display,
{
    let span = stage.start_span(&shared.telemetry, tr.cx.as_ref(), Some(seq), tr.enqueued);
    let Some(span) = span else {
        let start = timing.start();
        let r = call(f, value, EndingSpan::new(None, tr.cx.as_ref())).await;
        timing.stop(stage, start);
        return (r, tr);
    };
    let next = span.clone();
    let sampled = timing.sampled();
    let start = Instant::now();
    let r = call(f, value, EndingSpan::new(Some(span), None)).await;
    // One clock read ends the stage's time and starts the item's wait for the next
    // stage. Only an item in the sample goes to the histogram (its span has the time
    // anyway), recorded under the item's span so that an SDK that collects exemplars
    // links the point to the trace.
    let end = Instant::now();
    if sampled {
        let _current = next.clone().attach();
        stage.metrics.duration.record((end - start).as_secs_f64());
    }
    tr.cx = Some(next);
    tr.enqueued = Some(end);
    (r, tr)
}
