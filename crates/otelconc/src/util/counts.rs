//! The crate's two cheap-counter schemes. Every count a primitive exports is kept in one
//! of them; observable instruments sum them when a reader collects.
//!
//! - **Single writer** ([`Owned`], gathered by a [`Roster`]): counters that exactly one
//!   task or thread writes at a time (a pool worker, a pipeline stage worker, a fan-out
//!   stream). A write is a plain load and store on a cache line of the writer's own, with
//!   no locked instruction and no line shared with another writer; readers load. The
//!   roster keeps the live writers' counters and folds a writer's counts into its totals
//!   when the writer retires, so nothing counted is lost.
//! - **Striped** ([`Striped`]): counters that any thread may bump through a shared
//!   handle (a channel's senders and receivers, the rate limiter, the semaphore). A
//!   single `AtomicU64::fetch_add` costs a locked read-modify-write (about 3 ns, a quarter
//!   of governor's whole `check()`) and, with several threads, one more cache line
//!   bouncing between cores. So each thread owns one stripe of the counter: the first
//!   [`OWNED`] threads alive get a stripe of their own, which only they write, with a
//!   plain load and store; any further thread adds to a shared overflow stripe with
//!   `fetch_add`. A thread's stripe index goes back to a free list when the thread exits,
//!   so a later thread takes it over (the free list's mutex orders the hand-over).
//!
//! [`this_thread`] gives the same index to other per-thread state (the semaphore's
//! waiter counts), so a thread keeps to one cache line of each.
//!
//! Written by hand: `crossbeam-utils`' `CachePadded` pads a value but does not stripe
//! it, and a striped counter that uses `fetch_add` on its own stripe still pays the
//! locked add these schemes exist to avoid.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::util::sync::lock;

/// Stripes owned by one thread each.
const OWNED: usize = 8;
/// The overflow stripe, shared by every thread beyond the first [`OWNED`].
const SHARED: usize = OWNED;
/// Stripes in all: the owned ones and the shared one.
pub(crate) const COUNT: usize = OWNED + 1;

/// `N` counters on cache lines of their own (two lines, so the adjacent-line prefetcher
/// does not pair them with a neighbour's).
#[derive(Debug)]
#[repr(align(128))]
struct Line<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// `N` counters written by one writer at a time (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Owned<const N: usize> {
    line: Line<N>,
}

impl<const N: usize> Owned<N> {
    /// Adds `n` to counter `k`. Only the one writer of these counters calls this: the
    /// add is a plain load and store, which would lose updates under two writers.
    #[inline]
    pub(crate) fn add(&self, k: usize, n: u64) {
        let c = &self.line.0[k];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Counter `k`.
    #[inline]
    pub(crate) fn get(&self, k: usize) -> u64 {
        self.line.0[k].load(Ordering::Relaxed)
    }
}

/// The single-writer counters of every live writer, plus the totals of writers gone.
#[derive(Debug)]
pub(crate) struct Roster<const N: usize> {
    inner: Mutex<RosterInner<N>>,
}

#[derive(Debug)]
struct RosterInner<const N: usize> {
    live: Vec<Arc<Owned<N>>>,
    retired: [u64; N],
}

impl<const N: usize> Default for Roster<N> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(RosterInner {
                live: Vec::new(),
                retired: [0; N],
            }),
        }
    }
}

impl<const N: usize> Roster<N> {
    /// Counters for a new writer, counted in the totals from now on.
    pub(crate) fn join(&self) -> Arc<Owned<N>> {
        let c = Arc::new(Owned::default());
        lock(&self.inner).live.push(c.clone());
        c
    }

    /// Folds a writer's counts into the totals and stops reading its counters. Call it
    /// once the writer has stopped writing (after its last add).
    pub(crate) fn leave(&self, c: &Arc<Owned<N>>) {
        let mut r = lock(&self.inner);
        if let Some(i) = r.live.iter().position(|x| Arc::ptr_eq(x, c)) {
            r.live.swap_remove(i);
            for (k, t) in r.retired.iter_mut().enumerate() {
                *t = t.wrapping_add(c.get(k));
            }
        }
    }

    /// Counter `k` summed over live and retired writers.
    pub(crate) fn total(&self, k: usize) -> u64 {
        let r = lock(&self.inner);
        r.live
            .iter()
            .fold(r.retired[k], |t, c| t.wrapping_add(c.get(k)))
    }

    /// Every counter summed over live and retired writers, read under one lock.
    pub(crate) fn totals(&self) -> [u64; N] {
        let r = lock(&self.inner);
        let mut out = r.retired;
        for c in &r.live {
            for (k, t) in out.iter_mut().enumerate() {
                *t = t.wrapping_add(c.get(k));
            }
        }
        out
    }
}

/// `N` striped counters (see the module docs).
#[derive(Debug)]
pub(crate) struct Striped<const N: usize> {
    stripes: [Line<N>; COUNT],
}

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Line::default()),
        }
    }
}

struct Registry {
    next: usize,
    free: Vec<usize>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    free: Vec::new(),
});

/// This thread's stripe index: below [`OWNED`] when the thread owns it.
struct ThreadStripe(usize);

impl ThreadStripe {
    fn take() -> Self {
        let mut r = lock(&REGISTRY);
        if let Some(i) = r.free.pop() {
            return Self(i);
        }
        if r.next < OWNED {
            r.next += 1;
            return Self(r.next - 1);
        }
        Self(SHARED)
    }
}

impl Drop for ThreadStripe {
    fn drop(&mut self) {
        if self.0 < OWNED {
            let mut r = lock(&REGISTRY);
            r.free.push(self.0);
        }
    }
}

thread_local! {
    static STRIPE: ThreadStripe = ThreadStripe::take();
}

/// This thread's stripe index, below [`COUNT`]: the thread's own while it is among the
/// first [`OWNED`] threads alive, else the shared one (as during thread teardown, when
/// the thread-local may be gone).
#[inline]
pub(crate) fn this_thread() -> usize {
    STRIPE.try_with(|s| s.0).unwrap_or(SHARED)
}

/// Adds `n` to `c`, the calling thread's counter in stripe `i` ([`this_thread`]), with
/// `order` for the write.
#[inline]
pub(crate) fn bump(i: usize, c: &AtomicU64, n: u64, order: Ordering) {
    if i < OWNED {
        // Only this thread writes this stripe: no read-modify-write needed.
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), order);
    } else {
        c.fetch_add(n, order);
    }
}

impl<const N: usize> Striped<N> {
    /// Adds `n` to counter `k`.
    #[inline]
    pub(crate) fn add(&self, k: usize, n: u64) {
        let i = this_thread();
        bump(i, &self.stripes[i].0[k], n, Ordering::Relaxed);
    }

    /// Adds `n` to counter `k` and returns the calling thread's stripe of it before
    /// the add: a per-thread sequence number, for picking a fixed 1-in-N sample.
    #[inline]
    pub(crate) fn add_seq(&self, k: usize, n: u64) -> u64 {
        let i = this_thread();
        let c = &self.stripes[i].0[k];
        if i < OWNED {
            let before = c.load(Ordering::Relaxed);
            c.store(before.wrapping_add(n), Ordering::Relaxed);
            before
        } else {
            c.fetch_add(n, Ordering::Relaxed)
        }
    }

    /// The total of counter `k`.
    pub(crate) fn get(&self, k: usize) -> u64 {
        self.stripes
            .iter()
            .fold(0, |t, s| t.wrapping_add(s.0[k].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Roster, Striped};

    /// More threads than owned stripes, in two waves (so stripes are handed over), all
    /// counting at once: nothing is lost.
    #[test]
    fn striped_sums_over_threads_and_handovers() {
        let c = Arc::new(Striped::<2>::default());
        for _wave in 0..2 {
            let hs: Vec<_> = (0..12)
                .map(|_| {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        for _ in 0..10_000 {
                            c.add(0, 1);
                            c.add_seq(1, 2);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("thread");
            }
        }
        assert_eq!(c.get(0), 240_000);
        assert_eq!(c.get(1), 480_000);
    }

    /// Writers on their own threads, some leaving while others still count: the totals
    /// keep what the retired ones counted.
    #[test]
    fn roster_keeps_what_retired_writers_counted() {
        let roster = Arc::new(Roster::<3>::default());
        let hs: Vec<_> = (0..6)
            .map(|w| {
                let roster = roster.clone();
                std::thread::spawn(move || {
                    let mine = roster.join();
                    for _ in 0..10_000 {
                        mine.add(0, 1);
                        mine.add(2, w);
                    }
                    if w % 2 == 0 {
                        roster.leave(&mine);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        assert_eq!(roster.total(0), 60_000);
        assert_eq!(roster.totals(), [60_000, 0, 10_000 * 15]);
    }
}
