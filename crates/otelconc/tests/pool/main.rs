//! `otelconc::pool`: one test binary, one file per concern.

mod behaviour;
mod context;
mod telemetry;
