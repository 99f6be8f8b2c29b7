//! Small helpers the integration tests share: a replayable random generator and a
//! count of live values, to tell whether dropped or aborted work was really freed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A tiny deterministic generator (xorshift64*), so "random" tests replay exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (0, which xorshift cannot leave, is replaced).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next value.
    #[allow(clippy::should_implement_trait)] // not an iterator: it never ends
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True about once in `one_in` calls.
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Counts live values: a future or task holding one is still alive.
#[derive(Debug)]
pub struct Alive(Arc<AtomicUsize>);

impl Alive {
    /// One more live value on `count`, until this is dropped.
    pub fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lets the runtime drop aborted tasks (yielding up to 100 times); returns how many
/// values on `alive` are still alive.
pub async fn settle(alive: &AtomicUsize) -> usize {
    for _ in 0..100 {
        if alive.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    alive.load(Ordering::SeqCst)
}
