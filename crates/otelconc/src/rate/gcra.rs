//! The lock-free token bucket: GCRA ("theoretical arrival time") in one atomic word.
//!
//! The word holds the theoretical arrival time (`tat`, nanoseconds since the limiter's
//! epoch) in its upper 60 bits and a 4-bit generation in its lower bits. The rate and
//! burst live in one of 16 parameter slots, chosen by the generation. A decision loads
//! the word, then the slot of its generation, and commits with a compare-and-swap on
//! the word; so a decision that succeeds was made with the parameters that belong to
//! the word it replaced. A rate change writes the *next* slot first and then moves the
//! word to the next generation (converting `tat`), so a racing decision either sees the
//! old word with the old slot or fails its CAS and retries. A slot is rewritten only 16
//! generations later; a reader that loaded it so long ago fails its CAS unless the word
//! came back to the very same value (same time, same generation), in which case the
//! slot holds that generation's current parameters anyway.
//!
//! Without waiters the bucket holds `(now + tau - max(tat, now)) / period` tokens, where
//! `tau = burst * period`; a grant of `n` moves `tat` to `max(tat, now) + n * period`
//! when that stays within `now + tau`. Reservations (waiters) push `tat` beyond
//! `now + tau`: the bucket is then in debt and every non-blocking attempt fails until
//! the debt is paid, which keeps waiters first in line (FIFO).

use std::sync::atomic::{AtomicU64, Ordering};

const GEN_BITS: u32 = 4;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const SLOTS: usize = 1 << GEN_BITS;
/// Largest time the word can hold: 2^60 ns, about 36 years after the limiter's epoch.
pub(crate) const MAX_NS: u64 = (1 << (64 - GEN_BITS)) - 1;
/// Largest `burst * period`: 2^54 ns, about 208 days.
pub(crate) const MAX_TAU: u64 = 1 << 54;

/// Rate and burst, as the hot path uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// Nanoseconds per token; 0 means unlimited.
    pub(crate) period: u64,
    /// Bucket capacity in tokens (at least 1).
    pub(crate) burst: u64,
}

impl Params {
    #[inline]
    fn tau(self) -> u64 {
        self.period * self.burst
    }
}

#[derive(Debug, Default)]
struct Slot {
    period: AtomicU64,
    burst: AtomicU64,
}

/// What a non-blocking attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Granted.
    Granted,
    /// Not enough tokens; they will be there in this many nanoseconds (if nothing else
    /// takes them first).
    Wait(u64),
    /// More tokens asked for than the burst (the burst is given).
    ExceedsBurst(u64),
}

/// The word, alone on its cache line: under contention it moves between cores, while
/// the parameter slots stay shared (read-only) in every core's cache.
#[derive(Debug)]
#[repr(align(64))]
struct Word(AtomicU64);

impl std::ops::Deref for Word {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// The bucket state.
#[derive(Debug)]
pub(crate) struct Gcra {
    word: Word,
    slots: [Slot; SLOTS],
}

#[inline]
fn pack(tat: u64, generation: u64) -> u64 {
    (tat.min(MAX_NS) << GEN_BITS) | (generation & GEN_MASK)
}

#[inline]
fn unpack(word: u64) -> (u64, u64) {
    (word >> GEN_BITS, word & GEN_MASK)
}

impl Gcra {
    /// A full bucket with `params`.
    pub(crate) fn new(params: Params) -> Self {
        let g = Self {
            word: Word(AtomicU64::new(pack(0, 0))),
            slots: Default::default(),
        };
        g.slots[0].period.store(params.period, Ordering::Relaxed);
        g.slots[0].burst.store(params.burst, Ordering::Relaxed);
        g
    }

    #[inline]
    fn params_of(&self, generation: u64) -> Params {
        let s = &self.slots[(generation & GEN_MASK) as usize];
        Params {
            period: s.period.load(Ordering::Acquire),
            burst: s.burst.load(Ordering::Acquire),
        }
    }

    /// Takes `n` tokens if the bucket holds them at `now()`. The clock is read only
    /// when the rate is limited.
    #[inline]
    pub(crate) fn try_take(&self, n: u64, now: impl FnOnce() -> u64) -> Take {
        if n == 0 {
            return Take::Granted;
        }
        let mut word = self.word.load(Ordering::Acquire);
        let (_, generation) = unpack(word);
        let mut p = self.params_of(generation);
        if p.period == 0 {
            return if n <= p.burst {
                Take::Granted
            } else {
                Take::ExceedsBurst(p.burst)
            };
        }
        let now = now();
        // Reload after the clock read: the shorter the span from load to CAS, the fewer
        // CAS failures when several threads take at once.
        word = self.word.load(Ordering::Acquire);
        p = self.params_of(unpack(word).1);
        loop {
            if p.period == 0 {
                return if n <= p.burst {
                    Take::Granted
                } else {
                    Take::ExceedsBurst(p.burst)
                };
            }
            if n > p.burst {
                return Take::ExceedsBurst(p.burst);
            }
            let (tat, generation) = unpack(word);
            let tau = p.tau();
            let new = tat.max(now) + n * p.period;
            let limit = now + tau;
            if new > limit {
                return Take::Wait(new - limit);
            }
            match self.word.compare_exchange_weak(
                word,
                pack(new, generation),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Take::Granted,
                Err(current) => {
                    word = current;
                    p = self.params_of(unpack(current).1);
                }
            }
        }
    }

    /// Takes `n` tokens at `now` even into debt, and returns the time (ns since epoch)
    /// at which the grant is due (`now` when the tokens were there) and the word it
    /// wrote. Callers serialize reservations (and rate changes) with the wait-list lock.
    pub(crate) fn reserve(&self, n: u64, now: u64) -> Result<(u64, u64), u64> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let (tat, generation) = unpack(word);
            let p = self.params_of(generation);
            if n > p.burst {
                return Err(p.burst);
            }
            if p.period == 0 || n == 0 {
                return Ok((now, word));
            }
            let new = (tat.max(now) + n * p.period).min(MAX_NS);
            let packed = pack(new, generation);
            match self
                .word
                .compare_exchange_weak(word, packed, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok((new.saturating_sub(p.tau()).max(now), packed)),
                Err(current) => word = current,
            }
        }
    }

    /// Gives back the `n` tokens of a reservation still due at `due` (> `now`). Returns
    /// how far (ns) the reservations made after it move earlier, or `None` when nothing
    /// was given back (the reservation was already due: its time has passed).
    pub(crate) fn give_back(&self, n: u64, due: u64, now: u64) -> Option<u64> {
        if due <= now {
            return None;
        }
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let (tat, generation) = unpack(word);
            let p = self.params_of(generation);
            if p.period == 0 {
                return None;
            }
            // While a reservation is not yet due the bucket has been in debt since it
            // was made, so no grant clamped `tat` to the clock: taking its share off is
            // exactly the state without it.
            let back = n * p.period;
            match self.word.compare_exchange_weak(
                word,
                pack(tat.saturating_sub(back), generation),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(back),
                Err(current) => word = current,
            }
        }
    }

    /// Undoes a reservation of `n` that left the bucket at `word`, if nothing has
    /// touched the bucket since (then the state without it is exactly `n` tokens more).
    pub(crate) fn undo(&self, n: u64, word: u64) -> Option<u64> {
        let (tat, generation) = unpack(word);
        let p = self.params_of(generation);
        if p.period == 0 || n == 0 {
            return None;
        }
        let back = n * p.period;
        self.word
            .compare_exchange(
                word,
                pack(tat.saturating_sub(back), generation),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()
            .map(|_| back)
    }

    /// Switches to `new` at `now`, keeping the number of tokens in the bucket (capped
    /// at the new burst; a full bucket when leaving "unlimited"). Returns the old
    /// parameters. Callers serialize changes with the wait-list lock.
    pub(crate) fn set_params(&self, new: Params, now: u64) -> Params {
        let mut word = self.word.load(Ordering::Acquire);
        let (_, generation) = unpack(word);
        let next = (generation + 1) & GEN_MASK;
        let slot = &self.slots[next as usize];
        slot.period.store(new.period, Ordering::Release);
        slot.burst.store(new.burst, Ordering::Release);
        loop {
            let (tat, generation) = unpack(word);
            let old = self.params_of(generation);
            let new_tat = convert(tat, old, new, now);
            match self.word.compare_exchange_weak(
                word,
                pack(new_tat, generation + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return old,
                Err(current) => word = current,
            }
        }
    }

    /// Tokens in the bucket at `now` (negative while in debt); infinite when unlimited.
    pub(crate) fn tokens(&self, now: u64) -> f64 {
        let (tat, generation) = unpack(self.word.load(Ordering::Acquire));
        let p = self.params_of(generation);
        if p.period == 0 {
            return f64::INFINITY;
        }
        let avail = i128::from(now) + i128::from(p.tau()) - i128::from(tat.max(now));
        avail as f64 / p.period as f64
    }
}

/// `tat` under `old` re-expressed under `new` at `now`, keeping the tokens.
fn convert(tat: u64, old: Params, new: Params, now: u64) -> u64 {
    if new.period == 0 {
        return 0;
    }
    if old.period == 0 {
        return now; // a full bucket
    }
    // Nanoseconds of tokens available (negative: debt) under the old period...
    let avail = i128::from(now) + i128::from(old.tau()) - i128::from(tat.max(now));
    // ...scaled to the new period (floor: a rounding never adds a token), capped at the
    // new burst.
    let scaled = (avail * i128::from(new.period)).div_euclid(i128::from(old.period));
    let scaled = scaled.min(i128::from(new.tau()));
    let t = i128::from(now) + i128::from(new.tau()) - scaled;
    t.clamp(0, i128::from(MAX_NS)) as u64
}

/// A waiter's due time under `old`, re-expressed under `new` at `now`.
pub(crate) fn convert_due(due: u64, old: Params, new: Params, now: u64) -> u64 {
    if due <= now || new.period == 0 || old.period == 0 {
        return due.min(now);
    }
    let ahead = i128::from(due - now) * i128::from(new.period);
    let ahead = (ahead + i128::from(old.period) - 1) / i128::from(old.period);
    (i128::from(now) + ahead).min(i128::from(MAX_NS)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(period: u64, burst: u64) -> Params {
        Params { period, burst }
    }

    #[test]
    fn full_bucket_then_one_per_period() {
        let g = Gcra::new(p(10, 3));
        for _ in 0..3 {
            assert_eq!(g.try_take(1, || 0), Take::Granted);
        }
        assert_eq!(g.try_take(1, || 0), Take::Wait(10));
        assert_eq!(g.try_take(1, || 9), Take::Wait(1));
        assert_eq!(g.try_take(1, || 10), Take::Granted);
        assert_eq!(g.try_take(4, || 10), Take::ExceedsBurst(3));
        assert!((g.tokens(10) - 0.0).abs() < 1e-9);
        assert!((g.tokens(1_000) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn reservation_debt_and_give_back() {
        let g = Gcra::new(p(10, 2));
        assert_eq!(g.reserve(2, 0).map(|r| r.0), Ok(0));
        assert_eq!(g.reserve(2, 0).map(|r| r.0), Ok(20));
        let (due, word) = g.reserve(1, 0).unwrap();
        assert_eq!(due, 30);
        assert_eq!(g.undo(1, word), Some(10));
        assert_eq!(g.undo(1, word), None);
        assert_eq!(g.reserve(1, 0).map(|r| r.0), Ok(30));
        assert!((g.tokens(0) + 3.0).abs() < 1e-9);
        assert_eq!(g.try_take(1, || 25), Take::Wait(15));
        assert_eq!(g.give_back(2, 20, 5), Some(20));
        assert!((g.tokens(5) + 0.5).abs() < 1e-9);
        assert_eq!(g.give_back(1, 10, 10), None);
    }

    #[test]
    fn rate_change_keeps_tokens() {
        let g = Gcra::new(p(10, 4));
        assert_eq!(g.try_take(2, || 0), Take::Granted);
        g.set_params(p(100, 4), 0);
        assert!((g.tokens(0) - 2.0).abs() < 1e-9);
        g.set_params(p(100, 1), 0);
        assert!((g.tokens(0) - 1.0).abs() < 1e-9);
        g.set_params(p(0, 1), 0);
        assert_eq!(g.try_take(1, || 0), Take::Granted);
        g.set_params(p(10, 5), 0);
        assert!((g.tokens(0) - 5.0).abs() < 1e-9);
        assert_eq!(convert_due(100, p(10, 1), p(1, 1), 50), 55);
    }
}
