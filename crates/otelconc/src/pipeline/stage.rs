//! One stage: its metrics, the envelope items travel in, and the worker loop.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use async_channel::{Receiver, Sender, TryRecvError};
use futures_util::FutureExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::{Context, KeyValue};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::{ErrorPolicy, PipelineError};
use crate::panic_payload;
use crate::sync::lock;
use crate::telemetry::names::pipeline::{
    ATTR_SEQ, ATTR_STAGE, BUFFER_DEPTH, DURATION, PROCESSED, RECEIVED, STAGE_SPAN,
};
use crate::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_QUEUE_WAIT};
use crate::telemetry::{EndingSpan, Histogram, Observation, Telemetry};

/// How many items a worker counts locally before it adds them to the stage's atomics
/// (it also adds them whenever it is about to wait for input, and when it stops).
const FLUSH_EVERY: u64 = 64;

/// The trace an item carries: the context its next span is a child of, when it was
/// put in the queue the next stage reads, and its sequence number. Present only for
/// items in a sampled trace.
pub(crate) struct ItemTrace {
    pub(crate) cx: Context,
    pub(crate) enqueued: Instant,
    pub(crate) seq: u64,
}

/// An item taken out of its carrier. `value: None` is a skipped item's marker
/// (ordered mode only), which the sink needs to move past `seq`.
pub(crate) struct Opened<T> {
    pub(crate) seq: u64,
    pub(crate) trace: Option<Box<ItemTrace>>,
    pub(crate) value: Option<T>,
}

/// How items travel between stages. Each output mode has its own carrier so that
/// unordered items carry no sequence number and no skip marker: what crosses a
/// channel is kept as small as the mode allows (for `u64` items, 16 bytes unordered
/// against 8 for the bare value), because every byte of a queue slot is memory
/// traffic between the cores running neighbouring stages.
pub(crate) trait Carrier: Send + Sync + 'static {
    /// What crosses a channel.
    type Env<T>;
    /// Wraps an item.
    fn item<T: Send + 'static>(seq: u64, trace: Option<Box<ItemTrace>>, value: T) -> Self::Env<T>;
    /// The marker of a skipped item, for modes that need one.
    fn skipped<T: Send + 'static>(seq: u64) -> Option<Self::Env<T>>;
    /// Unwraps an item.
    fn open<T: Send + 'static>(env: Self::Env<T>) -> Opened<T>;
}

/// The carrier of unordered runs: the value, and its trace when sampled (which holds
/// the sequence number for the span).
pub(crate) struct Unordered;

/// An unordered item.
pub(crate) struct UnorderedEnv<T> {
    pub(crate) trace: Option<Box<ItemTrace>>,
    pub(crate) value: T,
}

impl Carrier for Unordered {
    type Env<T> = UnorderedEnv<T>;

    #[inline]
    fn item<T: Send + 'static>(
        seq: u64,
        mut trace: Option<Box<ItemTrace>>,
        value: T,
    ) -> Self::Env<T> {
        if let Some(t) = &mut trace {
            t.seq = seq;
        }
        UnorderedEnv { trace, value }
    }

    #[inline]
    fn skipped<T: Send + 'static>(_seq: u64) -> Option<Self::Env<T>> {
        None
    }

    #[inline]
    fn open<T: Send + 'static>(env: Self::Env<T>) -> Opened<T> {
        Opened {
            seq: env.trace.as_ref().map_or(0, |t| t.seq),
            trace: env.trace,
            value: Some(env.value),
        }
    }
}

/// The carrier of ordered runs: every item has its sequence number, and skipped items
/// travel on as markers.
pub(crate) struct Ordered;

/// An ordered item, or (`value: None`) a skipped item's marker.
pub(crate) struct OrderedEnv<T> {
    pub(crate) seq: u64,
    pub(crate) trace: Option<Box<ItemTrace>>,
    pub(crate) value: Option<T>,
}

impl Carrier for Ordered {
    type Env<T> = OrderedEnv<T>;

    #[inline]
    fn item<T: Send + 'static>(seq: u64, trace: Option<Box<ItemTrace>>, value: T) -> Self::Env<T> {
        OrderedEnv {
            seq,
            trace,
            value: Some(value),
        }
    }

    #[inline]
    fn skipped<T: Send + 'static>(seq: u64) -> Option<Self::Env<T>> {
        Some(OrderedEnv {
            seq,
            trace: None,
            value: None,
        })
    }

    #[inline]
    fn open<T: Send + 'static>(env: Self::Env<T>) -> Opened<T> {
        Opened {
            seq: env.seq,
            trace: env.trace,
            value: env.value,
        }
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

/// What the buffer depth gauge reads of one run's stage buffer: how many items wait
/// in it, `None` once the channel is closed.
pub(crate) trait BufferDepth: Send + Sync {
    fn depth(&self) -> Option<usize>;
}

impl<T: Send> BufferDepth for async_channel::WeakReceiver<T> {
    fn depth(&self) -> Option<usize> {
        self.upgrade().map(|r| r.len())
    }
}

/// A run's buffer as its stage sees it. The run holds the only strong reference (see
/// [`RunShared::probes`]): a `WeakReceiver` keeps its channel, and every item in it,
/// alive, so the stage must not hold one past its run.
type Probe = Weak<dyn BufferDepth>;

/// Reads one outcome's counter of a stage.
type OutcomeField = fn(&StageState) -> &AtomicU64;

/// One stage's counters, histogram and buffer probes, shared by every run of its
/// pipeline (or every call of its chain).
pub(crate) struct StageState {
    pub(crate) name: Arc<str>,
    pub(crate) name_kv: KeyValue,
    pub(crate) stage_kv: KeyValue,
    pub(crate) received: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) error: AtomicU64,
    pub(crate) panic: AtomicU64,
    pub(crate) duration: Histogram,
    probes: Mutex<Vec<Probe>>,
}

/// One stage's part in its observable instruments (their sources hold only a `Weak` of
/// the stage). Kept in the state every run shares: once the pipeline and its runs are
/// gone, dropping them takes the stage out of its instruments.
pub(crate) struct Registrations {
    _counters: Vec<Observation>,
    _depth: Option<Observation>,
}

impl Registrations {
    /// Whether an SDK reads the stage's metrics (a no-op meter drops them at once).
    pub(crate) fn observed(&self) -> bool {
        self._counters.iter().any(Observation::observed)
    }

    /// Whether an SDK reads the stage's buffer depth gauge.
    pub(crate) fn depth_observed(&self) -> bool {
        self._depth.as_ref().is_some_and(Observation::observed)
    }
}

impl fmt::Debug for Registrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Registrations")
    }
}

impl StageState {
    /// The stage state and its observable instruments; `depth` registers the buffer
    /// depth gauge (pipelines have buffers, chains do not).
    pub(crate) fn new(
        telemetry: &Telemetry,
        pipeline: &Arc<str>,
        stage: &Arc<str>,
        depth: bool,
    ) -> (Arc<Self>, Registrations) {
        let name_kv = KeyValue::new(ATTR_NAME, pipeline.clone());
        let stage_kv = KeyValue::new(ATTR_STAGE, stage.clone());
        let attrs = vec![name_kv.clone(), stage_kv.clone()];
        let state = Arc::new(Self {
            name: stage.clone(),
            name_kv,
            stage_kv,
            received: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            error: AtomicU64::new(0),
            panic: AtomicU64::new(0),
            duration: telemetry.histogram(&DURATION, &attrs),
            probes: Mutex::new(Vec::new()),
        });
        let mut counters = Vec::with_capacity(4);
        let w = Arc::downgrade(&state);
        counters.push(
            telemetry.observable_counter(&RECEIVED, attrs.clone(), move || {
                w.upgrade().map(|s| s.received.load(Ordering::Relaxed))
            }),
        );
        let outcomes: [(&'static str, OutcomeField); 3] = [
            ("ok", |s| &s.ok),
            ("error", |s| &s.error),
            ("panic", |s| &s.panic),
        ];
        for (outcome, field) in outcomes {
            let w: Weak<Self> = Arc::downgrade(&state);
            let mut a = attrs.clone();
            a.push(KeyValue::new(ATTR_OUTCOME, outcome));
            counters.push(telemetry.observable_counter(&PROCESSED, a, move || {
                w.upgrade().map(|s| field(&s).load(Ordering::Relaxed))
            }));
        }
        let depth = depth.then(|| {
            let w = Arc::downgrade(&state);
            telemetry.observable_gauge(&BUFFER_DEPTH, attrs, move || {
                let s = w.upgrade()?;
                let live = s.live_probes();
                let total: usize = live.iter().filter_map(|p| p.depth()).sum();
                Some(i64::try_from(total).unwrap_or(i64::MAX))
            })
        });
        (
            state,
            Registrations {
                _counters: counters,
                _depth: depth,
            },
        )
    }

    /// Reports the depth of a run's output buffer while the run holds `probe`. The
    /// probes of runs that let go of theirs are pruned here and at every reading, so
    /// the list never holds more probes than there were runs alive at once.
    pub(crate) fn add_probe(&self, probe: Probe) {
        let mut probes = lock(&self.probes);
        probes.retain(|p| p.strong_count() > 0);
        probes.push(probe);
    }

    /// The probes of the runs still alive (the others are pruned). They are read, and
    /// dropped, after the lock is released: if a run ended meanwhile, the last
    /// reference to its buffer goes here, and with it the items still in it.
    fn live_probes(&self) -> Vec<Arc<dyn BufferDepth>> {
        let mut live = Vec::new();
        lock(&self.probes).retain(|p| match p.upgrade() {
            Some(p) => {
                live.push(p);
                true
            }
            None => false,
        });
        live
    }

    /// How many buffer probes the stage holds, live or not yet pruned.
    #[cfg(test)]
    pub(crate) fn probes_held(&self) -> usize {
        lock(&self.probes).len()
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

/// A stage span: ends with the item's outcome, or, dropped before that (the run was
/// stopped mid-item), with an error status saying so.
pub(crate) fn stage_span(cx: &Context) -> EndingSpan {
    EndingSpan::new(
        Some(cx.clone()),
        "the pipeline stopped while this stage ran",
    )
}

/// Ends a stage span with the outcome of its call.
pub(crate) fn finish_stage_span<O, E: fmt::Display>(
    mut span: EndingSpan,
    result: &Result<O, Failure<E>>,
) {
    span.finish(match result {
        Ok(_) => None,
        Err(Failure::Error(e)) => Some(("error", e.to_string().into())),
        Err(Failure::Panic(m)) => Some(("panic", m.clone().into())),
    });
}

/// Counts kept on the worker's stack and added to the stage's atomics in batches, so
/// the per-item cost is a few plain additions instead of contended atomic operations.
struct LocalCounts {
    stage: Arc<StageState>,
    received: u64,
    ok: u64,
    error: u64,
    panic: u64,
}

impl LocalCounts {
    fn flush(&mut self) {
        for (n, a) in [
            (&mut self.received, &self.stage.received),
            (&mut self.ok, &self.stage.ok),
            (&mut self.error, &self.stage.error),
            (&mut self.panic, &self.stage.panic),
        ] {
            if *n > 0 {
                a.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
    }
}

impl Drop for LocalCounts {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What every run of one pipeline shares (not generic).
pub(crate) struct Shared {
    pub(crate) telemetry: Telemetry,
    pub(crate) stages: Vec<Arc<StageState>>,
    pub(crate) policy: ErrorPolicy,
    pub(crate) time_every: u32,
    /// Whether an SDK reads the stages' metrics; if not, no stage call is timed.
    pub(crate) timed: bool,
    /// Whether an SDK reads the stages' buffer depth; if not, runs register no probe.
    pub(crate) depth_read: bool,
    /// The stages' part in their observable instruments: as long as the stages live,
    /// runs included, so a run that outlives its `Pipeline` value is still reported.
    pub(crate) _registrations: Vec<Registrations>,
}

/// The state of one run.
pub(crate) struct RunShared<E> {
    pub(crate) token: CancellationToken,
    pub(crate) parent: Option<CancellationToken>,
    pub(crate) aborts: Mutex<Vec<AbortHandle>>,
    pub(crate) failed: AtomicBool,
    pub(crate) error: Mutex<Option<PipelineError<E>>>,
    pub(crate) skipped: AtomicU64,
    pub(crate) window: Option<Arc<Semaphore>>,
    /// The probes of the run's stage buffers (only when an SDK reads their depth); the
    /// stages hold them weakly. The run lets go of them when it stops (in
    /// [`stop_all`](Self::stop_all), and when its stream ends), so once its tasks have
    /// stopped nothing is left holding a buffer or the items still in it, whoever
    /// still holds the `Pipeline`, the stream or this state.
    pub(crate) probes: Mutex<Vec<Arc<dyn BufferDepth>>>,
}

impl<E> RunShared<E> {
    /// Records the run's first failure and stops the run.
    pub(crate) fn fail(&self, error: PipelineError<E>) {
        {
            let mut slot = lock(&self.error);
            if slot.is_none() {
                *slot = Some(error);
                self.failed.store(true, Ordering::Release);
            }
        }
        self.token.cancel();
    }

    /// Aborts every task of the run, refuses new input and lets go of the run's
    /// buffers (so they go with the aborted tasks, even while the stream is kept).
    pub(crate) fn stop_all(&self) {
        let handles = std::mem::take(&mut *lock(&self.aborts));
        for h in handles {
            h.abort();
        }
        if let Some(w) = &self.window {
            w.close();
        }
        self.release_probes();
    }

    pub(crate) fn track(&self, h: AbortHandle) {
        lock(&self.aborts).push(h);
    }

    /// Has `stage` report the depth of the buffer `rx` reads, while this run holds it.
    pub(crate) fn probe<T: Send + 'static>(&self, stage: &StageState, rx: &Receiver<T>) {
        let probe: Arc<dyn BufferDepth> = Arc::new(rx.downgrade());
        stage.add_probe(Arc::downgrade(&probe));
        lock(&self.probes).push(probe);
    }

    /// Lets go of the run's buffers: they stop being reported, and each is freed (with
    /// the items still in it) as soon as the run's tasks have let go of it too.
    pub(crate) fn release_probes(&self) {
        let probes = std::mem::take(&mut *lock(&self.probes));
        drop(probes);
    }
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
    let mut counts = LocalCounts {
        stage: stage.clone(),
        received: 0,
        ok: 0,
        error: 0,
        panic: 0,
    };
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
                    stage.duration.record(start.elapsed().as_secs_f64());
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
                stage.duration.record((end - start).as_secs_f64());
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
