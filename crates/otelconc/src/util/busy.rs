//! Busy time of a set of workers (a pool's, a pipeline stage's), exact, with no clock
//! read per job.
//!
//! A worker is busy from the moment it takes an item until it parks: on an empty queue,
//! or (a pipeline stage worker) on a full output buffer. It reads the clock only at those
//! two transitions, never while it drains a non-empty queue, and parking costs far more
//! than the clock read. Each worker's [`Clock`] is one atomic that only the worker
//! writes: while idle, the busy nanoseconds of its finished stretches; while busy, a flag
//! and the instant its busy time would have begun had it been busy without a break
//! (`start - done`), so that at any instant its busy time is `now - that`. A collection
//! reads each live clock and adds the time of workers gone ([`Workers::busy_time`]).
//!
//! Written by hand: tokio-metrics measures busy time per task poll (a clock read per
//! poll), which is what this avoids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Now;
use super::sync::lock;

/// The flag of a [`Clock`] that is running (its worker is busy).
const BUSY: u64 = 1 << 63;

/// One worker's busy time (see the module docs). Written by its worker only.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Clock {
    epoch: Instant,
    state: AtomicU64,
}

/// Nanoseconds from `epoch` to `now`, below the [`BUSY`] flag.
fn nanos(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(BUSY - 1) & !BUSY
}

impl Clock {
    /// Now, on the worker's thread (a runtime thread: its clock).
    fn nanos(&self) -> u64 {
        nanos(self.epoch, Instant::now())
    }

    /// The worker took an item: its busy time runs from now, unless it already does.
    /// One load while it keeps taking items; a clock read when it was idle.
    #[inline]
    pub(crate) fn busy(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if s & BUSY == 0 {
            self.start(s);
        }
    }

    #[cold]
    fn start(&self, done: u64) {
        let now = self.nanos();
        self.state
            .store(BUSY | now.saturating_sub(done), Ordering::Relaxed);
    }

    /// The worker parks (or stops): its busy time stops running.
    #[inline]
    pub(crate) fn idle(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if s & BUSY != 0 {
            self.stop(s & !BUSY);
        }
    }

    #[cold]
    fn stop(&self, base: u64) {
        let now = self.nanos();
        self.state
            .store(now.saturating_sub(base), Ordering::Relaxed);
    }

    /// Whether the worker is busy now.
    pub(crate) fn is_busy(&self) -> bool {
        self.state.load(Ordering::Relaxed) & BUSY != 0
    }

    /// Nanoseconds the worker has been busy until `now` (nanoseconds since the epoch).
    fn read(&self, now: u64) -> u64 {
        let s = self.state.load(Ordering::Relaxed);
        if s & BUSY == 0 {
            s
        } else {
            now.saturating_sub(s & !BUSY)
        }
    }
}

/// The clocks of a set of workers, live and gone (see the module docs).
#[derive(Debug)]
pub(crate) struct Workers {
    epoch: Instant,
    /// The clock a collection reads (see [`Now`]).
    clock: Now,
    inner: Mutex<Inner>,
    /// The last total reported, so the total never goes back (a worker that stops
    /// between a reading of its clock and the clock read of that reading can report a
    /// few nanoseconds less than the one before).
    reported: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    live: Vec<Arc<Clock>>,
    /// Busy nanoseconds of workers gone.
    retired: u64,
}

impl Default for Workers {
    fn default() -> Self {
        let clock = Now::default();
        Self {
            epoch: clock.now(),
            clock,
            inner: Mutex::new(Inner::default()),
            reported: AtomicU64::new(0),
        }
    }
}

impl Workers {
    /// A clock for a new worker, idle, counted from now on.
    pub(crate) fn join(&self) -> Arc<Clock> {
        let c = Arc::new(Clock {
            epoch: self.epoch,
            state: AtomicU64::new(0),
        });
        lock(&self.inner).live.push(c.clone());
        c
    }

    /// A worker is gone: its clock stops, and its busy time goes into the total of the
    /// workers gone. Call it from the worker (or from what drops it), once.
    pub(crate) fn leave(&self, c: &Arc<Clock>) {
        c.idle();
        let mut inner = lock(&self.inner);
        if let Some(i) = inner.live.iter().position(|x| Arc::ptr_eq(x, c)) {
            inner.live.swap_remove(i);
            // Idle now: its reading does not depend on the time.
            inner.retired = inner.retired.wrapping_add(c.read(0));
        }
    }

    /// Seconds the workers have been busy in all, up to now, the stretches still going
    /// included: exact, and never less than the last reading.
    pub(crate) fn busy_time(&self) -> f64 {
        let now = nanos(self.epoch, self.clock.now());
        let inner = lock(&self.inner);
        let total = inner
            .live
            .iter()
            .fold(inner.retired, |t, c| t.wrapping_add(c.read(now)));
        drop(inner);
        let before = self.reported.fetch_max(total, Ordering::Relaxed);
        Duration::from_nanos(before.max(total)).as_secs_f64()
    }

    /// `(live, busy)`: the workers that have joined and not left, and how many of them
    /// are busy now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        let busy = inner.live.iter().filter(|c| c.is_busy()).count();
        (inner.live.len(), busy)
    }
}

/// A worker's clock for as long as the worker runs: dropping it (the worker ended, or
/// its task was aborted) stops the clock and takes it out of the set. A shift begun
/// with nothing reading the busy time (no SDK) has no clock, and costs one branch.
#[derive(Debug)]
pub(crate) struct Shift {
    clock: Option<(Arc<Workers>, Arc<Clock>)>,
}

impl Shift {
    /// A clock for a new worker of `workers`, when `read` says an SDK reads them.
    pub(crate) fn begin(workers: &Arc<Workers>, read: bool) -> Self {
        Self {
            clock: read.then(|| (workers.clone(), workers.join())),
        }
    }

    /// The worker took an item (see [`Clock::busy`]).
    #[inline]
    pub(crate) fn busy(&self) {
        if let Some((_, c)) = &self.clock {
            c.busy();
        }
    }

    /// The worker parks (see [`Clock::idle`]).
    #[inline]
    pub(crate) fn idle(&self) {
        if let Some((_, c)) = &self.clock {
            c.idle();
        }
    }
}

impl Drop for Shift {
    fn drop(&mut self) {
        if let Some((workers, c)) = &self.clock {
            workers.leave(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Shift, Workers};

    #[tokio::test(start_paused = true)]
    async fn busy_time_counts_busy_stretches_running_ones_and_workers_gone() {
        let workers = Arc::new(Workers::default());
        let a = Shift::begin(&workers, true);
        let b = Shift::begin(&workers, true);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(workers.busy_time(), 0.0);
        a.busy();
        tokio::time::advance(Duration::from_secs(2)).await;
        // Taking more items while busy changes nothing.
        a.busy();
        b.busy();
        assert_eq!(workers.counts(), (2, 2));
        tokio::time::advance(Duration::from_secs(3)).await;
        a.idle();
        a.idle();
        assert_eq!(workers.counts(), (2, 1));
        tokio::time::advance(Duration::from_secs(4)).await;
        // a: 5 s; b: 7 s and running.
        assert_eq!(workers.busy_time(), 12.0);
        drop(b);
        assert_eq!(workers.counts(), (1, 0));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(workers.busy_time(), 12.0);
        a.busy();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(workers.busy_time(), 13.0);
    }
}
