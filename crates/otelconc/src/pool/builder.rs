//! [`Builder`]: the knobs of a [`WorkerPool`].

use std::sync::Arc;
use std::time::Duration;

use super::error::BuildError;
use super::state::{Config, Shared};
use super::worker_pool::WorkerPool;
use crate::telemetry::Telemetry;

/// Configures and builds a [`WorkerPool`]; from [`WorkerPool::builder`].
///
/// Defaults: one worker per available CPU, a queue of 1,024 jobs, no per-job timeout, a
/// 30 s shutdown deadline for [`WorkerPool::graceful_shutdown`], no outcomes stream, 1 in
/// 16 jobs timed for the histograms, [`Telemetry::global`].
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use otelconc::pool::WorkerPool;
/// let pool = WorkerPool::builder("thumbnails")
///     .workers(4)
///     .queue_capacity(256)
///     .job_timeout(Duration::from_secs(10))
///     .shutdown_deadline(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(pool.stats().workers, 4);
/// # Ok::<(), otelconc::pool::BuildError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder {
    name: String,
    workers: usize,
    capacity: usize,
    timeout: Option<Duration>,
    deadline: Duration,
    outcomes: Option<usize>,
    sample_every: u32,
    telemetry: Option<Telemetry>,
}

impl WorkerPool {
    /// A builder for a pool named `name` (the `otelconc.name` attribute of its telemetry).
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("reports").workers(1).build()?;
    /// # Ok::<(), otelconc::pool::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name)
    }
}

impl Builder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            workers: std::thread::available_parallelism().map_or(4, |n| n.get()),
            capacity: 1024,
            timeout: None,
            deadline: Duration::from_secs(30),
            outcomes: None,
            sample_every: 16,
            telemetry: None,
        }
    }

    /// How many workers run jobs (at least 1).
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::pool::WorkerPool::builder("p").workers(8);
    /// # let _ = b;
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How many jobs may wait in the queue (at least 1).
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::pool::WorkerPool::builder("p").queue_capacity(64);
    /// # let _ = b;
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The longest a job may run: then its future is dropped, its token fires and it ends
    /// with [`JobError::TimedOut`](super::JobError::TimedOut). Must be longer than zero.
    /// Costs one timer per job.
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::pool::WorkerPool::builder("p").job_timeout(std::time::Duration::from_secs(1));
    /// # let _ = b;
    /// ```
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The deadline [`WorkerPool::graceful_shutdown`] uses (zero means abort at once).
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::pool::WorkerPool::builder("p").shutdown_deadline(std::time::Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Enables the outcomes stream ([`WorkerPool::outcomes`]) with a buffer of
    /// `capacity` outcomes (at least 1). Workers never wait on it: a full buffer drops
    /// the outcome and counts it in `otelconc.pool.outcomes.dropped`.
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::pool::WorkerPool::builder("p").outcomes(1024);
    /// # let _ = b;
    /// ```
    pub fn outcomes(mut self, capacity: usize) -> Self {
        self.outcomes = Some(capacity);
        self
    }

    /// Times 1 job in `every` (at least 1), per submitting thread, for the run-time and
    /// queue-wait histograms. The default, 16, keeps the three clock reads and two
    /// histogram records a timed job costs off most jobs; `1` times every job. Histogram
    /// counts are then about `jobs / every`; the `otelconc.pool.jobs` counter is exact.
    /// Jobs inside a sampled trace are in the histograms only when they fall in the
    /// sample (their span has their times, and measuring every one cost a traced job
    /// about a third more in `otelconc bench pool`), so the histograms stay a fixed
    /// fraction of the jobs. A timed job that carries no context takes a small box for
    /// its queue time.
    ///
    /// # Examples
    /// ```
    /// let b = otelconc::pool::WorkerPool::builder("p").timing_sample(1);
    /// # let _ = b;
    /// ```
    pub fn timing_sample(mut self, every: u32) -> Self {
        self.sample_every = every;
        self
    }

    /// The meter, tracer and span policy to use (default [`Telemetry::global`]).
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::{SpanPolicy, Telemetry};
    /// let b = otelconc::pool::WorkerPool::builder("p")
    ///     .telemetry(Telemetry::global().with_span_policy(SpanPolicy::Never));
    /// # let _ = b;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Builds the pool and starts its workers on the current tokio runtime, which needs
    /// its time driver enabled (`enable_time` or `enable_all`).
    ///
    /// # Errors
    /// [`BuildError`] for zero workers, capacity, timeout, outcomes buffer or timing
    /// sample, or when called outside a tokio runtime.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = otelconc::pool::WorkerPool::builder("p").workers(2).build()?;
    /// assert!(otelconc::pool::WorkerPool::builder("p").queue_capacity(0).build().is_err());
    /// # Ok::<(), otelconc::pool::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub fn build(self) -> Result<WorkerPool, BuildError> {
        let pool = self.name.clone();
        if self.workers == 0 {
            return Err(BuildError::ZeroWorkers { pool });
        }
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity { pool });
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(BuildError::ZeroTimeout { pool });
        }
        if self.outcomes == Some(0) {
            return Err(BuildError::ZeroOutcomes { pool });
        }
        if self.sample_every == 0 {
            return Err(BuildError::ZeroSample { pool });
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Err(BuildError::NoRuntime { pool });
        };
        let shared = Shared::new(
            Config {
                name: Arc::from(self.name),
                capacity: self.capacity,
                timeout: self.timeout,
                deadline: self.deadline,
                outcomes: self.outcomes,
                sample_every: self.sample_every,
                telemetry: self.telemetry.unwrap_or_else(Telemetry::global),
            },
            rt,
        );
        shared.start(self.workers);
        Ok(WorkerPool::from_shared(shared))
    }
}
