//! A weighted semaphore: [`Semaphore`].
//!
//! Use it to bound how much of something is in use at once, when uses differ in size:
//! megabytes of request bodies in memory, connections of a pool shared by jobs that
//! need several, CPU-heavy tasks weighted by cost. Each caller takes one permit or `n`
//! and gives them back when its guard drops. (To bound how *often* things happen, use
//! [`crate::rate`].) This is Go's `golang.org/x/sync/semaphore`, which the seed
//! promised and never wrote, with owned guards, runtime resizing and telemetry.
//!
//! | call | what it does |
//! |---|---|
//! | [`acquire`](Semaphore::acquire), [`acquire_many(n)`](Semaphore::acquire_many) | wait for 1 or `n` permits, get a guard |
//! | [`acquire_owned`](Semaphore::acquire_owned), [`acquire_many_owned(n)`](Semaphore::acquire_many_owned) | the same, with a `'static` guard |
//! | [`try_acquire`](Semaphore::try_acquire), [`try_acquire_many(n)`](Semaphore::try_acquire_many) | take 1 or `n` now or fail |
//! | [`try_acquire_owned`](Semaphore::try_acquire_owned), [`try_acquire_many_owned(n)`](Semaphore::try_acquire_many_owned) | the same, with a `'static` guard |
//! | [`add_permits`](Semaphore::add_permits), [`forget_permits`](Semaphore::forget_permits), [`SemaphorePermit::forget`] | resize at runtime |
//! | [`available_permits`](Semaphore::available_permits), [`total_permits`](Semaphore::total_permits) | introspection |
//!
//! # Semantics
//! - **FIFO, whatever the weight.** Waiters are served strictly in arrival order. A
//!   large request at the head of the queue holds back smaller ones behind it even when
//!   they would fit, as in Go: large requests never starve, at the cost of some idle
//!   permits while the head waits. `try_acquire` does not jump the queue either.
//! - **Impossible requests fail at once.** `n` above the total returns
//!   [`ExceedsTotal`] immediately instead of hanging.
//! - **Resizing never strands a waiter.** [`add_permits`](Semaphore::add_permits) grows
//!   the total; [`forget_permits`](Semaphore::forget_permits) and
//!   [`SemaphorePermit::forget`] shrink it, but never below the largest request still
//!   waiting, so a waiter can always eventually be served. (While calls keep waiting, a
//!   shrink may keep a little more: up to the largest request made since a shrink last
//!   found nobody waiting.)
//! - **Cancelling a call loses its place in the queue, and nothing else.** Dropping an
//!   `acquire` future takes no permits, returns any that were set aside for it, and
//!   lets the waiters behind it move up.
//! - A semaphore with 0 permits is refused at construction ([`BuildError`]); growing
//!   the total past `u32::MAX` is refused ([`TooManyPermits`]).
//!
//! # What is hand-written
//! The queue is `tokio::sync::Semaphore`'s: FIFO, weighted through `acquire_many`, and
//! cancel-safe. This module adds what it lacks: a known total (tokio does not track
//! one, so `acquire_many(n)` above it waits forever), the non-stranding shrink, guards
//! over a shared handle, and the telemetry. For the shrink, a waiter announces itself
//! before it reads the total and a shrink lowers the total before it reads the
//! announcements, both `SeqCst`, so one of them always sees the other. Announcements
//! are per-thread counts, each written by its thread alone (a store, no
//! read-modify-write), plus one bound on the requests that is only written when it
//! must grow: a wait writes no cache line another core writes too.
//!
//! # Cost
//! An uncontended `try_acquire` + release costs about 0.5x `tokio::sync::Semaphore`'s,
//! and a contended acquire about 1.0-1.1x with no SDK and 1.1-1.2x with SDK metrics; see
//! [`docs/costs.md`][costs]. An acquire that does not wait adds one counter add on a
//! per-thread stripe (no locked instruction). A wait adds a `SeqCst` store to a
//! per-thread count when it starts and a plain one when it ends (the announcement for
//! shrinking, above), and, when an SDK reads the metrics, two reads of the CPU's counter
//! (`quanta`) and one histogram record; a span only inside a sampled trace. Tokio's
//! acquire future is polled once per wake-up, as a plain `.await` of it would be: a
//! queued acquire takes the semaphore's queue lock on every poll.
//!
//! # Telemetry
//! With the semaphore's name: calls (`otelconc.semaphore.acquisitions`) and the permits
//! they asked for (`otelconc.semaphore.permits`), each by outcome (`ok`; `refused` with
//! `error.type` = `would_block` or `exceeds_total`; `cancelled`), counted once per call
//! when it ends; the calls that waited (`otelconc.semaphore.contended`), so the share of
//! calls that waited or were refused is a ratio of two counters; a histogram of every
//! wait by outcome (`otelconc.semaphore.wait.duration`); and, read when metrics are
//! collected, the levels as observable up-down counters: waiters
//! (`otelconc.semaphore.waiter.count`), permits by state `free` / `used`
//! (`otelconc.semaphore.permit.count`) and the total (`otelconc.semaphore.permit.limit`).
//! A call that waits inside a sampled trace gets an `otelconc.semaphore.wait` span.
//! Every instrument and span is in [`docs/telemetry.md`][telemetry].
//!
//! # Examples
//! ```
//! use otelconc::semaphore::Semaphore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cpu = Semaphore::new("transcode", 8)?;
//! let heavy = cpu.acquire_many_owned(6).await?; // a 4K job weighs 6
//! tokio::spawn(async move {
//!     let _permit = heavy; // given back when the task ends
//! })
//! .await?;
//! assert_eq!(cpu.available_permits(), 8);
//! # Ok(())
//! # }
//! ```
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

// `sem.rs`: `Semaphore` and its `Builder`; `permit.rs`: the guards; `state.rs`: the
// `Shared` state behind them (the permits, the total, taking and shrinking);
// `waiting.rs`: who waits, for shrinking; `metrics.rs`: the telemetry; `error.rs`.
mod error;
mod metrics;
mod permit;
mod sem;
mod state;
mod waiting;

pub use error::{BuildError, ExceedsTotal, TooManyPermits, TryAcquireError};
pub use permit::{OwnedSemaphorePermit, SemaphorePermit};
pub use sem::{Builder, Semaphore};
