//! Concurrency building blocks for tokio services, with OpenTelemetry traces and
//! metrics built in.
//!
//! Use otelconc if you want tokio-style channels, a worker pool, pipelines, fan-out and
//! fan-in, task groups, a rate limiter and a weighted semaphore whose telemetry is already
//! right: metrics with bounded cardinality and second-based latencies, and traces that
//! follow each message, job or item across every boundary instead of stopping at the
//! queue.
//!
//! The crate depends on the `opentelemetry` API crate only. Install an SDK (for example
//! with the `setup` module behind the `setup` feature) to export anything; without one,
//! every instrument is a no-op and the primitives cost what their uninstrumented peers
//! cost.
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
//! | [`telemetry`] | instrument and span names, how primitives find their meter, tracer and context |
//! | `setup` | (feature `setup`) install SDK providers from the `OTEL_*` environment: OTLP export or local OTLP/JSON files |
//!
//! # Features
//! - `tracing`: read the OpenTelemetry context of the current `tracing` span, when
//!   `tracing-opentelemetry` bridges it.
//! - `bound-instruments`: record through pre-resolved (bound) instruments; the SDK's
//!   `experimental_metrics_bound_instruments` feature must be on as well.
//! - `setup`: install SDK tracer and meter providers from the standard `OTEL_*`
//!   environment, with OTLP export or local OTLP/JSON files.
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
pub(crate) mod panic_payload;
pub mod pipeline;
pub mod pool;
pub mod rate;
pub mod select;
pub mod semaphore;
#[cfg(feature = "setup")]
pub mod setup;
pub(crate) mod stripes;
pub(crate) mod sync;
pub mod telemetry;
