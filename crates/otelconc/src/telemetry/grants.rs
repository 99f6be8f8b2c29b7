//! [`Grants`]: the counts of a primitive that hands out units on request (a rate
//! limiter's tokens, a semaphore's permits), and the observable counters that export
//! them under the primitive's own names ([`GrantNames`]).
//!
//! The hot path adds to one stripe per thread with plain stores ([`Striped`]); the
//! counters sum the stripes when a reader collects. A call of one unit adds once: the
//! unit counts are the call counts plus the units beyond the first of each call, which
//! only `_many` calls of more than one unit add. Requests larger than the primitive
//! could ever grant and cancelled calls are rare: plain atomics.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;

use super::names::{ATTR_ERROR_TYPE, ATTR_OUTCOME, InstrumentSpec};
use super::{Observation, Telemetry};
use crate::util::counts::Striped;

/// Striped counts: calls granted.
const CALLS_OK: usize = 0;
/// Striped counts: calls refused because the units were not there now.
const CALLS_UNAVAILABLE: usize = 1;
/// Striped counts: units granted beyond one per granted call.
const EXTRA_OK: usize = 2;
/// Striped counts: units refused as unavailable beyond one per refused call.
const EXTRA_UNAVAILABLE: usize = 3;
/// Striped counts: calls that waited.
const CONTENDED: usize = 4;

/// What a primitive calls the instruments and attribute values of its grants.
pub(crate) struct GrantNames {
    /// Calls, by outcome.
    pub(crate) acquisitions: &'static InstrumentSpec,
    /// Units (tokens, permits), by outcome.
    pub(crate) units: &'static InstrumentSpec,
    /// Calls that waited.
    pub(crate) contended: &'static InstrumentSpec,
    /// The `otelconc.outcome` values: granted, refused, cancelled.
    pub(crate) ok: &'static str,
    pub(crate) refused: &'static str,
    pub(crate) cancelled: &'static str,
    /// The `error.type` of a refusal because the units are not there now.
    pub(crate) unavailable: &'static str,
    /// The `error.type` of a refusal because the request is larger than the primitive
    /// could ever grant.
    pub(crate) too_large: &'static str,
}

/// Calls and units granted, refused and cancelled, and calls that waited.
#[derive(Default)]
pub(crate) struct Grants {
    counts: Striped<5>,
    /// Calls and units refused as larger than could ever be granted (cold).
    too_large: [AtomicU64; 2],
    /// Calls and units of cancelled waits and reservations (cold).
    cancelled: [AtomicU64; 2],
}

impl Grants {
    /// Counts a call granted `n` units: one add for a call of one unit.
    #[inline]
    pub(crate) fn granted(&self, n: u64) {
        self.counts.add(CALLS_OK, 1);
        if n != 1 {
            self.counts.add(EXTRA_OK, n.wrapping_sub(1));
        }
    }

    /// Counts a `try_` call refused `n` units because they were not there now.
    #[inline]
    pub(crate) fn unavailable(&self, n: u64) {
        self.counts.add(CALLS_UNAVAILABLE, 1);
        if n != 1 {
            self.counts.add(EXTRA_UNAVAILABLE, n.wrapping_sub(1));
        }
    }

    /// Counts a call refused `n` units because they are more than could ever be granted.
    pub(crate) fn too_large(&self, n: u64) {
        self.too_large[0].fetch_add(1, Ordering::Relaxed);
        self.too_large[1].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a cancelled wait or reservation of `n` units.
    pub(crate) fn cancelled(&self, n: u64) {
        self.cancelled[0].fetch_add(1, Ordering::Relaxed);
        self.cancelled[1].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a call that waits.
    #[inline]
    pub(crate) fn contended(&self) {
        self.counts.add(CONTENDED, 1);
    }

    /// Registers the counters of the grants that `grants` finds in the primitive `S`
    /// named `name` (an `otelconc.name` attribute), reached through `shared` (held
    /// weakly, so a dropped primitive stops reporting), under `names`. The calls
    /// granted come first.
    pub(crate) fn observe<S, G>(
        t: &Telemetry,
        name: &KeyValue,
        shared: &Weak<S>,
        grants: G,
        names: &GrantNames,
    ) -> Vec<Observation>
    where
        S: Send + Sync + 'static,
        G: Fn(&S) -> &Grants + Copy + Send + Sync + 'static,
    {
        let attrs = |outcome: &'static str, error: Option<&'static str>| {
            let mut v = vec![name.clone(), KeyValue::new(ATTR_OUTCOME, outcome)];
            v.extend(error.map(|e| KeyValue::new(ATTR_ERROR_TYPE, e)));
            v
        };
        let counter = |spec, attrs, f: fn(&Grants) -> u64| {
            let w = shared.clone();
            t.observable_counter(spec, attrs, move || w.upgrade().map(|s| f(grants(&s))))
        };
        let (ok, refused, cancelled) = (names.ok, names.refused, names.cancelled);
        let (unavailable, too_large) = (Some(names.unavailable), Some(names.too_large));
        let (calls, units) = (names.acquisitions, names.units);
        vec![
            counter(calls, attrs(ok, None), |g| g.counts.get(CALLS_OK)),
            counter(calls, attrs(refused, unavailable), |g| {
                g.counts.get(CALLS_UNAVAILABLE)
            }),
            counter(calls, attrs(refused, too_large), |g| {
                g.too_large[0].load(Ordering::Relaxed)
            }),
            counter(calls, attrs(cancelled, None), |g| {
                g.cancelled[0].load(Ordering::Relaxed)
            }),
            counter(units, attrs(ok, None), |g| {
                g.counts.get(CALLS_OK).wrapping_add(g.counts.get(EXTRA_OK))
            }),
            counter(units, attrs(refused, unavailable), |g| {
                g.counts
                    .get(CALLS_UNAVAILABLE)
                    .wrapping_add(g.counts.get(EXTRA_UNAVAILABLE))
            }),
            counter(units, attrs(refused, too_large), |g| {
                g.too_large[1].load(Ordering::Relaxed)
            }),
            counter(units, attrs(cancelled, None), |g| {
                g.cancelled[1].load(Ordering::Relaxed)
            }),
            counter(names.contended, vec![name.clone()], |g| {
                g.counts.get(CONTENDED)
            }),
        ]
    }
}
