//! Telemetry conventions shared by every primitive.
//!
//! - [`names`]: every instrument and span the crate registers, as [`InstrumentSpec`] and
//!   [`SpanSpec`] values. Primitives create instruments only through these specs, so the
//!   catalogue ([`names::instruments`], [`names::spans`]) is exactly what the code
//!   registers; the repository's `docs/telemetry.md` is generated from it
//!   ([`names::markdown`]).
//! - [`Telemetry`]: where a primitive gets its meter and tracer. [`Telemetry::global`]
//!   (the default of every builder) reads the global providers when the primitive is
//!   built; [`Telemetry::new`] injects providers, which is how tests read what was
//!   exported.
//! - [`current_context`], [`propagated_context`] and [`sampled_context`]: how the
//!   *current* OpenTelemetry context is found, including the context of the current
//!   `tracing` span (feature `tracing`). [`propagated_context`] is what a primitive
//!   captures when work is handed to it (any valid span context, sampled or not, or
//!   baggage); [`sampled_context`] is the cheap check it makes before it builds a span.
//!   Both return `None` after one thread-local read when there is nothing to carry.
//!
//! - [`inject`] and [`extract`]: the W3C context (`traceparent`, `tracestate`,
//!   `baggage`) across a process boundary, over the global text-map propagator, for
//!   bridges to Kafka, NATS, Redis or HTTP.
//!
//! The rest of this page is also the opening of the repository's `docs/telemetry.md`,
//! which [`names::markdown`] generates with the table of every instrument, span and
//! attribute key.
//!
#![doc = include_str!("names/conventions.md")]

mod carrier;
mod context;
mod ending;
mod grants;
mod guard;
mod handle;
mod instruments;
pub mod names;
mod observe;
mod propagation;
mod wait;

pub(crate) use carrier::{Carried, Trace, link_to, span_start};
pub use context::{current_context, is_sampled, propagated_context, sampled_context};
pub(crate) use ending::{End, EndingSpan, error_type};
pub(crate) use grants::{GrantNames, Grants};
pub(crate) use guard::{Guarded, poll_guarded};
pub use handle::{SCOPE_NAME, SpanPolicy, Telemetry};
pub(crate) use instruments::{Counter, Histogram, UpDownCounter};
pub use names::{AttributeSpec, InstrumentKind, InstrumentSpec, SpanSpec};
pub(crate) use observe::Observation;
pub use propagation::{extract, inject};
pub(crate) use wait::WaitSpans;

/// Explicit histogram bucket boundaries (seconds) for every duration histogram: from 1 µs
/// to 30 s, about three buckets per decade, so sub-millisecond queue waits and
/// multi-second stalls both land in a bucket of their own.
pub const SECONDS_BOUNDARIES: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
];
