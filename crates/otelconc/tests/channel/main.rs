//! The channel: what users rely on (`behaviour`), lossless sends under `select!`
//! (`reserve`), and what it reports (`telemetry`).

mod behaviour;
mod reserve;
mod telemetry;
