//! Observable async locks: [`Mutex`] and [`RwLock`].
//!
//! Use them where you would use `tokio::sync::Mutex` and `tokio::sync::RwLock` (state
//! shared by tasks and held across an `.await`) and want to see the lock in production:
//! how often calls find it taken, how long they wait, how long it is held, and which
//! guard has been held across a slow `.await` for how long. Lock contention is one of the
//! most common mysteries of async services, and tokio's locks show it only in
//! tokio-console under `tokio_unstable`.
//!
//! | call | what it does |
//! |---|---|
//! | [`Mutex::lock`], [`Mutex::lock_owned`] | wait (FIFO) for the lock, get a guard |
//! | [`Mutex::try_lock`], [`Mutex::try_lock_owned`] | take it now or fail |
//! | [`RwLock::read`], [`RwLock::write`] and their `_owned` forms | wait (FIFO) to read or to write |
//! | [`RwLock::try_read`], [`RwLock::try_write`] and their `_owned` forms | read or write now or fail |
//! | `map`, `try_map` on every guard, `downgrade` on write guards | narrow a guard to a part of the value, turn a write hold into a read hold |
//! | `get_mut`, `into_inner` | the value, without locking |
//!
//! # Semantics: tokio's
//! Both are tokio's locks underneath, held in an `Arc` (for the owned guards), so
//! their semantics are tokio's, unchanged:
//! - **Fair, FIFO.** Calls get the lock in the order they asked for it. A `try_` call
//!   does not overtake: it fails while calls are queued, even if the lock is free at
//!   that instant.
//! - **Write-preferring `RwLock`.** A read call queued behind a waiting write call waits
//!   for that writer, even while other readers hold the lock: readers cannot starve
//!   writers.
//! - **Cancelling a call loses its place in the queue, and nothing else.** Dropping a
//!   waiting `lock`/`read`/`write` future takes no lock and lets the calls behind it
//!   move up.
//! - **No poisoning.** A task that panics while holding a guard releases the lock.
//!
//! Built on tokio's fair locks rather than a hand-written one: their queue is proven and
//! cancel-safe, fairness is what an async service needs (no caller starves behind a
//! stream of others), and every call first tries tokio's `try_lock`/`try_read`/
//! `try_write`, which fails whenever calls are queued, so the fast path keeps the
//! fairness too. A call that fails it awaits tokio's own future.
//!
//! One difference from tokio's locks follows: a call that takes a free lock on the fast
//! path does not consume tokio's cooperative scheduling budget, so a task that loops on
//! an uncontended lock without any other await never yields to the scheduler on its own
//! account. Put a `tokio::task::yield_now().await` (or `consume_budget`) in such a loop.
//!
//! # Cost
//! In the run [`docs/costs.md`][costs] records (suite `lock`), on a shared 2-core
//! machine (tokio: 25 ns per uncontended call), an uncontended `lock` + unlock took
//! 0.51x tokio's time with no SDK and 0.65x with SDK metrics, a `read` 0.54x and 0.70x, a
//! `write` 0.54x and 0.70x (the `try_` fast path skips tokio's future); with 8 tasks
//! contending the `Mutex` took 0.99x and 1.06x, the `RwLock` 1.02x and 1.13x. Those
//! uncontended figures are for a call the compiler inlines into its caller: where it
//! does not, the guard (32 to 48 bytes, tokio's 8 to 24) comes back through memory,
//! which cost about 13 ns per call more in the bench.
//! With no SDK reading the metrics a call adds one predictable branch when it takes the
//! lock and one when the guard drops, and a call that waits one more per poll of
//! tokio's own future. With an SDK, taking the lock adds one counter add (a plain store
//! on the exclusive side, whose counts only the holder writes; a per-thread stripe on
//! the shared side) and so does the guard's drop; 1 in 16 holds also reads the CPU's
//! counter (`quanta`) twice and records a histogram, out of line. A call that finds
//! the lock taken counts its wait once as it starts and once as it ends, times it (1
//! in 16 waits) off the fast path, and builds a span only inside a sampled trace.
//!
//! # Telemetry
//! Per lock name and mode (`exclusive` for a `Mutex` and for writers, `shared` for
//! readers): acquisitions by outcome (`ok`, `refused` with `error.type = would_block`
//! for a `try_` call that found the lock taken, `cancelled` for a dropped wait, which is
//! not an error), contended acquisitions, sampled wait and hold durations, the calls
//! waiting now, and the age of the oldest hold still going
//! (`otelconc.lock.hold.oldest.age`), so a guard held across a slow `.await` shows.
//! That age costs the holds nothing: each collection leaves a mark (now, acquisitions so
//! far), and a later one that finds fewer releases than a mark counted knows a hold
//! older than the mark is still going. So a hold shows once it spans a collection, and
//! its age is exact to within one collection interval for a `Mutex` and for writers; for
//! readers it is a lower bound (other readers coming and going can hide an older one).
//! A call that waits inside a sampled trace gets an `otelconc.lock.wait` span, child of
//! the caller's context, ended with its outcome. Every instrument and span is in
//! [`docs/telemetry.md`][telemetry].
//!
//! # Examples
//! ```
//! use std::sync::Arc;
//! use otelconc::sync::RwLock;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let routes = Arc::new(RwLock::new("routes", vec!["/a"])?);
//! let reader = {
//!     let routes = routes.clone();
//!     tokio::spawn(async move { routes.read().await.len() })
//! };
//! routes.write().await.push("/b");
//! assert!(reader.await? >= 1);
//! assert_eq!(routes.read().await.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

// `mutex.rs` and `rwlock.rs`: the locks, their builders and guards; `lock.rs`: what
// both share (the builders' body, the guards' traits and `map`/`try_map` bodies, as
// macros both use); `metrics.rs`: the telemetry of one side of a lock (counts,
// timings, spans, the oldest hold); `error.rs`.
mod error;
#[macro_use]
mod lock;
mod metrics;
mod mutex;
mod rwlock;

pub use error::{BuildError, TryLockError};
pub use mutex::{
    MappedMutexGuard, Mutex, MutexBuilder, MutexGuard, OwnedMappedMutexGuard, OwnedMutexGuard,
};
pub use rwlock::{
    OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock,
    RwLockBuilder, RwLockMappedWriteGuard, RwLockReadGuard, RwLockWriteGuard,
};
