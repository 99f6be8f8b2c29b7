//! The seed's simple forms: [`Chain`] (a sequential `T -> T` stage chain) and
//! [`Parallel`] (several chains over one input).

use futures_util::future::{BoxFuture, join_all};
use opentelemetry::context::FutureExt as _;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;

use super::metrics::{ERROR, OK, PANIC, StageKind, TAKEN};
use super::stage::{Failure, StageState, call};
use super::{BuildError, PipelineError};
use crate::telemetry::{EndingSpan, Telemetry};

type StageFn<T, E> = Box<dyn Fn(T) -> BoxFuture<'static, Result<T, E>> + Send + Sync>;

/// Builds a [`Chain`].
///
/// # Examples
/// ```
/// use otelconc::pipeline::Chain;
/// let chain = Chain::builder("normalize")
///     .stage("trim", |s: String| async move { Ok::<_, std::io::Error>(s.trim().to_owned()) })
///     .stage("lower", |s: String| async move { Ok(s.to_lowercase()) })
///     .build()
///     .unwrap();
/// # let _ = chain;
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ChainBuilder<T, E> {
    name: Arc<str>,
    stages: Vec<(Arc<str>, StageFn<T, E>)>,
    telemetry: Option<Telemetry>,
}

impl<T, E> fmt::Debug for ChainBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainBuilder")
            .field("name", &self.name)
            .field("stages", &self.stages.len())
            .finish_non_exhaustive()
    }
}

impl<T, E> ChainBuilder<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Appends a stage named `name` that runs `f`.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Chain;
    /// let b = Chain::builder("c").stage("inc", |x: u32| async move { Ok::<_, std::io::Error>(x + 1) });
    /// # let _ = b;
    /// ```
    pub fn stage<F, Fut>(mut self, name: impl Into<Arc<str>>, f: F) -> Self
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let f: StageFn<T, E> = Box::new(move |x| Box::pin(f(x)));
        self.stages.push((name.into(), f));
        self
    }

    /// Where instruments and spans go (default [`Telemetry::global`]).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Chain;
    /// let b = Chain::builder("c")
    ///     .stage("inc", |x: u32| async move { Ok::<_, std::io::Error>(x + 1) })
    ///     .telemetry(otelconc::telemetry::Telemetry::global());
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Creates the chain's instruments.
    ///
    /// # Errors
    /// [`BuildError`] when the chain has no stage.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Chain;
    /// let err = Chain::<u32, std::io::Error>::builder("c").build().unwrap_err();
    /// assert_eq!(err.reason(), "a chain needs at least one stage");
    /// ```
    pub fn build(self) -> Result<Chain<T, E>, BuildError> {
        if self.stages.is_empty() {
            return Err(BuildError {
                pipeline: self.name,
                stage: None,
                reason: "a chain needs at least one stage",
            });
        }
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let stages: Vec<_> = self
            .stages
            .into_iter()
            .map(|(name, f)| {
                let stage = StageState::new(&telemetry, &self.name, &name, StageKind::Chain);
                (stage, f)
            })
            .collect();
        Ok(Chain {
            name: self.name,
            timed: stages.iter().any(|(s, _)| s.metrics.observed()),
            stages,
            telemetry,
        })
    }
}

/// A sequential chain of `T -> T` stages: [`execute`](Chain::execute) runs one input
/// through every stage in turn, on the calling task. The seed's `Pipeline`.
///
/// Use it for a fixed sequence of steps on one value; use [`Pipeline`](super::Pipeline)
/// for a stream of items. Each stage call is timed into
/// `otelconc.pipeline.stage.duration` and counted like a pipeline stage's, and runs
/// under the caller's context. Inside a sampled trace each stage gets a span by the
/// consumer rule: the stages run on the caller's task, so each span is a child of the
/// caller's span and links to the span of the stage before (the first, to the
/// caller's).
///
/// # Examples
/// ```
/// use otelconc::pipeline::Chain;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let chain = Chain::builder("normalize")
///     .stage("trim", |s: String| async move { Ok::<_, std::io::Error>(s.trim().to_owned()) })
///     .stage("lower", |s: String| async move { Ok(s.to_lowercase()) })
///     .build()
///     .unwrap();
/// assert_eq!(chain.execute("  Hello ".into()).await.unwrap(), "hello");
/// # }
/// ```
pub struct Chain<T, E> {
    name: Arc<str>,
    stages: Vec<(Arc<StageState>, StageFn<T, E>)>,
    telemetry: Telemetry,
    /// Whether an SDK reads the stages' metrics; if not, no stage call is timed.
    timed: bool,
}

impl<T, E> fmt::Debug for Chain<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("name", &self.name)
            .field("stages", &self.stages.len())
            .finish_non_exhaustive()
    }
}

impl<T, E> Chain<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// A builder for a chain named `name`.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Chain;
    /// let c = Chain::builder("c")
    ///     .stage("inc", |x: u32| async move { Ok::<_, std::io::Error>(x + 1) })
    ///     .build()
    ///     .unwrap();
    /// # let _ = c;
    /// ```
    pub fn builder(name: impl Into<Arc<str>>) -> ChainBuilder<T, E> {
        ChainBuilder {
            name: name.into(),
            stages: Vec::new(),
            telemetry: None,
        }
    }

    /// The chain's name.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::Chain;
    /// let c = Chain::builder("c")
    ///     .stage("inc", |x: u32| async move { Ok::<_, std::io::Error>(x + 1) })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.name(), "c");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `input` through every stage in order and returns the last stage's output.
    ///
    /// # Errors
    /// The first stage failure: [`PipelineError::Stage`] for an error the stage returned,
    /// [`PipelineError::Panic`] (with the panic message) for a stage that panicked. The
    /// stages after it do not run.
    ///
    /// # Cancel safety
    /// If `execute` is used as the event in a [`tokio::select!`] statement and some
    /// other branch completes first, then the chain stops at the stage it was in (that
    /// stage's span ends with status Unset and `otelconc.outcome = cancelled`). **However, in that case, the
    /// input (or what the stages so far made of it) is dropped and will be lost.**
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::{Chain, PipelineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let c = Chain::builder("c")
    ///     .stage("check", |x: u32| async move { if x > 9 { Err("too big") } else { Ok(x) } })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.execute(3).await.unwrap(), 3);
    /// assert_eq!(c.execute(12).await.unwrap_err().stage(), Some("check"));
    /// # }
    /// ```
    pub async fn execute(&self, input: T) -> Result<T, PipelineError<E>> {
        // The first stage's producer is the caller; each next one's, the stage before.
        let mut producer = self.telemetry.capture();
        let mut value = input;
        for (stage, f) in &self.stages {
            let counts = &stage.metrics;
            counts.count_call(TAKEN);
            let span = stage.start_span(&self.telemetry, producer.as_ref(), None, None);
            let next = span.clone();
            let start = self.timed.then(Instant::now);
            let result = call(&**f, value, EndingSpan::new(span, producer.as_ref())).await;
            if let Some(start) = start {
                // Under the stage's span, if any: exemplar-ready.
                let _current = next.clone().map(opentelemetry::Context::attach);
                stage.metrics.duration.record(start.elapsed().as_secs_f64());
            }
            if next.is_some() {
                producer = next;
            }
            match result {
                Ok(v) => {
                    counts.count_call(OK);
                    value = v;
                }
                Err(failure) => {
                    counts.count_call(match failure {
                        Failure::Error(_) => ERROR,
                        Failure::Panic(_) => PANIC,
                    });
                    return Err(failure.into_error(&stage.name));
                }
            }
        }
        Ok(value)
    }
}

/// Several [`Chain`]s over one input: [`execute`](Parallel::execute) runs them all at
/// once and returns every chain's result, successes and failures alike (the seed kept
/// only the first error).
///
/// The chains run concurrently on the calling task (like `join_all`): nothing is
/// spawned, so nothing outlives the call. For CPU-heavy stages, move the work to
/// `spawn_blocking` inside the stage.
///
/// # Examples
/// ```
/// use otelconc::pipeline::{Chain, Parallel};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let double = Chain::builder("double")
///     .stage("x2", |x: u32| async move { Ok::<_, String>(x * 2) })
///     .build()
///     .unwrap();
/// let fail = Chain::builder("fail")
///     .stage("no", |_x: u32| async move { Err::<u32, _>("nope".to_owned()) })
///     .build()
///     .unwrap();
/// let all = Parallel::new("both").chain(double).chain(fail);
/// let results = all.execute(21).await;
/// assert_eq!(results[0].as_ref().unwrap(), &42);
/// assert_eq!(results[1].as_ref().unwrap_err().stage(), Some("no"));
/// # }
/// ```
pub struct Parallel<T, E> {
    name: Arc<str>,
    chains: Vec<Chain<T, E>>,
}

impl<T, E> fmt::Debug for Parallel<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parallel")
            .field("name", &self.name)
            .field("chains", &self.chains)
            .finish()
    }
}

impl<T, E> Parallel<T, E>
where
    T: Clone + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// An empty set of chains named `name`.
    ///
    /// # Examples
    /// ```
    /// let p = otelconc::pipeline::Parallel::<u32, String>::new("p");
    /// assert_eq!(p.len(), 0);
    /// ```
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            chains: Vec::new(),
        }
    }

    /// Adds a chain; results come back in the order chains were added.
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::{Chain, Parallel};
    /// let c = Chain::builder("c")
    ///     .stage("id", |x: u32| async move { Ok::<_, String>(x) })
    ///     .build()
    ///     .unwrap();
    /// let p = Parallel::new("p").chain(c);
    /// assert_eq!(p.len(), 1);
    /// ```
    #[must_use]
    pub fn chain(mut self, chain: Chain<T, E>) -> Self {
        self.chains.push(chain);
        self
    }

    /// How many chains there are.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::pipeline::Parallel::<u8, String>::new("p").is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// Whether there is no chain.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::pipeline::Parallel::<u8, String>::new("p").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// Runs a clone of `input` through every chain at once and returns each chain's
    /// result, in the order the chains were added.
    ///
    /// # Cancel safety
    /// If `execute` is used as the event in a [`tokio::select!`] statement and some
    /// other branch completes first, then every chain stops at the stage it was in.
    /// **However, in that case, every chain's value is dropped and will be lost**
    /// (`input` itself was moved into the future, and is dropped with it).
    ///
    /// # Examples
    /// ```
    /// # use otelconc::pipeline::{Chain, Parallel};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let inc = Chain::builder("inc")
    ///     .stage("inc", |x: u32| async move { Ok::<_, String>(x + 1) })
    ///     .build()
    ///     .unwrap();
    /// let results = Parallel::new("p").chain(inc).execute(1).await;
    /// assert_eq!(results.into_iter().collect::<Result<Vec<_>, _>>().unwrap(), [2]);
    /// # }
    /// ```
    pub async fn execute(&self, input: T) -> Vec<Result<T, PipelineError<E>>> {
        let cx = crate::telemetry::current_context();
        join_all(
            self.chains
                .iter()
                .map(|c| c.execute(input.clone()).with_context(cx.clone())),
        )
        .await
    }
}
