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
//! with the [`setup`] module behind the `setup` feature) to export anything; without one,
//! every instrument is a no-op and the primitives cost what their uninstrumented peers
//! cost.
//!
//! | module | what it is |
//! |---|---|
//! | [`channel`] | bounded and unbounded MPMC channels; messages carry their producer's trace |
//! | [`select`] | first-of-N, all-of-N and timeouts over channels, cancellable by drop or token |
//! | [`telemetry`] | instrument and span names, how primitives find their meter, tracer and context |
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
pub(crate) mod panic_payload;
pub mod select;
pub mod telemetry;
