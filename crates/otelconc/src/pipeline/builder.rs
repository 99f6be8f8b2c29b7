//! [`PipelineBuilder`]: a pipeline's stages, ordering, error policy and telemetry,
//! checked by [`build`](PipelineBuilder::build).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::envelope::{Ordered, Unordered};
use super::launch::{Connects, Pipeline, connect_stage};
use super::metrics::StageKind;
use super::stage::{Shared, StageState};
use super::{BuildError, ErrorPolicy};
use crate::telemetry::Telemetry;

struct StageConfig {
    name: Arc<str>,
    concurrency: usize,
    buffer: usize,
}

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
    /// [`DEFAULT_TIME_EVERY`]; `1` times every item): every `n`th item each worker
    /// takes, when an SDK reads the metrics (without one, nothing is timed). Items in a
    /// sampled trace are not added beyond the sample: their span has their time.
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
        let stages: Vec<_> = self
            .stages
            .iter()
            .map(|s| StageState::new(&telemetry, &self.name, &s.name, StageKind::Pipeline))
            .collect();
        Ok(Pipeline {
            name: self.name,
            shared: Arc::new(Shared {
                telemetry,
                policy: self.policy,
                time_every: self.time_every,
                timed: stages.iter().any(|s| s.metrics.observed()),
                depth_read: stages.iter().any(|s| s.metrics.depth_observed()),
                stages,
            }),
            connect: self.connect,
            ordered: self.ordered,
            input_buffer,
            window,
            token: self.token,
        })
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
