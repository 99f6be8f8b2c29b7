//! The channel: what users rely on (`behaviour`), the context messages carry and the
//! spans built from it (`context`), lossless sends under `select!`
//! (`reserve`), and what it reports (`telemetry`).

mod behaviour;
mod context;
mod reserve;
mod telemetry;
