//! Fan-out and fan-in: one input to N workers, many items through one function at
//! bounded concurrency, and many streams merged into one.
//!
//! | you want | use | like |
//! |---|---|---|
//! | N workers on one input, all results or the first error, cancel on error | [`fan_out`], [`FanOut::run`] | the seed's `FanOut` (errgroup) |
//! | `f` over many items, `concurrency` at a time, results in input order | [`fan_out_items`], [`FanOut::items`] | `futures`' `buffered` |
//! | the same, all results or the first error as soon as it happens (cancel on error) | [`fan_out_items`]`(..)?.`[`fail_fast`](FanOutItems::fail_fast)`().try_collect()` | errgroup over items |
//! | the same, results as they complete | [`fan_out_items_unordered`], [`FanOut::items_unordered`] | `buffer_unordered` |
//! | many streams merged into one | [`fan_in`], [`FanIn::builder`] | the seed's `FanIn`, `select_all` |
//!
//! What they fix: a concurrency of 0 is an error ([`ZeroConcurrency`]), not the hang of
//! `buffered(0)`; a panic in an item or worker is that item's error with its message;
//! `fan_out` returns every error, not only the first; dropping a fan-out stream cancels
//! its items and dropping a fan-in aborts its merge tasks, so nothing runs unowned.
//!
//! # Cost
//! `fan_out_items` is a stream adapter over `FuturesUnordered` (plus a reorder heap for
//! the ordered form), the same machinery as `buffered` / `buffer_unordered`: no task per
//! item. Per item it adds a panic guard (free unless a panic happens) and an increment of
//! a local count, flushed to the bound counter every 256 items and whenever the stream
//! waits, ends or is dropped: no timestamp, no allocation, no atomic. The caller's
//! context is checked once per call; outside a sampled trace the item future has no span
//! field at all. Inside one, each item gets a span (about 0.4 µs with the SDK).
//!
//! Measured with `otelconc bench fan` (1,000,000 trivial items, concurrency 64, 2-worker
//! runtime, ratios to the `futures` peer within one run; the shared machine moves them by
//! ±10% between runs):
//!
//! | case | otelconc, no SDK | otelconc, SDK metrics |
//! |---|---|---|
//! | unordered vs `buffer_unordered` | 0.60–1.12x | 0.81–1.08x |
//! | ordered vs `buffered` | 1.05–1.15x | 0.96–1.15x |
//! | unordered inside a sampled trace (SDK spans) | | 6.5x |
//! | `fan_in`, 4 inputs, vs a task per input into one `mpsc` | 1.0–1.1x | 1.03–1.24x |
//!
//! Instruction counts (callgrind, immune to the machine's load) put the unordered form at
//! about 100 instructions per item above `buffer_unordered`'s ~450, most of it the larger
//! `Result<R, ItemError<E>>` moved through the stream.
//!
//! `fan_out` spawns one task per worker through a [`TaskGroup`](crate::group::TaskGroup)
//! (see the `group` module's costs). `fan_in` moves each item through one bounded
//! `tokio::sync::mpsc` channel from its input's merge task, plus one bound counter add.
//!
//! # Telemetry
//! | what | kind | attributes |
//! |---|---|---|
//! | `otelconc.fan_out.items` | counter | `otelconc.name`, `otelconc.outcome` = `ok` \| `error` \| `panic` |
//! | `otelconc.fan_in.items` | counter | `otelconc.name`, `otelconc.fan_in.input` (bounded by the inputs passed) |
//! | `otelconc.fan_out` | span, child of the caller | `otelconc.name`, `otelconc.fan_out.workers` |
//! | `otelconc.fan_out.item` | span, child of the caller of `fan_out_items` | `otelconc.name`, `otelconc.fan_out.index` |
//! | `otelconc.fan_in.receive` | consumer span, linked to the producer; its child when the consumer is in no sampled trace | `otelconc.name`, `otelconc.fan_in.input` |
//!
//! `fan_out` workers run as tasks of a group named like the fan-out, so they are counted
//! by the `otelconc.group.tasks.*` metrics and traced as `otelconc.group.task` spans,
//! children of the `otelconc.fan_out` span.
//!
//! # Why hand-written
//! `futures`' `buffered` accepts 0 and hangs, lets a panic unwind through the consumer,
//! and has no hook for per-item telemetry; wrapping each future from outside would cost
//! an extra closure and context check per item. The adapters here are the same few lines
//! as `buffered`, with the guard and the counter inside.
//!
//! # Examples
//! ```
//! use futures::TryStreamExt;
//! use otelconc::fan::{fan_in, fan_out_items};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let pages: Vec<usize> = fan_out_items(["/a", "/bb", "/ccc"], 2, |path| async move {
//!     Ok::<_, String>(path.len()) // fetch(path).await in real code
//! })
//! .unwrap()
//! .try_collect()
//! .await
//! .unwrap();
//! assert_eq!(pages, [2, 3, 4]);
//! # let _ = fan_in::<futures::stream::Empty<u8>, u8>([]);
//! # }
//! ```

mod error;
mod fan_in;
mod items;
mod out;

pub use error::{ItemError, ZeroConcurrency};
pub use fan_in::{FanIn, FanInBuilder, Merged, Traced, fan_in};
pub use items::{FanOutItems, FanOutItemsUnordered};
pub use out::{FanOut, FanOutBuilder, fan_out, fan_out_items, fan_out_items_unordered};
