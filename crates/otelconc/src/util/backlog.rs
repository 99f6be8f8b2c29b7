//! The age of the oldest item still in a FIFO queue, from what a collection reads: no
//! timestamp per item, nothing on the hot path.
//!
//! A queue counts the items that entered it (after each push) and knows how many it holds.
//! Items leave in the order they entered, so the oldest one still queued is item number
//! `entered - queued` (0-based). Each reading leaves a *mark*: its instant and the
//! `entered` count then. An item with a number below a mark's count had entered by that
//! mark's instant, so the oldest item has been queued at least since the first mark
//! whose count is above its number. [`Backlog::oldest_age`] reports that lower bound;
//! the item entered after the mark before it, so the bound is short of the true age by
//! less than the time between two readings (one collection interval). Marks the oldest
//! item has passed are dropped, and a mark is left only while items are queued and more
//! have entered since the last one: with a stuck queue and steady traffic the marks grow
//! by one per collection, and past [`MARKS`] every second one is dropped, which widens
//! the bound to two intervals for backlogs that old.
//!
//! The queues count an item after pushing it, so a reading taken between the push and
//! the count sees one item more queued than entered: it then takes the item just taken
//! out for the oldest one, and reports that one's age for this one reading.
//!
//! Written by hand: it is a few lines over the counts each queue already keeps.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::time::Instant;

use super::Now;
use super::sync::lock;

/// Marks kept at most (see the module docs).
pub(crate) const MARKS: usize = 1024;

/// The marks of one queue.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    marks: Mutex<VecDeque<(Instant, u64)>>,
    /// The clock the readings take (see [`Now`]).
    clock: Now,
}

impl Backlog {
    /// Seconds the oldest item of the queue has waited, at least (0 when it is empty),
    /// given the items that ever `entered` it and the `queued` ones in it now; leaves a
    /// mark for the readings to come.
    pub(crate) fn oldest_age(&self, entered: u64, queued: u64) -> f64 {
        let now = self.clock.now();
        let oldest = entered.saturating_sub(queued);
        let mut marks = lock(&self.marks);
        while marks.front().is_some_and(|&(_, n)| n <= oldest) {
            marks.pop_front();
        }
        let age = match marks.front() {
            Some(&(at, _)) if queued > 0 => now.saturating_duration_since(at).as_secs_f64(),
            _ => 0.0,
        };
        if queued > 0 && marks.back().is_none_or(|&(_, n)| entered > n) {
            if marks.len() >= MARKS {
                let mut i = 0;
                marks.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
            }
            marks.push_back((now, entered));
        }
        age
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backlog;

    async fn advance(s: u64) {
        tokio::time::advance(Duration::from_secs(s)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_item_shows_from_the_first_reading_after_it_entered() {
        let b = Backlog::default();
        // Empty queue.
        assert_eq!(b.oldest_age(0, 0), 0.0);
        advance(1).await;
        // Items 0..3 entered since the last reading: no mark before them yet.
        assert_eq!(b.oldest_age(3, 3), 0.0);
        advance(10).await;
        // Items 3, 4 entered; items 0 and 1 left. Item 2 is the oldest: it entered before
        // the mark of 10 s ago.
        assert_eq!(b.oldest_age(5, 3), 10.0);
        advance(5).await;
        // Item 3 is the oldest now: it entered after the first mark and before the
        // second one, 5 s ago.
        assert_eq!(b.oldest_age(5, 2), 5.0);
        advance(5).await;
        // Nothing entered since; still item 3.
        assert_eq!(b.oldest_age(5, 2), 10.0);
        // Drained: 0, and no mark is left.
        assert_eq!(b.oldest_age(5, 0), 0.0);
        advance(7).await;
        assert_eq!(b.oldest_age(6, 1), 0.0);
        advance(2).await;
        assert_eq!(b.oldest_age(6, 1), 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_backlog_keeps_its_oldest_mark() {
        let b = Backlog::default();
        assert_eq!(b.oldest_age(1, 1), 0.0);
        for i in 0..3 * super::MARKS as u64 {
            advance(1).await;
            // Item 0 stays queued while one more item enters every second.
            let age = b.oldest_age(i + 2, i + 2);
            assert_eq!(age, (i + 1) as f64);
        }
        assert!(super::MARKS >= b.marks.lock().map(|m| m.len()).unwrap_or(0));
    }
}
