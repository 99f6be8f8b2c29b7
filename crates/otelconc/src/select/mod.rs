//! Wait on several channels at once: the first message of any ([`first`]), one message
//! from each ([`all`], with forms that stop at a timeout or a [`CancellationToken`]).
//!
//! Use these when the set of channels is only known at run time (a `Vec` of
//! receivers); for a fixed set, `tokio::select!` is simpler and these docs show how to
//! use the channel in it safely (see also [`crate::channel`]):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! let (tx_a, rx_a) = otelconc::channel::bounded::<u32>("a", 4);
//! let (_tx_b, rx_b) = otelconc::channel::bounded::<u32>("b", 4);
//! tx_a.send(1).await.unwrap();
//! // `recv` is cancel safe: the losing branch takes nothing.
//! let got = tokio::select! {
//!     Ok(v) = rx_a.recv() => v,
//!     Ok(v) = rx_b.recv() => v,
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => 0,
//! };
//! assert_eq!(got, 1);
//! // To send under select!, reserve a slot first (cancel safe), then send into it;
//! // a plain `send` that loses the race drops its message.
//! tokio::select! {
//!     permit = tx_a.reserve() => permit.unwrap().send(2).unwrap(),
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => {}
//! }
//! # });
//! ```
//!
//! # Cancel safety
//! [`first`] is cancel safe: each input is read with the cancel-safe
//! [`Receiver::recv`], and only the winning input's message is taken. So it needs no
//! timeout or cancellation variant: wrap it in `tokio::time::timeout` or race it in
//! `tokio::select!` (its docs show both). [`all`] is not cancel safe: it takes messages
//! as they arrive, and dropping its future drops the messages already taken. That is
//! why it has [`all_timeout`] and [`all_cancellable`]: when they stop early (a closed
//! input, the timeout, the token) the error hands back every message already taken
//! ([`AllError::into_received`]).
//!
//! # Fairness and inputs
//! Inputs are borrowed, never mutated or reordered. [`first`] polls them starting at an
//! index that rotates with each call (per thread) so that a busy first input cannot
//! starve the others. [`all`] returns the values in input order.
//!
//! # Cost and telemetry
//! One boxed receive future per input per call. The helpers emit no telemetry of
//! their own: the channels they read count and trace every message (a message taken by
//! [`first`] or [`all`] is received as by [`Receiver::recv`]).
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken
//! [`Receiver::recv`]: crate::channel::Receiver::recv

mod all;
mod first;
mod recv;

pub use all::{AllError, all, all_cancellable, all_timeout};
pub use first::{FirstError, Selected, first};
