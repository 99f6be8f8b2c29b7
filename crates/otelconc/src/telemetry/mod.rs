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
//! Name instances from a small, fixed set (one name per component or role, not one per
//! request): the name is a metric attribute. Counts that are read at collection time
//! (the observable counters and gauges of `channel`, `pool`, `pipeline`, `rate` and
//! `semaphore`) go through one instrument and callback per name and attribute set,
//! shared by every live instance of that name:
//! - counts add up: two semaphores named `db` report their permits, waiters and grants
//!   together; a pool's utilization (a ratio) is their mean, and its oldest job's age
//!   the largest;
//! - counters stay monotonic while any instance of the name lives: one that is dropped
//!   leaves its last collected counts in the total;
//! - once the last instance of a name is dropped, its instruments stop reporting, and
//!   its counts since the last collection are not exported: flush the meter provider
//!   before dropping primitives at shutdown.
//!
//! Instances share when they are built from one [`Telemetry`] and its clones, or from
//! [`Telemetry::global`] on the same global meter provider. Two handles made by
//! separate [`Telemetry::new`] calls on one provider do not share, and the SDK then
//! keeps the last value either reports: make one handle and clone it. Building an
//! instance again under a name reuses its instruments, so the SDK's callbacks (which
//! it never unregisters) do not grow with every instance built; distinct names each
//! keep theirs for as long as the meter provider lives. `group::TaskGroup` and the
//! `fan` helpers use synchronous instruments only.

mod context;
mod ending;
mod handle;
mod instruments;
pub mod names;
mod observe;
mod wait;

pub use context::{current_context, is_sampled, sampled_context};
pub(crate) use ending::EndingSpan;
pub(crate) use handle::record_error;
pub use handle::{SCOPE_NAME, SpanPolicy, Telemetry};
pub(crate) use instruments::{Counter, Histogram, UpDownCounter};
pub use names::{InstrumentKind, InstrumentSpec, SpanSpec};
pub(crate) use observe::{Combine, Observation};
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
