//! TaskGroup: results, every error, the token's cause, panics, limits, shutdown, drop,
//! and the telemetry an exporter receives. One test binary, a file per concern.

mod behaviour;
mod cancellation;
mod context;
mod telemetry;
