//! fan_out, fan_out_items and fan_in: semantics, bad input, faults, leftovers, and the
//! telemetry an exporter receives, and the context work carries (`context`). One test
//! binary, a file per concern.

mod behaviour;
mod cancellation;
mod context;
mod panics;
mod telemetry;
