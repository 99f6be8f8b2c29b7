//! Point-in-time numbers: [`Stats`] and the [`ShutdownReport`].

/// A snapshot of a pool's counts, from [`WorkerPool::stats`](super::WorkerPool::stats).
///
/// Counts are cumulative since the pool was built. Read while jobs run, the fields are
/// each exact but not taken at one instant; after shutdown they are final and
/// `submitted == completed + failed + cancelled + not_started`.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let pool = otelconc::pool::WorkerPool::builder("p").workers(3).build()?;
/// let s = pool.stats();
/// assert_eq!((s.workers, s.submitted), (3, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Workers the pool runs: the configured count while the pool is open (a worker
    /// retiring after a shrinking [`resize`](super::WorkerPool::resize) no longer
    /// counts). After [`close`](super::WorkerPool::close) or a shutdown it falls as workers
    /// exit (an abort counts them all out at once), and it is 0 once every worker has
    /// exited.
    pub workers: usize,
    /// Workers running a job now.
    pub busy: usize,
    /// Jobs waiting in the queue now.
    pub queued: usize,
    /// Jobs accepted.
    pub submitted: u64,
    /// Jobs that ran to completion.
    pub completed: u64,
    /// Jobs that panicked or timed out (`panicked + timed_out`).
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs that ran past the per-job timeout.
    pub timed_out: u64,
    /// Jobs that had started when the pool aborted or a shutdown deadline passed.
    pub cancelled: u64,
    /// Jobs accepted but never started (dropped from the queue at abort or deadline,
    /// each ended with [`JobError::NotStarted`](super::JobError::NotStarted)).
    pub not_started: u64,
    /// Submits refused: the job was handed back, never accepted (queue full on
    /// `try_submit`, or pool closed). Not part of `submitted`.
    pub rejected: u64,
    /// Outcomes the outcomes stream dropped because its buffer was full.
    pub outcomes_dropped: u64,
}

/// What happened to every job the pool accepted, from
/// [`WorkerPool::shutdown`](super::WorkerPool::shutdown) and
/// [`WorkerPool::abort`](super::WorkerPool::abort).
///
/// `completed + failed + cancelled + not_started` is the number of jobs the pool
/// accepted ([`ShutdownReport::accepted`]).
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let pool = otelconc::pool::WorkerPool::builder("p").build()?;
/// pool.submit(|| async {}).await?;
/// let report = pool.shutdown(std::time::Duration::from_secs(1)).await;
/// assert_eq!((report.completed, report.accepted()), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that ran to completion.
    pub completed: u64,
    /// Jobs that panicked or timed out.
    pub failed: u64,
    /// Jobs that had started and were cancelled at abort or deadline.
    pub cancelled: u64,
    /// Jobs accepted but never started: still queued at abort or deadline, dropped
    /// without starting (each ended with [`JobError::NotStarted`](super::JobError::NotStarted)).
    pub not_started: u64,
    /// Whether the deadline passed (or `abort` was called) before every worker had
    /// exited: jobs still running then were cancelled (even with the queue already
    /// empty), and jobs still queued never started.
    pub deadline_passed: bool,
}

impl ShutdownReport {
    /// Every job the pool accepted: the sum of the four counts.
    ///
    /// # Examples
    /// ```
    /// let r = otelconc::pool::ShutdownReport::default();
    /// assert_eq!(r.accepted(), 0);
    /// ```
    pub fn accepted(&self) -> u64 {
        self.completed + self.failed + self.cancelled + self.not_started
    }
}
