//! The telemetry conventions, one test binary: finding the current context and span
//! policies (`context`), `docs/telemetry.md` against the catalogue (`doc`), and
//! same-named instances sharing their observable instruments (`instances`).
//!
//! Tests that install global providers live in `tests/telemetry_global/`: the globals
//! are process state, and the tests here run on injected providers in parallel.

mod context;
mod doc;
mod instances;
mod views;
