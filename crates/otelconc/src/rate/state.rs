//! [`Shared`]: the state a limiter's handles and its reservations share: the bucket,
//! the wait list, the clock and the metrics.
//!
//! The hot path ([`RateLimiter::try_acquire`](super::RateLimiter::try_acquire)) reads
//! only the bucket, the clock and the striped counts; the wait list is behind a mutex
//! that only waits, reservations and rate changes take.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::clock::Epoch;
use super::gcra::Gcra;
use super::metrics::Metrics;
use super::quota::Rate;
use crate::util::sync::lock;

/// The Arc'd state behind a [`RateLimiter`](super::RateLimiter) and its
/// [`Reservation`](super::Reservation)s.
pub(super) struct Shared {
    /// The token bucket, lock-free.
    pub(super) gcra: Gcra,
    pub(super) epoch: Epoch,
    list: Mutex<WaitList>,
    /// Woken when the due times of pending reservations move (rate change, cancel).
    pub(super) changed: Notify,
    pub(super) name: Arc<str>,
    pub(super) metrics: Metrics,
}

/// The rate and burst in force, and the reservations not yet due.
pub(super) struct WaitList {
    pub(super) rate: Rate,
    pub(super) burst: u32,
    pub(super) next_id: u64,
    /// Pending (not yet due when made) reservations, in the order they were made,
    /// which is the order of their shares of the bucket's debt.
    pub(super) entries: BTreeMap<u64, Entry>,
}

/// A pending reservation.
pub(super) struct Entry {
    /// When the reservation is due, ns since the epoch.
    pub(super) due: u64,
}

impl Shared {
    pub(super) fn new(
        gcra: Gcra,
        epoch: Epoch,
        rate: Rate,
        burst: u32,
        name: Arc<str>,
        metrics: Metrics,
    ) -> Self {
        Self {
            gcra,
            epoch,
            list: Mutex::new(WaitList {
                rate,
                burst,
                next_id: 0,
                entries: BTreeMap::new(),
            }),
            changed: Notify::new(),
            name,
            metrics,
        }
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub(super) fn now_ns(&self) -> u64 {
        self.epoch.now_ns()
    }

    pub(super) fn list(&self) -> MutexGuard<'_, WaitList> {
        lock(&self.list)
    }

    /// The rate in force in tokens per second (`None` when unlimited), and the burst.
    pub(super) fn quota(&self) -> (Option<f64>, u32) {
        let list = self.list();
        let rate = match list.rate {
            Rate::PerSecond(r) => Some(r),
            Rate::Unlimited => None,
        };
        (rate, list.burst)
    }

    /// Tokens in the bucket now.
    pub(super) fn tokens(&self) -> f64 {
        self.gcra.tokens(self.now_ns())
    }
}
