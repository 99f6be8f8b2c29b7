//! Test support shared by the otelconc crates.
//!
//! - [`TestTelemetry`]: SDK tracer and meter providers wired to in-memory exporters, so a
//!   test asserts telemetry from what an exporter received, not from internal counters.
//! - [`rotel`]: the real collector `rotel` on free loopback ports, with parsers for what
//!   it prints and a replayer for OTLP/JSON files.
//! - [`Rng`], [`Alive`] and [`settle`]: replayable randomness and a count of live values
//!   for the tests of cancellation and shutdown.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod logs;
mod memory;
pub mod rotel;
mod support;

pub use logs::{LoggedEvent, LoggedEvents, log_capture};
pub use memory::{
    BAGGAGE_KEY, BAGGAGE_VALUE, MetricsSnapshot, TestTelemetry, UNBOUND_VAR, UNSAMPLED_TRACE_ID,
    attr, seen_context,
};
pub use opentelemetry_sdk::trace::SpanData;
pub use rotel::{Rotel, RotelMetric, RotelSpan};
pub use support::{Alive, Rng, settle};
