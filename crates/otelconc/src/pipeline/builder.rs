//! [`Pipeline`] and its builder.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use futures_core::Stream;
use futures_util::{FutureExt as _, StreamExt as _};
use opentelemetry::context::FutureExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::output::{OutputRx, PipelineSender, PipelineStream};
use super::stage::{
    Carrier, Ordered, Registrations, RunShared, Shared, StageState, Unordered, worker,
};
use super::{BuildError, ErrorPolicy, PipelineError};
use crate::telemetry::Telemetry;

/// Builds the stage tasks of one run: takes the run's input channel, returns its output.
type Connect<C, In, Out, E> = Arc<
    dyn Fn(Receiver<<C as Carrier>::Env<In>>, &Launch<E>) -> Receiver<<C as Carrier>::Env<Out>>
        + Send
        + Sync,
>;

/// A run whose stage tasks are spawned: its launch state, input and output channels.
type Launched<C, In, Out, E> = (
    Launch<E>,
    Sender<<C as Carrier>::Env<In>>,
    Receiver<<C as Carrier>::Env<Out>>,
);

/// The stage tasks of both output modes; the mode is picked at `build`.
struct Connects<In, Out, E> {
    unordered: Connect<Unordered, In, Out, E>,
    ordered: Connect<Ordered, In, Out, E>,
}

/// `prev`, then one more stage.
fn connect_stage<C, In, Mid, O, E, F, Fut>(
    prev: Connect<C, In, Mid, E>,
    index: usize,
    concurrency: usize,
    buffer: usize,
    f: Arc<F>,
) -> Connect<C, In, O, E>
where
    C: Carrier,
    C::Env<Mid>: Send + 'static,
    C::Env<O>: Send + 'static,
    In: Send + 'static,
    Mid: Send + 'static,
    O: Send + 'static,
    E: fmt::Display + Send + 'static,
    F: Fn(Mid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
{
    Arc::new(move |rx, launch: &Launch<E>| {
        let input = prev(rx, launch);
        let (tx, out) = async_channel::bounded(buffer);
        let stage = launch.shared.stages[index].clone();
        if launch.shared.depth_read {
            launch.run.probe(&stage, &out);
        }
        for _ in 0..concurrency {
            launch.spawn(worker::<C, _, _, _, _, _>(
                input.clone(),
                tx.clone(),
                f.clone(),
                stage.clone(),
                launch.shared.clone(),
                launch.run.clone(),
            ));
        }
        out
    })
}

/// One run being started: where its tasks are spawned and registered.
pub(crate) struct Launch<E> {
    shared: Arc<Shared>,
    run: Arc<RunShared<E>>,
    tracker: TaskTracker,
}

impl<E> Launch<E> {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tracker.spawn(task);
        self.run.track(handle.abort_handle());
    }
}

struct StageConfig {
    name: Arc<str>,
    concurrency: usize,
    buffer: usize,
}

/// The stage name in the [`PipelineError::Panic`] of a run whose input stream panicked
/// (see [`Pipeline::run`]).
///
/// # Examples
/// ```
/// assert_eq!(otelconc::pipeline::INPUT_STAGE, "(input)");
/// ```
pub const INPUT_STAGE: &str = "(input)";

/// The default of [`PipelineBuilder::time_every`]: one item in 64 per worker is timed.
///
/// # Examples
/// ```
/// assert_eq!(otelconc::pipeline::DEFAULT_TIME_EVERY, 64);
/// ```
pub const DEFAULT_TIME_EVERY: u32 = 64;

/// Builds a [`Pipeline`]: its stages, ordering, error policy and telemetry.
///
/// Made by [`Pipeline::builder`]. `Out` is the item type the stages so far produce; each
/// [`stage`](PipelineBuilder::stage) may change it.
///
/// # Examples
/// ```
/// use otelconc::pipeline::{ErrorPolicy, Pipeline};
/// let pipeline = Pipeline::builder("numbers")
///     .stage("parse", 2, 64, |s: String| async move { s.parse::<u64>() })
///     .stage("double", 2, 64, |n: u64| async move { Ok(n * 2) })
///     .ordered(true)
///     .on_error(ErrorPolicy::Skip)
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PipelineBuilder<In, Out, E> {
    name: Arc<str>,
    stages: Vec<StageConfig>,
    connect: Connects<In, Out, E>,
    ordered: bool,
    policy: ErrorPolicy,
    telemetry: Option<Telemetry>,
    time_every: u32,
    input_buffer: Option<usize>,
    token: Option<CancellationToken>,
}

impl<In, Out, E> fmt::Debug for PipelineBuilder<In, Out, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("name", &self.name)
            .field("stages", &self.stages.len())
            .field("ordered", &self.ordered)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<In, Out, E> PipelineBuilder<In, Out, E>
where
    In: Send + 'static,
    Out: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Adds a stage named `name` that runs `f` on every item with up to `concurrency`
    /// items at once, and hands results to the next stage through a buffer of `buffer`
    /// items. A stage may change the item type.
    ///
    /// A zero `concurrency` or `buffer` is reported by [`build`](Self::build).
    ///
    /// # Examples
    /// ```
    /// use otelconc::pipeline::Pipeline;
    /// let p = Pipeline::builder("p")
    ///     .stage("len", 4, 128, |s: String| async move { Ok::<_, std::io::Error>(s.len()) })
    ///     .build()
    ///     .unwrap();
    /// # let _ = p;
    /// ```
    pub fn stage<O, F, Fut>(
        self,
        name: impl Into<Arc<str>>,
        concurrency: usize,
        buffer: usize,
        f: F,
    ) -> PipelineBuilder<In, O, E>
    where
        O: Send + 'static,
        F: Fn(Out) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let index = self.stages.len();
        let f = Arc::new(f);
        let connect = Connects {
            unordered: connect_stage::<Unordered, _, _, _, _, _, _>(
                self.connect.unordered,
                index,
                concurrency,
                buffer,
                f.clone(),
            ),
            ordered: connect_stage::<Ordered, _, _, _, _, _, _>(
                self.connect.ordered,
                index,
                concurrency,
                buffer,
                f,
            ),
        };
        let mut stages = self.stages;
        stages.push(StageConfig {
            name: name.into(),
            concurrency,
            buffer,
        });
        PipelineBuilder {
            name: self.name,
            stages,
            connect,
            ordered: self.ordered,
            policy: self.policy,
            telemetry: self.telemetry,
            time_every: self.time_every,
            input_buffer: self.input_buffer,
            token: self.token,
        }
    }

    /// Whether the output keeps input order (default `false`: items come out as they
    /// finish). Ordered output holds early finishers in a reorder buffer at the sink;
    /// it is bounded because the input admits at most as many items as the pipeline
    /// can hold (see the module docs).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// let b = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .ordered(true);
    /// # let _ = b;
    /// ```
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// What a failed item does to the run (default [`ErrorPolicy::FailFast`]).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::{ErrorPolicy, Pipeline};
    /// let b = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .on_error(ErrorPolicy::Skip);
    /// # let _ = b;
    /// ```
    pub fn on_error(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Where instruments and spans go (default [`Telemetry::global`]).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// use otelconc::telemetry::Telemetry;
    /// let b = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .telemetry(Telemetry::global());
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Time one item in `n` per worker for the stage duration histogram (default
    /// [`DEFAULT_TIME_EVERY`]; `1` times every item), when an SDK reads the metrics
    /// (without one, nothing is timed). Items in a sampled trace are always timed.
    /// Zero is reported by [`build`](Self::build).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// let b = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .time_every(1);
    /// # let _ = b;
    /// ```
    pub fn time_every(mut self, n: u32) -> Self {
        self.time_every = n;
        self
    }

    /// The capacity of the queue in front of the first stage (default: the first
    /// stage's `buffer`). Zero is reported by [`build`](Self::build).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// let b = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .input_buffer(8);
    /// # let _ = b;
    /// ```
    pub fn input_buffer(mut self, capacity: usize) -> Self {
        self.input_buffer = Some(capacity);
        self
    }

    /// Stops every run of the pipeline when `token` is cancelled: each run's tasks are
    /// aborted and its output ends with [`PipelineError::Cancelled`](super::PipelineError::Cancelled).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// let token = tokio_util::sync::CancellationToken::new();
    /// let b = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .cancellation_token(token.clone());
    /// # let _ = b;
    /// ```
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Checks the configuration and creates the pipeline's instruments.
    ///
    /// # Errors
    /// [`BuildError`] when there is no stage, or a stage's concurrency or buffer, the
    /// input buffer or [`time_every`](Self::time_every) is zero.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// let err = Pipeline::builder("p")
    ///     .stage("id", 1, 0, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "pipeline \"p\", stage \"id\": buffer must be at least 1");
    /// ```
    pub fn build(self) -> Result<Pipeline<In, Out, E>, BuildError> {
        let fail = |stage: Option<&Arc<str>>, reason| BuildError {
            pipeline: self.name.clone(),
            stage: stage.cloned(),
            reason,
        };
        let Some(first) = self.stages.first() else {
            return Err(fail(None, "a pipeline needs at least one stage"));
        };
        for s in &self.stages {
            if s.concurrency == 0 {
                return Err(fail(Some(&s.name), "concurrency must be at least 1"));
            }
            if s.buffer == 0 {
                return Err(fail(Some(&s.name), "buffer must be at least 1"));
            }
        }
        if self.time_every == 0 {
            return Err(fail(None, "time_every must be at least 1"));
        }
        let input_buffer = self.input_buffer.unwrap_or(first.buffer);
        if input_buffer == 0 {
            return Err(fail(None, "input buffer must be at least 1"));
        }
        let window = self
            .stages
            .iter()
            .fold(input_buffer, |w, s| {
                w.saturating_add(s.concurrency).saturating_add(s.buffer)
            })
            .min(Semaphore::MAX_PERMITS);
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let mut states = Vec::with_capacity(self.stages.len());
        let mut registrations = Vec::with_capacity(self.stages.len());
        for s in &self.stages {
            let (state, reg) = StageState::new(&telemetry, &self.name, &s.name, true);
            states.push(state);
            registrations.push(reg);
        }
        Ok(Pipeline {
            name: self.name,
            shared: Arc::new(Shared {
                telemetry,
                stages: states,
                policy: self.policy,
                time_every: self.time_every,
                timed: registrations.iter().any(Registrations::observed),
                depth_read: registrations.iter().any(Registrations::depth_observed),
                _registrations: registrations,
            }),
            connect: self.connect,
            ordered: self.ordered,
            input_buffer,
            window,
            token: self.token,
        })
    }
}

/// A streaming pipeline of named stages, each with its own concurrency and a bounded
/// buffer to the next; see the [module docs](super) for the whole story.
///
/// Build one with [`Pipeline::builder`], then [`run`](Pipeline::run) it over a stream or
/// [`start`](Pipeline::start) it and feed it through a [`PipelineSender`]. A pipeline can
/// run any number of times, also at once; its instruments are shared by every run.
///
/// # Examples
/// ```
/// use futures::{StreamExt, stream};
/// use otelconc::pipeline::Pipeline;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pipeline = Pipeline::builder("numbers")
///     .stage("parse", 2, 16, |s: &'static str| async move { s.parse::<u64>() })
///     .stage("square", 2, 16, |n: u64| async move { Ok(n * n) })
///     .ordered(true)
///     .build()
///     .unwrap();
/// let out: Vec<u64> = pipeline
///     .run(stream::iter(["1", "2", "3"]))
///     .map(|r| r.unwrap())
///     .collect()
///     .await;
/// assert_eq!(out, [1, 4, 9]);
/// # }
/// ```
pub struct Pipeline<In, Out, E> {
    name: Arc<str>,
    shared: Arc<Shared>,
    connect: Connects<In, Out, E>,
    ordered: bool,
    input_buffer: usize,
    window: usize,
    token: Option<CancellationToken>,
}

impl<In, Out, E> fmt::Debug for Pipeline<In, Out, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("stages", &self.shared.stages.len())
            .field("ordered", &self.ordered)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl<In, E> Pipeline<In, In, E>
where
    In: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// A builder for a pipeline named `name` (the `otelconc.name` of its telemetry).
    ///
    /// # Examples
    /// ```
    /// use otelconc::pipeline::Pipeline;
    /// let p = Pipeline::builder("p")
    ///     .stage("inc", 1, 8, |x: u32| async move { Ok::<_, std::io::Error>(x + 1) })
    ///     .build()
    ///     .unwrap();
    /// # let _ = p;
    /// ```
    pub fn builder(name: impl Into<Arc<str>>) -> PipelineBuilder<In, In, E> {
        PipelineBuilder {
            name: name.into(),
            stages: Vec::new(),
            connect: Connects {
                unordered: Arc::new(|rx, _| rx),
                ordered: Arc::new(|rx, _| rx),
            },
            ordered: false,
            policy: ErrorPolicy::FailFast,
            telemetry: None,
            time_every: DEFAULT_TIME_EVERY,
            input_buffer: None,
            token: None,
        }
    }
}

impl<In, Out, E> Pipeline<In, Out, E>
where
    In: Send + 'static,
    Out: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// The pipeline's name.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Pipeline;
    /// let p = Pipeline::builder("p")
    ///     .stage("id", 1, 1, |x: u8| async move { Ok::<_, std::io::Error>(x) })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(p.name(), "p");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a run fed through the returned [`PipelineSender`]; the run's input ends
    /// when every clone of the sender is dropped. Each item's trace starts from the
    /// context current where it is [sent](PipelineSender::send).
    ///
    /// # Panics
    /// Outside a tokio runtime (the stage tasks are spawned on the current one).
    ///
    /// # Examples
    /// ```
    /// use futures::StreamExt;
    /// use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("inc", 1, 8, |x: u32| async move { Ok::<_, std::io::Error>(x + 1) })
    ///     .build()
    ///     .unwrap();
    /// let (tx, mut out) = p.start();
    /// tx.send(1).await.unwrap();
    /// drop(tx);
    /// assert_eq!(out.next().await.unwrap().unwrap(), 2);
    /// assert!(out.next().await.is_none());
    /// # }
    /// ```
    pub fn start(&self) -> (PipelineSender<In>, PipelineStream<Out, E>) {
        let (launch, sender, out) = self.open();
        (sender, self.finish(launch, out))
    }

    /// Runs the pipeline over `input` and returns its output stream. A task pulls
    /// `input`; every item's trace starts from the context current here (when sampled).
    ///
    /// Nothing is pulled faster than the stages take it: the input waits when the
    /// first stage's queue is full. If polling `input` panics, the run fails with
    /// [`PipelineError::Panic`] for the stage [`INPUT_STAGE`].
    ///
    /// # Panics
    /// Outside a tokio runtime (the stage tasks are spawned on the current one).
    ///
    /// # Examples
    /// ```
    /// use futures::{StreamExt, stream};
    /// use otelconc::pipeline::Pipeline;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let p = Pipeline::builder("p")
    ///     .stage("inc", 2, 8, |x: u32| async move { Ok::<_, std::io::Error>(x + 1) })
    ///     .build()
    ///     .unwrap();
    /// let mut sum = 0;
    /// let mut out = p.run(stream::iter(0..10));
    /// while let Some(r) = out.next().await {
    ///     sum += r.unwrap();
    /// }
    /// assert_eq!(sum, 55);
    /// # }
    /// ```
    pub fn run<S>(&self, input: S) -> PipelineStream<Out, E>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let origin = self.shared.telemetry.span_parent();
        let (launch, sender, out) = self.open();
        spawn_feeder(&launch, sender, input, origin);
        self.finish(launch, out)
    }

    /// Launches a run in the pipeline's mode (ordered or not): its stage tasks, the
    /// sender of its input and the receiver of its output.
    fn open(&self) -> (Launch<E>, PipelineSender<In>, OutputRx<Out>) {
        let telemetry = self.shared.telemetry.clone();
        if self.ordered {
            let (launch, tx, out) = self.launch::<Ordered>(&self.connect.ordered, self.window);
            let sender = PipelineSender::ordered(tx, launch.run.window.clone(), telemetry);
            (launch, sender, OutputRx::Ordered(out))
        } else {
            let (launch, tx, out) =
                self.launch::<Unordered>(&self.connect.unordered, self.input_buffer);
            let sender = PipelineSender::unordered(tx, telemetry);
            (launch, sender, OutputRx::Unordered(out))
        }
    }

    fn launch<C: Carrier>(
        &self,
        connect: &Connect<C, In, Out, E>,
        input_capacity: usize,
    ) -> Launched<C, In, Out, E> {
        let token = match &self.token {
            Some(t) => t.child_token(),
            None => CancellationToken::new(),
        };
        // Ordered input admits at most `window` items at once (one permit each); its
        // queue holds `window` items, so it has room for every admitted one.
        let window = self.ordered.then(|| Arc::new(Semaphore::new(self.window)));
        let run = Arc::new(RunShared {
            token,
            parent: self.token.clone(),
            aborts: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            skipped: AtomicU64::new(0),
            window,
            probes: Mutex::new(Vec::new()),
        });
        let launch = Launch {
            shared: self.shared.clone(),
            run,
            tracker: TaskTracker::new(),
        };
        let (tx, rx) = async_channel::bounded(input_capacity);
        let out = connect(rx, &launch);
        (launch, tx, out)
    }

    fn finish(&self, launch: Launch<E>, out: OutputRx<Out>) -> PipelineStream<Out, E> {
        // The watcher is spawned last, so it sees every other task's abort handle.
        let run = launch.run.clone();
        launch.tracker.spawn(async move {
            run.token.cancelled().await;
            run.stop_all();
        });
        launch.tracker.close();
        let batch = (self.window / 8).max(1);
        PipelineStream::new(out, launch.run, launch.tracker, batch)
    }
}

/// Spawns the task that pulls `input` into the run. Items are numbered here (one
/// feeder, so a plain counter) and carry `origin` as their trace parent. A panic while
/// pulling `input` fails the run with [`PipelineError::Panic`] for the stage
/// [`INPUT_STAGE`], rather than ending the input early as if it were complete.
fn spawn_feeder<In, S, E>(
    launch: &Launch<E>,
    sender: PipelineSender<In>,
    input: S,
    origin: Option<opentelemetry::Context>,
) where
    In: Send + 'static,
    S: Stream<Item = In> + Send + 'static,
    E: Send + 'static,
{
    let with_context = origin.clone();
    // Keeps the input open until a panic is recorded, so the run cannot look complete.
    let keep_open = sender.clone();
    let run = launch.run.clone();
    let feed = async move {
        let mut input = std::pin::pin!(input);
        let mut seq = 0_u64;
        while let Some(item) = input.next().await {
            if sender.send_with(item, seq, origin.as_ref()).await.is_err() {
                break;
            }
            seq += 1;
        }
    };
    let feed = async move {
        if let Err(payload) = AssertUnwindSafe(feed).catch_unwind().await {
            run.fail(PipelineError::Panic {
                stage: Arc::from(INPUT_STAGE),
                message: crate::panic_payload::message(&*payload),
            });
        }
        drop(keep_open);
    };
    match with_context {
        Some(cx) => launch.spawn(feed.with_context(cx)),
        None => launch.spawn(feed),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use opentelemetry::metrics::noop::NoopMeterProvider;
    use opentelemetry::trace::noop::NoopTracerProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    /// The buffer probes every stage of `p` holds.
    fn probes_held<In, Out, E>(p: &Pipeline<In, Out, E>) -> Vec<usize> {
        p.shared.stages.iter().map(|s| s.probes_held()).collect()
    }

    /// Many runs of one pipeline, ending every way a run ends, leave at most one
    /// finished run's probes per stage (pruned when the next run starts) with an SDK
    /// reading the depth and no metrics collected in between, and none without an SDK.
    #[tokio::test]
    async fn finished_runs_leave_no_probes_to_pile_up() {
        let reader = PeriodicReader::builder(InMemoryMetricExporter::default())
            .with_interval(Duration::from_secs(3600))
            .build();
        let sdk = SdkMeterProvider::builder().with_reader(reader).build();
        let tracer = NoopTracerProvider::new();
        for (telemetry, most) in [
            (Telemetry::new(&NoopMeterProvider::new(), &tracer), 0),
            (Telemetry::new(&sdk, &tracer), 1),
        ] {
            let p = Pipeline::builder("runs")
                .stage("a", 2, 2, |n: u64| async move {
                    if n == 7 {
                        return Err(format!("bad item {n}"));
                    }
                    Ok(n)
                })
                .stage("b", 1, 2, |n: u64| async move { Ok::<_, String>(n) })
                .telemetry(telemetry)
                .build()
                .unwrap();
            for i in 0..200 {
                let out = match i % 3 {
                    // Runs to its end.
                    0 => p.run(stream::iter(0..5)),
                    // Fails fast at item 7.
                    1 => p.run(stream::iter(0..20)),
                    // Dropped while it runs.
                    _ => {
                        let out = p.run(stream::iter(10..));
                        tokio::task::yield_now().await;
                        out
                    }
                };
                let tasks = out.tasks();
                if i % 3 == 2 {
                    drop(out);
                } else {
                    let _ = futures_util::StreamExt::collect::<Vec<_>>(out).await;
                }
                tasks.wait().await;
                for n in probes_held(&p) {
                    assert!(n <= most, "run {i}: {n} probes held, at most {most}");
                }
            }
        }
    }
}
