//! A token-bucket rate limiter: [`RateLimiter`].
//!
//! Use it when something must not happen more often than a rate: calls to an API with
//! a quota, writes to a dependency that sheds load, log lines from a hot loop. The
//! bucket holds up to `burst` tokens and refills at `rate` tokens per second; the two
//! make a [`Quota`], checked when it is made
//! (`Rate::per_second(50).burst(10)?`, [`Rate::every`], or [`Rate::Unlimited`]), so
//! building a limiter from it cannot fail. Every call takes `n` tokens. The bucket
//! starts full. To bound how many things run *at once* rather than how often they
//! start, use [`crate::semaphore`].
//!
//! | call | what it does | Go `x/time/rate` |
//! |---|---|---|
//! | [`try_acquire`](RateLimiter::try_acquire), [`try_acquire_many`](RateLimiter::try_acquire_many) | take now or fail, never wait | `Allow`, `AllowN` |
//! | [`acquire`](RateLimiter::acquire), [`acquire_many`](RateLimiter::acquire_many) | wait for the tokens (cancel safe) | `Wait`, `WaitN` |
//! | [`reserve`](RateLimiter::reserve), [`reserve_many`](RateLimiter::reserve_many) | take now, act after [`Reservation::delay`], or [`Reservation::cancel`]; the [`Reservation`] can move to another task | `Reserve`, `ReserveN` |
//! | [`execute`](RateLimiter::execute) | wait, then run a future | |
//! | [`set_rate`](RateLimiter::set_rate), [`set_burst`](RateLimiter::set_burst) | change the quota at runtime; waiters are re-timed at once | `SetLimit`, `SetBurst` |
//! | [`tokens`](RateLimiter::tokens), [`rate`](RateLimiter::rate), [`burst`](RateLimiter::burst) | introspection | `Tokens`, `Limit`, `Burst` |
//!
//! # Semantics
//! - **Exact counts.** Over any window of `t` seconds at most `burst + rate * t`
//!   tokens are granted; a bucket left idle refills to `burst`, never beyond, however
//!   long it idled and whatever rate changes happened meanwhile. A property test
//!   checks this over every window of random operation sequences.
//! - **Asking for more than the burst** fails at once with [`ExceedsBurst`] (or
//!   [`TryAcquireError::ExceedsBurst`]) instead of waiting forever. `acquire` and
//!   `acquire_many` return the same `Result<(), ExceedsBurst>`; for `acquire` it is
//!   always `Ok`, since the burst is at least 1.
//! - **FIFO waiters.** A wait or reservation takes its tokens at once, into debt, and
//!   is due when the debt ahead of it is repaid. While anyone is waiting the bucket is
//!   in debt, so `try_acquire` cannot jump the queue.
//! - **Cancellation gives tokens back.** Dropping an [`acquire`](RateLimiter::acquire)
//!   future (or a [`Reservation::wait`]) before it completes returns its tokens, and
//!   every wait queued behind it moves up. Tokens whose due time has already passed
//!   are not returned (the time they stood for is gone), as in Go.
//! - **Runtime changes.** [`set_rate`](RateLimiter::set_rate) keeps the tokens in the
//!   bucket (or the debt, in tokens) and re-times every pending wait at the new rate:
//!   raising the rate wakes waiters earlier, lowering it later, going to
//!   [`Rate::Unlimited`] releases all of them. [`set_burst`](RateLimiter::set_burst)
//!   caps the tokens at the new burst and leaves waits alone.
//! - **Time.** [`Clock::monotonic`] (the default) reads the CPU's counter through
//!   `quanta`, as governor does; [`Clock::tokio`] follows `tokio::time::pause()`, for
//!   exact tests. The rate is applied as a whole number of nanoseconds per token, so
//!   rates up to 1e9/s are accepted; NaN, infinite (other than [`Rate::Unlimited`]),
//!   zero and negative rates and a zero burst are refused when the [`Quota`] is made,
//!   and by [`set_rate`](RateLimiter::set_rate)/[`set_burst`](RateLimiter::set_burst)
//!   ([`BuildError`]).
//!
//! # Why hand-written
//! governor is the reference Rust limiter and its `check()` is the baseline below, but
//! it fixes the quota at construction (no `set_rate`/`set_burst`), has no reservations
//! (take now, act later, or cancel and give back) and no waiting queue whose waits a
//! rate change re-times. So the bucket here is written by hand, in governor's own
//! style: GCRA, one "theoretical arrival time" in one `AtomicU64`, updated by
//! compare-and-swap, so [`try_acquire`](RateLimiter::try_acquire) takes no lock. To let
//! the rate change without a lock on the hot path, the word also carries a 4-bit
//! generation that picks one of 16 parameter slots: a change writes the next slot, then
//! moves the word to the next generation, so a decision always pairs the word with the
//! parameters it was made under, or fails its CAS and retries. Waits, reservations and
//! rate changes (the slow paths) take a mutex over the wait list, which the hot path
//! never touches. A threaded stress test checks the lock-free state under concurrent
//! rate changes (the generation wraps many times), and the property test checks the
//! whole limiter under tokio's paused clock.
//!
//! # Cost
//! A `try_acquire` costs about what governor's `check()` costs (0.85-1.08x, with or
//! without SDK metrics, granted or denied, from one task or two); see
//! [`docs/costs.md`][costs]. The hot path is one clock read,
//! one load of the word and its parameter slot, one CAS and one counter add on a
//! per-thread stripe (plain stores, no locked instruction): no lock, no allocation, no
//! span, no SDK call.
//!
//! # Telemetry
//! With the limiter's name: calls (`otelconc.rate.acquisitions`) and the tokens they
//! asked for (`otelconc.rate.tokens`), each by outcome (`ok`; `refused` with
//! `error.type` = `rate_limited` or `exceeds_burst`; `cancelled`), counted once per call
//! when it settles, by observable counters that sum the stripes; the calls that waited
//! (`otelconc.rate.contended`), so the share of calls that waited or were refused is a
//! ratio of two counters; a histogram of every wait by outcome
//! (`otelconc.rate.wait.duration`); and, read when metrics are collected, the levels as
//! observable up-down counters: waiters (`otelconc.rate.waiter.count`), tokens in the
//! bucket (`otelconc.rate.token.count`), the burst (`otelconc.rate.token.limit`) and the
//! rate in tokens per second (`otelconc.rate.limit`; neither the tokens nor the rate is
//! reported while the rate is unlimited). A call that waits inside a sampled trace gets
//! an `otelconc.rate.wait` span. Every instrument and span is in
//! [`docs/telemetry.md`][telemetry].
//!
//! # Examples
//! ```
//! use otelconc::rate::{Rate, RateLimiter};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::new("search-api", Rate::per_second(50).burst(10)?);
//! limiter.acquire().await?; // waits only when the bucket is empty
//! if limiter.try_acquire().is_err() {
//!     // shed this request instead of queueing it
//! }
//! limiter.set_rate(Rate::per_second(20))?; // the quota was lowered upstream
//! # Ok(())
//! # }
//! ```
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod clock;
mod error;
mod gcra;
mod limiter;
mod metrics;
mod quota;
mod reservation;
mod state;

pub use clock::Clock;
pub use error::{BuildError, ExceedsBurst, RateLimited, TryAcquireError};
pub use limiter::{Builder, RateLimiter};
pub use quota::{Quota, Rate};
pub use reservation::Reservation;
