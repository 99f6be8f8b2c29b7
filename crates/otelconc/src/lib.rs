//! Concurrency building blocks for tokio services, with OpenTelemetry traces and
//! metrics built in.
//!
//! Use otelconc if you want tokio-style channels, a worker pool, pipelines, fan-out and
//! fan-in, task groups, a rate limiter and a weighted semaphore whose telemetry is already
//! right: metrics with bounded cardinality and second-based latencies, and traces that
//! follow each message, job or item across every boundary instead of stopping at the
//! queue.
//!
//! The crate depends on the `opentelemetry` API crate only. A program installs an SDK to
//! export anything, for example with the `otelconc-setup` crate (SDK providers from the
//! standard `OTEL_*` environment, OTLP or local OTLP/JSON files); without one, every
//! instrument is a no-op and the primitives cost what their uninstrumented peers cost.
//!
//! | module | what it is |
//! |---|---|
//! | [`channel`] | bounded and unbounded MPMC channels; messages carry their producer's trace |
//! | [`select`] | first-of-N, all-of-N and timeouts over channels, cancellable by drop or token |
//! | [`pool`] | a resizable worker pool: async jobs, panic isolation, timeouts, shutdown with a report |
//! | [`pipeline`] | streaming pipelines of named stages (own concurrency, bounded buffers, ordered or not, per-item traces), sequential chains and parallel chains |
//! | [`fan`] | fan-out (one input to N workers, many items at bounded concurrency) and fan-in (many streams into one) |
//! | [`group`] | [`group::TaskGroup`]: fallible tasks that succeed or fail together, errgroup done right |
//! | [`rate`] | a token-bucket rate limiter (events/s and burst) with waits, reservations and runtime rate changes |
//! | [`semaphore`] | a weighted, FIFO semaphore with owned guards and runtime resize |
//! | [`sync`] | an async `Mutex` and `RwLock` (tokio's, fair) whose contention, waits and long holds show in the metrics |
//! | [`telemetry`] | instrument and span names, how primitives find their meter, tracer and context |
//!
//! # Features
//! - `tracing`: read the OpenTelemetry context of the current `tracing` span, when
//!   `tracing-opentelemetry` bridges it.
//!
//! # Bound instruments
//! Counters and histograms can record through the SDK's bound instruments, which resolve
//! their attributes once instead of on every measurement. That is a run-time choice of
//! the [`telemetry::Telemetry`] handle, off unless the code that installed the SDK says
//! the SDK supports it, and not a Cargo feature: an `opentelemetry_sdk` built without its
//! `experimental_metrics_bound_instruments` feature accepts a binding and silently drops
//! what is recorded through it, and this crate can neither see that feature nor detect
//! such a binding at run time. So:
//! - a program that installs its providers with `otelconc-setup` gets bound instruments
//!   with nothing to do: that crate turns the SDK feature on (Cargo then turns it on for
//!   the whole build) and calls [`telemetry::Telemetry::bind_global_instruments`];
//! - a program that installs its own SDK gets unbound instruments, which work with any
//!   SDK; it may opt in ([`telemetry::Telemetry::bind_global_instruments`],
//!   [`telemetry::Telemetry::with_bound_instruments`]) once its `opentelemetry_sdk`
//!   dependency lists `experimental_metrics_bound_instruments`.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod channel;
pub mod fan;
pub mod group;
pub mod pipeline;
pub mod pool;
pub mod rate;
pub mod select;
pub mod semaphore;
pub mod sync;
pub mod telemetry;
mod util;
