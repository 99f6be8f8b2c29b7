//! Telemetry conventions shared by every primitive.
//!
//! - [`names`]: every instrument and span the crate registers, as [`InstrumentSpec`] and
//!   [`SpanSpec`] values. Primitives create instruments only through these specs, so the
//!   catalogue ([`names::instruments`], [`names::spans`]) is exactly what the code
//!   registers; `docs/telemetry.md` is kept equal to it by a test.
//! - [`Telemetry`]: where a primitive gets its meter and tracer. [`Telemetry::global`]
//!   (the default of every builder) reads the global providers when the primitive is
//!   built; [`Telemetry::new`] injects providers, which is how tests read what was
//!   exported.
//! - [`current_context`] and [`sampled_context`]: how the *current* OpenTelemetry context
//!   is found, including the context of the current `tracing` span (feature `tracing`).
//!   [`sampled_context`] is the cheap check a primitive makes before it builds any span
//!   or carries any context: outside a sampled trace it returns `None` after one
//!   thread-local read.
//!
//! # Conventions
//! - Metric names are `otelconc.<primitive>.<measure>`, units are UCUM (`s`, `{message}`,
//!   `{job}`, `1`), and there are no `_total` suffixes.
//! - Metric attributes are the primitive instance's name ([`names::ATTR_NAME`]) plus a
//!   small closed set ([`names::ATTR_OUTCOME`], [`names::ATTR_REASON`], ...). Ids go on
//!   spans, never on metrics.
//! - Durations are `f64` seconds, recorded into histograms with [`SECONDS_BOUNDARIES`].
//! - Attributes are built once per primitive instance; nothing allocates per operation
//!   for telemetry, and timestamps are taken only where they are recorded.
//!
//! # Instance names
//! Give each live instance of a primitive its own name (a small, fixed set: one per
//! component, not one per request). Counts that are read at collection time (the
//! observable counters and gauges of `channel`, `pool`, `pipeline`, `rate` and
//! `semaphore`) are reported per instance, and the SDK keeps the *last* observation of
//! an attribute set: two live instances with the same name overwrite each other's
//! values instead of adding up. A dropped instance stops reporting; its counts since
//! the last collection are not exported, so flush the meter provider before dropping
//! primitives at shutdown. The SDK never unregisters an observable callback: a dropped
//! instance's callbacks stay registered (reporting nothing) as long as the meter
//! provider lives, which is why these primitives are meant to be built per component.
//! `group::TaskGroup` and the `fan` helpers, which are built per request, use
//! synchronous instruments only.

mod context;
mod handle;
mod instruments;
pub mod names;

pub use context::{current_context, is_sampled, sampled_context};
pub(crate) use handle::record_error;
pub use handle::{SCOPE_NAME, SpanPolicy, Telemetry};
pub(crate) use instruments::{Counter, Histogram, UpDownCounter};
pub use names::{InstrumentKind, InstrumentSpec, SpanSpec};

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
