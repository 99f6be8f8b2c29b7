//! [`WorkerReport`]: what a worker did with every entry it received.

use otelconc::pool::ShutdownReport;

/// Counts of a [`Worker`](crate::Worker), from [`Worker::stats`](crate::Worker::stats)
/// (cumulative) and [`Worker::shutdown`](crate::Worker::shutdown) (final).
///
/// After shutdown, `received == completed + duplicates + retried + dead_lettered +
/// released` ([`WorkerReport::adds_up`]).
///
/// # Examples
/// ```
/// let r = otelconc_redis::WorkerReport::default();
/// assert!(r.adds_up());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Entries this worker took: new ones and reclaimed ones.
    pub received: u64,
    /// Of those, entries reclaimed from another consumer (or retried after a backoff).
    pub reclaimed: u64,
    /// Jobs that succeeded and whose commit applied their effects and acked them.
    pub completed: u64,
    /// Jobs that succeeded but whose dedup marker was already set: another delivery of
    /// the same job had committed; acked without applying effects. Only jobs with
    /// effects have a marker: a second delivery of a job without effects counts as
    /// completed.
    pub duplicates: u64,
    /// Failed deliveries left pending for a retry after backoff.
    pub retried: u64,
    /// Entries moved to the dead-letter stream (failed at `max_deliveries`, delivered
    /// too often without an outcome, undecodable, or an effect command failed).
    pub dead_lettered: u64,
    /// Of `dead_lettered`, entries that could not be decoded.
    pub decode_errors: u64,
    /// Entries left pending for another consumer: cancelled by a shutdown deadline (or
    /// read and still waiting for room in the pool's queue when the shutdown began),
    /// whose commit or retry could not reach Redis, or whose retry or dead letter found
    /// the entry owned by another consumer by then (left to it, untouched).
    pub released: u64,
    /// Entries this worker found owned by another consumer by then (the job ran too
    /// long without heartbeats reaching Redis and was reclaimed): found by heartbeats,
    /// or by retries, dead letters and releases, which then leave the entry alone; one
    /// delivery counts once, however many of them found it. An entry this worker acked
    /// itself is none, even when a heartbeat finds it gone before the ack's answer is
    /// back.
    pub leases_lost: u64,
    /// The pool's own report (meaningful after shutdown). Its `failed` counts the
    /// handlers that panicked; a job past its
    /// [`job_timeout`](crate::WorkerBuilder::job_timeout) ends inside the pool's job, so
    /// the pool counts it as completed, while `retried` or `dead_lettered` above count
    /// it failed.
    pub pool: ShutdownReport,
}

impl WorkerReport {
    /// Whether every received entry is accounted for exactly once.
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc_redis::WorkerReport::default().adds_up());
    /// ```
    pub fn adds_up(&self) -> bool {
        self.received
            == self.completed + self.duplicates + self.retried + self.dead_lettered + self.released
    }
}
