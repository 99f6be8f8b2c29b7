//! Who is waiting on a semaphore: how many callers, and a bound on their requests.
//!
//! Shrinking the semaphore must never leave a waiter asking for more than the total
//! (it would wait forever), so every waiter announces itself before it reads the
//! total, and a shrink lowers the total before it reads the announcements (see
//! `Shared::shrink`).
//!
//! A read-modify-write per announcement on shared words moved a cache line between
//! cores on every contended acquire, and so did one striped by thread, since a task
//! often leaves on another worker than it entered on. So a thread only ever writes its
//! own stripe ([`crate::util::stripes`]), with stores rather than read-modify-writes: one
//! count of waiters in, one of waiters out, wherever each waiter entered. A shrink, which is rare, sums them: it
//! reads every "out" count before any "in" count, so a waiter seen leaving is also seen
//! entering, and the sum never misses a waiter that is still in.
//!
//! The bound is one word that only grows while calls keep waiting: a waiter raises it
//! to its request (the store is skipped when it is already as high, so the word stays
//! in every core's cache), and a shrink that finds no waiter resets it. So it is never
//! below a waiting request; while calls keep waiting it can be above every one of
//! them, which only makes a shrink keep more permits, never fewer.
//!
//! Counting in and the bound are `SeqCst`, as are the shrink's reads: the shrink
//! argument needs a waiter's announcement and the shrink's update of the total to be
//! ordered with each other's reads. Counting out only needs `Release`.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Release, SeqCst};

use crossbeam_utils::CachePadded;

use crate::util::counts;
use crate::util::sync::lock;

#[derive(Debug, Default)]
struct Stripe {
    entered: AtomicU64,
    left: AtomicU64,
}

/// The waiter counts and the bound on their requests.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    stripes: [CachePadded<Stripe>; counts::COUNT],
    /// Never below a waiting request.
    bound: CachePadded<AtomicU64>,
    /// Held by [`Waiting::bound_for_shrink`], so a reset of the bound and a restore of
    /// it (below) never let another shrink read it in between.
    shrinking: Mutex<()>,
}

impl Waiting {
    /// Counts a waiter for `n` permits in.
    #[inline]
    pub(super) fn enter(&self, n: u32) {
        let i = counts::this_thread();
        counts::bump(i, &self.stripes[i].entered, 1, SeqCst);
        if self.bound.load(SeqCst) < u64::from(n) {
            self.bound.fetch_max(u64::from(n), SeqCst);
        }
    }

    /// Counts a waiter out (on this thread's stripe, wherever it entered).
    #[inline]
    pub(super) fn leave(&self) {
        let i = counts::this_thread();
        // `Release` is enough (a plain store on x86, where `SeqCst` costs a locked
        // instruction): whoever reads this count also sees the waiter's `entered`.
        counts::bump(i, &self.stripes[i].left, 1, Release);
    }

    /// Waiters now: never below those still in (see the module docs).
    pub(super) fn count(&self) -> u64 {
        let left: u64 = self.stripes.iter().map(|s| s.left.load(SeqCst)).sum();
        let entered: u64 = self.stripes.iter().map(|s| s.entered.load(SeqCst)).sum();
        entered.saturating_sub(left)
    }

    /// For a shrink that has already lowered the total: a bound on the requests of
    /// the waiters that may have read the total before it was lowered (0 when there
    /// are none).
    pub(super) fn bound_for_shrink(&self) -> u64 {
        let _one_at_a_time = lock(&self.shrinking);
        if self.count() > 0 {
            return self.bound.load(SeqCst);
        }
        // Nobody waits: start the bound afresh. A waiter entering meanwhile may have
        // read the old bound and skipped raising it; it is counted in by now, so put
        // the old bound back then.
        let old = self.bound.swap(0, SeqCst);
        if self.count() > 0 {
            self.bound.fetch_max(old, SeqCst);
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    use super::Waiting;

    #[test]
    fn the_bound_covers_every_waiter_and_resets_once_none_waits() {
        let w = Waiting::default();
        assert_eq!((w.count(), w.bound_for_shrink()), (0, 0));
        w.enter(3);
        w.enter(1);
        assert_eq!((w.count(), w.bound_for_shrink()), (2, 3));
        w.leave();
        assert_eq!((w.count(), w.bound_for_shrink()), (1, 3));
        w.leave();
        assert_eq!((w.count(), w.bound_for_shrink()), (0, 0));
        w.enter(2);
        assert_eq!((w.count(), w.bound_for_shrink()), (1, 2));
    }

    /// Waiters counted in on one thread and out on another (a task that moved between
    /// workers), from more threads than there are owned stripes, while another thread
    /// keeps asking for the bound (resetting it whenever it finds nobody waiting): a
    /// waiter is always covered, and in the end every count balances and the bound
    /// starts afresh.
    #[test]
    fn waiters_leave_from_other_threads() {
        let w = Arc::new(Waiting::default());
        let done = Arc::new(AtomicBool::new(false));
        let shrinker = {
            let (w, done) = (w.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let _ = w.bound_for_shrink();
                }
            })
        };
        let (tx, rx) = mpsc::channel::<()>();
        let enterers: Vec<_> = (0..12u32)
            .map(|t| {
                let (w, tx) = (w.clone(), tx.clone());
                std::thread::spawn(move || {
                    for k in 0..20_000u32 {
                        let n = 1 + (t + k) % 7;
                        w.enter(n);
                        assert!(w.count() >= 1);
                        assert!(w.bound_for_shrink() >= u64::from(n));
                        tx.send(()).expect("leaver alive");
                    }
                })
            })
            .collect();
        drop(tx);
        let leaver = {
            let w = w.clone();
            std::thread::spawn(move || {
                for () in rx {
                    w.leave();
                }
            })
        };
        for t in enterers {
            t.join().expect("enterer");
        }
        leaver.join().expect("leaver");
        done.store(true, Ordering::Relaxed);
        shrinker.join().expect("shrinker");
        assert_eq!((w.count(), w.bound_for_shrink()), (0, 0));
    }
}
