//! One stage: its state ([`StageState`], [`Shared`] for all the stages of a pipeline),
//! the call of the stage function under its span, and the worker loop.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_channel::{Receiver, Sender, TryRecvError};
use futures_util::FutureExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::{Context, KeyValue};
use tokio::time::Instant;

use super::carrier::{Carrier, Opened};
use super::metrics::{FLUSH_EVERY, LocalCounts, Metrics};
use super::run::RunShared;
use super::{ErrorPolicy, PipelineError};
use crate::telemetry::names::pipeline::{ATTR_SEQ, ATTR_STAGE, STAGE_SPAN};
use crate::telemetry::names::{ATTR_NAME, ATTR_QUEUE_WAIT};
use crate::telemetry::{End, EndingSpan, Telemetry};
use crate::util::panic_payload;

/// One stage of a pipeline (or chain): its name, the attributes of its telemetry and
/// its instruments, shared by every run of its pipeline (or every call of its chain).
pub(crate) struct StageState {
    pub(crate) name: Arc<str>,
    pub(crate) name_kv: KeyValue,
    pub(crate) stage_kv: KeyValue,
    pub(crate) metrics: Arc<Metrics>,
}

impl StageState {
    /// The stage `stage` of the pipeline (or chain) `pipeline`, and its instruments;
    /// `depth` registers the buffer depth gauge (pipelines have buffers, chains do not).
    pub(crate) fn new(
        telemetry: &Telemetry,
        pipeline: &Arc<str>,
        stage: &Arc<str>,
        depth: bool,
    ) -> Arc<Self> {
        let name_kv = KeyValue::new(ATTR_NAME, pipeline.clone());
        let stage_kv = KeyValue::new(ATTR_STAGE, stage.clone());
        let metrics = Metrics::new(telemetry, &[name_kv.clone(), stage_kv.clone()], depth);
        Arc::new(Self {
            name: stage.clone(),
            name_kv,
            stage_kv,
            metrics,
        })
    }

    /// Starts this stage's span for one item, as a child of `parent`.
    pub(crate) fn start_span(
        &self,
        telemetry: &Telemetry,
        parent: &Context,
        seq: Option<u64>,
        queue_wait: Option<f64>,
    ) -> Context {
        let mut attrs = Vec::with_capacity(4);
        attrs.push(self.name_kv.clone());
        attrs.push(self.stage_kv.clone());
        if let Some(seq) = seq {
            attrs.push(KeyValue::new(
                ATTR_SEQ,
                i64::try_from(seq).unwrap_or(i64::MAX),
            ));
        }
        if let Some(w) = queue_wait {
            attrs.push(KeyValue::new(ATTR_QUEUE_WAIT, w));
        }
        telemetry.start_span(&STAGE_SPAN, parent, attrs)
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

/// Calls the stage function; a panic (while building or polling its future) becomes
/// [`Failure::Panic`] with the panic message.
pub(crate) async fn call<I, O, E, F, Fut>(f: &F, input: I) -> Result<O, Failure<E>>
where
    F: Fn(I) -> Fut + ?Sized,
    Fut: Future<Output = Result<O, E>>,
{
    match AssertUnwindSafe(async { f(input).await })
        .catch_unwind()
        .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(payload) => Err(Failure::Panic(panic_payload::message(&*payload))),
    }
}

/// A stage span: ends with the item's outcome, or, dropped before that (the run was
/// stopped mid-item), with an error status saying so.
pub(crate) fn stage_span(cx: &Context) -> EndingSpan {
    EndingSpan::new(Some(cx.clone()), None)
}

/// Ends a stage span with the outcome of its call.
pub(crate) fn finish_stage_span<O, E: fmt::Display>(
    mut span: EndingSpan,
    result: &Result<O, Failure<E>>,
) {
    span.finish(match result {
        Ok(_) => End::Ok,
        Err(Failure::Error(e)) => End::error(e),
        Err(Failure::Panic(m)) => End::panic(m.clone()),
    });
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
/// the stage function, and sends results to the stage's output buffer.
pub(crate) async fn worker<C, I, O, E, F, Fut>(
    rx: Receiver<C::Env<I>>,
    tx: Sender<C::Env<O>>,
    f: Arc<F>,
    stage: Arc<StageState>,
    shared: Arc<Shared>,
    run: Arc<RunShared<E>>,
) where
    C: Carrier,
    C::Env<I>: Send,
    C::Env<O>: Send,
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    let mut counts = LocalCounts::new(stage.metrics.clone());
    let every = shared.time_every;
    let mut tick = 0_u32;
    loop {
        let env = match rx.try_recv() {
            Ok(env) => env,
            Err(TryRecvError::Empty) => {
                counts.flush();
                match rx.recv().await {
                    Ok(env) => env,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Closed) => break,
        };
        let Opened { seq, trace, value } = C::open(env);
        let Some(value) = value else {
            // A skipped item's marker (ordered mode): pass it on to the sink.
            if let Some(skip) = C::skipped(seq)
                && tx.send(skip).await.is_err()
            {
                break;
            }
            continue;
        };
        counts.received += 1;
        let (result, trace) = match trace {
            None => {
                // Timed only when an SDK reads the histogram (else it drops the value).
                let timed = shared.timed && {
                    tick += 1;
                    tick >= every
                };
                if timed {
                    tick = 0;
                    let start = Instant::now();
                    let r = call(&*f, value).await;
                    stage.metrics.duration.record(start.elapsed().as_secs_f64());
                    (r, None)
                } else {
                    (call(&*f, value).await, None)
                }
            }
            Some(mut tr) => {
                let wait = tr.enqueued.elapsed().as_secs_f64();
                let cx = stage.start_span(&shared.telemetry, &tr.cx, Some(seq), Some(wait));
                let span = stage_span(&cx);
                let start = Instant::now();
                let r = call(&*f, value).with_context(cx.clone()).await;
                // One clock read ends the stage's time and starts the item's wait for
                // the next stage.
                let end = Instant::now();
                stage.metrics.duration.record((end - start).as_secs_f64());
                finish_stage_span(span, &r);
                tr.cx = cx;
                tr.enqueued = end;
                (r, Some(tr))
            }
        };
        match result {
            Ok(v) => {
                counts.ok += 1;
                match tx.try_send(C::item(seq, trace, v)) {
                    Ok(()) => {}
                    Err(async_channel::TrySendError::Full(out)) => {
                        // About to wait for the next stage: publish the counts first.
                        counts.flush();
                        if tx.send(out).await.is_err() {
                            break;
                        }
                    }
                    Err(async_channel::TrySendError::Closed(_)) => break,
                }
            }
            Err(failure) => {
                match failure {
                    Failure::Error(_) => counts.error += 1,
                    Failure::Panic(_) => counts.panic += 1,
                }
                let error = failure.into_error(&stage.name);
                match shared.policy {
                    ErrorPolicy::FailFast => {
                        counts.flush();
                        run.fail(error);
                        break;
                    }
                    ErrorPolicy::Skip => {
                        run.skipped.fetch_add(1, Ordering::Relaxed);
                        if let Some(skip) = C::skipped(seq)
                            && tx.send(skip).await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
        }
        // `received` counts the items since the last flush (flushing zeroes it).
        if counts.received >= FLUSH_EVERY {
            counts.flush();
        }
    }
}
