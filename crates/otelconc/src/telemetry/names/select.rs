//! Instruments and spans of the `select` module.

use super::{InstrumentSpec, SpanSpec};

/// Every instrument this primitive registers.
pub const INSTRUMENTS: &[InstrumentSpec] = &[];

/// Every span this primitive builds.
pub const SPANS: &[SpanSpec] = &[];
