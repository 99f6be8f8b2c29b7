//! Who is waiting on a semaphore: how many callers, and the largest request among them.
//!
//! Shrinking the semaphore must never leave a waiter asking for more than the total
//! (it would wait forever), so every waiter announces its request before it reads the
//! total, and a shrink lowers the total before it reads the announcements (see
//! `Inner::shrink`). Announcing costs two atomic read-modify-writes per wait (one in,
//! one out). On one word shared by every thread, that word's cache line moved between
//! cores on every contended acquire; so the announcements are striped by thread, as
//! the grant counters are ([`crate::stripes`]): a waiter counts in on its thread's word
//! and out on the same word (it remembers which), wherever its task runs by then. A
//! shrink, which is rare, reads every word.
//!
//! Each word holds the waiters counted on it (upper 32 bits) and the largest request
//! among them (lower 32 bits), reset when its count drops to 0. So the largest over the
//! words is never below a waiting request; it may be above one that has left while
//! others still wait on its word, which only makes a shrink keep more permits for a
//! while, never fewer.
//!
//! All operations are `SeqCst`: the shrink argument needs a waiter's announcement and
//! the shrink's update of the total to be ordered with each other's reads.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crossbeam_utils::CachePadded;

use crate::stripes;

const LOW: u64 = u32::MAX as u64;
const ONE: u64 = 1 << 32;

/// The waiter words, one per thread stripe, each on cache lines of its own.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    words: [CachePadded<AtomicU64>; stripes::COUNT],
}

/// A waiter counted in; hand it back to [`Waiting::leave`].
#[derive(Debug)]
pub(super) struct Ticket(usize);

impl Waiting {
    /// Counts a waiter for `n` permits in, on this thread's word.
    pub(super) fn enter(&self, n: u32) -> Ticket {
        let i = stripes::this_thread();
        let word = &self.words[i];
        // Count in with one add, and raise the largest request only when ours is
        // larger. Our count keeps the last leaver from resetting the largest until we
        // leave, so a value already >= n stays so.
        let w = word.fetch_add(ONE, SeqCst);
        if w & LOW < u64::from(n) {
            let _ = word.fetch_update(SeqCst, SeqCst, |w| {
                (w & LOW < u64::from(n)).then_some((w & !LOW) | u64::from(n))
            });
        }
        Ticket(i)
    }

    /// Counts the waiter out of the word it came in on.
    pub(super) fn leave(&self, ticket: Ticket) {
        let _ = self.words[ticket.0].fetch_update(SeqCst, SeqCst, |w| {
            let left = (w >> 32).saturating_sub(1);
            Some(if left == 0 { 0 } else { (left << 32) | (w & LOW) })
        });
    }

    /// Never below the largest request still waiting.
    pub(super) fn largest(&self) -> u64 {
        self.words
            .iter()
            .map(|w| w.load(SeqCst) & LOW)
            .max()
            .unwrap_or(0)
    }

    /// Waiters now.
    pub(super) fn count(&self) -> u64 {
        self.words.iter().map(|w| w.load(SeqCst) >> 32).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};

    use super::Waiting;

    #[test]
    fn largest_covers_every_waiter_and_resets_when_they_leave() {
        let w = Waiting::default();
        assert_eq!((w.count(), w.largest()), (0, 0));
        let a = w.enter(3);
        let b = w.enter(1);
        assert_eq!((w.count(), w.largest()), (2, 3));
        w.leave(b);
        assert_eq!((w.count(), w.largest()), (1, 3));
        w.leave(a);
        assert_eq!((w.count(), w.largest()), (0, 0));
    }

    /// Waiters counted in on one thread and out on another (a task that moved between
    /// workers), from more threads than there are owned stripes, all at once: every
    /// count comes back to 0 and every largest request is reset.
    #[test]
    fn tickets_leave_from_other_threads() {
        let w = Arc::new(Waiting::default());
        let (tx, rx) = mpsc::channel();
        let enterers: Vec<_> = (0..12u32)
            .map(|t| {
                let (w, tx) = (w.clone(), tx.clone());
                std::thread::spawn(move || {
                    for k in 0..5_000u32 {
                        let ticket = w.enter(1 + (t + k) % 7);
                        assert!(w.largest() >= u64::from(1 + (t + k) % 7));
                        tx.send(ticket).expect("leaver alive");
                    }
                })
            })
            .collect();
        drop(tx);
        let leavers = {
            let w = w.clone();
            std::thread::spawn(move || {
                for ticket in rx {
                    w.leave(ticket);
                }
            })
        };
        for t in enterers {
            t.join().expect("enterer");
        }
        leavers.join().expect("leaver");
        assert_eq!((w.count(), w.largest()), (0, 0));
    }
}
