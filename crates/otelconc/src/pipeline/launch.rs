//! [`Pipeline`] and the start of its runs: the stage tasks of a run ([`Launch`]), its
//! input feeder and its stop watcher, and the two ends it returns.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use futures_core::Stream;
use futures_util::StreamExt as _;
use opentelemetry::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::PipelineError;
use super::envelope::{Mode, Ordered, Unordered};
use super::output::{OutputRx, PipelineSender, PipelineStream};
use super::run::RunShared;
use super::stage::{Shared, worker};
use crate::telemetry::{EndingSpan, Guarded};

/// The stage name in the [`PipelineError::Panic`] of a run whose input stream panicked
/// (see [`Pipeline::run`]).
///
/// # Examples
/// ```
/// assert_eq!(otelconc::pipeline::INPUT_STAGE, "(input)");
/// ```
pub const INPUT_STAGE: &str = "(input)";

/// Builds the stage tasks of one run: takes the run's input channel, returns its output.
type Connect<M, In, Out, E> = Arc<
    dyn Fn(Receiver<<M as Mode>::Env<In>>, &Launch<E>) -> Receiver<<M as Mode>::Env<Out>>
        + Send
        + Sync,
>;

/// A run whose stage tasks are spawned: its launch state, input and output channels.
type Launched<M, In, Out, E> = (
    Launch<E>,
    Sender<<M as Mode>::Env<In>>,
    Receiver<<M as Mode>::Env<Out>>,
);

/// The stage tasks of both output modes; the mode is picked at `build`.
pub(super) struct Connects<In, Out, E> {
    pub(super) unordered: Connect<Unordered, In, Out, E>,
    pub(super) ordered: Connect<Ordered, In, Out, E>,
}

/// `prev`, then one more stage: its output buffer and its `concurrency` workers.
pub(super) fn connect_stage<M, In, Mid, O, E, F, Fut>(
    prev: Connect<M, In, Mid, E>,
    index: usize,
    concurrency: usize,
    buffer: usize,
    f: Arc<F>,
) -> Connect<M, In, O, E>
where
    M: Mode,
    M::Env<Mid>: Send + 'static,
    M::Env<O>: Send + 'static,
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
        // The items the stage's workers put in `out`, counted for its oldest age.
        let probe = launch.shared.depth_read.then(|| {
            launch
                .run
                .probe(&stage.metrics, &out, buffer)
                .entered
                .clone()
        });
        for _ in 0..concurrency {
            launch.spawn(worker::<M, _, _, _, _, _>(
                input.clone(),
                tx.clone(),
                f.clone(),
                stage.clone(),
                launch.shared.clone(),
                launch.run.clone(),
                probe.clone(),
            ));
        }
        out
    })
}

/// One run being started: where its tasks are spawned and registered.
pub(super) struct Launch<E> {
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
    pub(super) name: Arc<str>,
    pub(super) shared: Arc<Shared>,
    pub(super) connect: Connects<In, Out, E>,
    pub(super) ordered: bool,
    pub(super) input_buffer: usize,
    /// How many items a run holds at most (see the module docs).
    pub(super) window: usize,
    pub(super) token: Option<CancellationToken>,
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
    #[must_use = "dropping the stream stops the run, and dropping the sender ends its input"]
    pub fn start(&self) -> (PipelineSender<In>, PipelineStream<Out, E>) {
        let (launch, sender, out) = self.open();
        (sender, self.finish(launch, out))
    }

    /// Runs the pipeline over `input` and returns its output stream. A task pulls
    /// `input`, under the context current here, and every item carries that context
    /// (see [`PipelineSender::send`] for what is carried).
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
        let origin = self.shared.telemetry.capture();
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

    fn launch<M: Mode>(
        &self,
        connect: &Connect<M, In, Out, E>,
        input_capacity: usize,
    ) -> Launched<M, In, Out, E> {
        let token = match &self.token {
            Some(t) => t.child_token(),
            None => CancellationToken::new(),
        };
        // Ordered input admits at most `window` items at once (one permit each); its
        // queue holds `window` items, so it has room for every admitted one.
        let window = self.ordered.then(|| Arc::new(Semaphore::new(self.window)));
        let run = Arc::new(RunShared::new(token, self.token.clone(), window));
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
        launch.tracker.spawn(run.watch());
        launch.tracker.close();
        let batch = (self.window / 8).max(1);
        PipelineStream::new(out, launch.run, launch.tracker, batch)
    }
}

/// Spawns the task that pulls `input` into the run, under `origin` (the context where
/// the run started, if it is worth carrying). Items are numbered here (one feeder, so
/// a plain counter) and carry `origin`. A panic while pulling `input` fails the run with
/// [`PipelineError::Panic`] for the stage [`INPUT_STAGE`], rather than ending the input
/// early as if it were complete.
fn spawn_feeder<In, S, E>(
    launch: &Launch<E>,
    sender: PipelineSender<In>,
    input: S,
    origin: Option<Context>,
) where
    In: Send + 'static,
    S: Stream<Item = In> + Send + 'static,
    E: Send + 'static,
{
    // The feeder runs under `origin`: the input stream's own logs and spans stay in
    // the trace of the code that started the run.
    let span = EndingSpan::new(None, origin.as_ref());
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
    launch.spawn(async move {
        if let Err(message) = Guarded::new(feed, span).await {
            run.fail(PipelineError::Panic {
                stage: Arc::from(INPUT_STAGE),
                message,
            });
        }
        drop(keep_open);
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use opentelemetry::metrics::noop::NoopMeterProvider;
    use opentelemetry::trace::noop::NoopTracerProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;
    use crate::telemetry::Telemetry;

    /// The buffer probes every stage of `p` holds.
    fn probes_held<In, Out, E>(p: &Pipeline<In, Out, E>) -> Vec<usize> {
        p.shared
            .stages
            .iter()
            .map(|s| s.metrics.probes_held())
            .collect()
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
