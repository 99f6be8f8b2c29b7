//! `otelconc::pool`: one test binary, one file per concern.

mod behaviour;
mod telemetry;
