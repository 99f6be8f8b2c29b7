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
//! What they fix: a concurrency of 0 is an error ([`BuildError`]), not the hang of
//! `buffered(0)`; a panic in an item or worker is that item's error with its message;
//! `fan_out` returns every error, not only the first; dropping a fan-out stream cancels
//! its items and dropping a fan-in aborts its merge tasks, so nothing runs unowned.
//!
//! # Cost
//! An item of `fan_out_items` costs about what it costs in `futures`' `buffered` or
//! `buffer_unordered` (1.2-1.6x, with or without SDK metrics), a `fan_in` item about
//! 1.0-1.1x a task per input into one `mpsc`, and a `fan_out` worker what a
//! [`TaskGroup`](crate::group::TaskGroup) task costs; see [`docs/costs.md`][costs].
//!
//! `fan_out_items` is a stream adapter over `FuturesUnordered` (plus a reorder heap for
//! the ordered form), the same machinery as `buffered` / `buffer_unordered`: no task per
//! item. Per item it adds a panic guard (free unless a panic happens) and one plain
//! addition to a counter only that stream writes (read when metrics are collected): no
//! timestamp, no allocation, no atomic read-modify-write. The caller's context is read
//! once per call; with nothing to carry the item future has no span field at all. With
//! a context but outside a sampled trace, each item costs a context clone and runs
//! under it; inside one, each item gets a span. `fan_in` moves each item through one
//! bounded `tokio::sync::mpsc` channel from its input's merge task, plus one counter
//! add (and one small box when the item carries a context).
//!
//! # Telemetry
//! Items of `fan_out_items` by outcome (observable counters, read at collection: keep
//! a [`FanOut`] you build rather than building one per call, which would take its
//! counts with it; the free functions keep theirs; a panic carries `error.type =
//! panic`), and fan-in items, with the helper's name. Fan-in items carry no per-input
//! attribute by default ([`fan_in`], [`FanInBuilder::unnamed_input`]); inputs added
//! with [`FanInBuilder::input`] carry their name as `otelconc.fan_in.input`, on the
//! counter and on their items' spans: the opt-in, for a small fixed set of names.
//!
//! Work runs inside the trace of the code that handed it over: a `fan_out_items` item
//! and a `fan_out` worker under the caller's context at the call, a fan-in item under
//! its producer's ([`Traced`], [`FanInBuilder::input`]), whenever that context holds a
//! valid span context, sampled or not, or baggage. So spans the work starts stay in
//! that trace and its logs carry its trace id and baggage. Inside a sampled trace,
//! `fan_out` runs in an `otelconc.fan_out` span whose workers are the
//! `otelconc.group.task` spans of a group named like the fan-out (and counted by its
//! `otelconc.group.task.*` metrics), each item of `fan_out_items` gets an
//! `otelconc.fan_out.item` span (a child of the caller's context), and an item a
//! fan-in merged gets an `otelconc.fan_in.receive` span by the consumer rule (a child
//! of the consumer's sampled span if it has one, else of the producer's context, linked
//! to the producer). A failed item or worker ends its span with status Error and
//! `error.type` (the error's type name, or `panic`); an item cancelled by `fail_fast` or
//! a dropped stream ends it with status Unset and `otelconc.outcome = cancelled`. Every
//! instrument and span is in [`docs/telemetry.md`][telemetry].
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
//!
//! [telemetry]: https://example.invalid/otelconc/blob/main/docs/telemetry.md
//! [costs]: https://example.invalid/otelconc/blob/main/docs/costs.md

mod carrier;
mod error;
mod fan_in;
mod fan_out;
mod items;
mod metrics;
mod state;

pub use crate::channel::Received;
pub use carrier::Traced;
pub use error::{BuildError, ItemError};
pub use fan_in::{FanIn, FanInBuilder, fan_in};
pub use fan_out::{FanOut, FanOutBuilder, fan_out, fan_out_items, fan_out_items_unordered};
pub use items::{FanOutItems, FanOutItemsUnordered};
