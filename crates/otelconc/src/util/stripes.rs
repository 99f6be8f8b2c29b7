//! Counters that many threads bump without a locked instruction or a shared cache line.
//!
//! The hot paths of the rate limiter and the semaphore count every grant and every
//! refusal. A single `AtomicU64::fetch_add` costs a locked read-modify-write (about 3 ns,
//! a quarter of governor's whole `check()`) and, with several threads, one more cache
//! line bouncing between cores. So each thread owns one stripe of the counter: the first
//! [`OWNED`] threads alive get a stripe of their own, which only they write, with a plain
//! load and store (no lock prefix); any further thread adds to a shared overflow stripe
//! with `fetch_add`. A thread's stripe index goes back to a free list when the thread
//! exits, so a later thread takes it over (the free list's mutex orders the hand-over).
//! The observable counters that export the counts sum the stripes at collection time.
//!
//! [`this_thread`] gives the same index to other per-thread state (the semaphore's
//! waiter counts), so a thread keeps to one cache line of each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::util::sync::lock;

/// Stripes owned by one thread each.
const OWNED: usize = 8;
/// The overflow stripe, shared by every thread beyond the first [`OWNED`].
const SHARED: usize = OWNED;
/// Stripes in all: the owned ones and the shared one.
pub(crate) const COUNT: usize = OWNED + 1;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe {
    a: AtomicU64,
    b: AtomicU64,
}

/// Two striped counters (`a` and `b`).
#[derive(Debug, Default)]
pub(crate) struct Striped2 {
    stripes: [Stripe; COUNT],
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

#[inline]
fn add(stripe: impl Fn(&Stripe) -> &AtomicU64, stripes: &[Stripe; COUNT], n: u64) {
    let i = this_thread();
    bump(i, stripe(&stripes[i]), n, Ordering::Relaxed);
}

impl Striped2 {
    /// Adds `n` to counter `a`.
    #[inline]
    pub(crate) fn add_a(&self, n: u64) {
        add(|s| &s.a, &self.stripes, n);
    }

    /// Adds `n` to counter `b`.
    #[inline]
    pub(crate) fn add_b(&self, n: u64) {
        add(|s| &s.b, &self.stripes, n);
    }

    /// The total of counter `a`.
    pub(crate) fn a(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0, |t, s| t.wrapping_add(s.a.load(Ordering::Relaxed)))
    }

    /// The total of counter `b`.
    pub(crate) fn b(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0, |t, s| t.wrapping_add(s.b.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::Striped2;

    /// More threads than owned stripes, in two waves (so stripes are handed over), all
    /// counting at once: nothing is lost.
    #[test]
    fn sums_over_threads_and_handovers() {
        let c = std::sync::Arc::new(Striped2::default());
        for _wave in 0..2 {
            let hs: Vec<_> = (0..12)
                .map(|_| {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        for _ in 0..10_000 {
                            c.add_a(1);
                            c.add_b(2);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("thread");
            }
        }
        assert_eq!(c.a(), 240_000);
        assert_eq!(c.b(), 480_000);
    }
}
