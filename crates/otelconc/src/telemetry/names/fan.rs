//! Instruments and spans of the `fan` module.

use super::{InstrumentSpec, SpanSpec};

/// Every instrument this primitive registers.
pub const INSTRUMENTS: &[InstrumentSpec] = &[];

/// Every span this primitive builds.
pub const SPANS: &[SpanSpec] = &[];
