//! Tests that install the global meter provider: process state, so they live apart from
//! the rest of the telemetry tests, and each holds [`GLOBALS`] while it runs so that
//! none sees another's provider.

mod binding;
mod instances;
mod propagation;

/// Held by every test here for as long as it uses the global providers.
pub(crate) static GLOBALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
