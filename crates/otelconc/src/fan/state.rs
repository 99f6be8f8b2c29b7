//! [`Shared`]: what every call on one [`FanOut`](super::FanOut) shares (its name,
//! telemetry handle and instruments).

use opentelemetry::KeyValue;

use super::metrics::Metrics;
use crate::telemetry::Telemetry;

/// What every call on one [`FanOut`](super::FanOut) shares, behind its `Arc`.
pub(crate) struct Shared {
    pub(crate) name: KeyValue,
    pub(crate) telemetry: Telemetry,
    pub(crate) metrics: Metrics,
}

impl Shared {
    /// Binds the instruments of a fan-out named `name` on `telemetry`.
    pub(crate) fn new(name: KeyValue, telemetry: Telemetry) -> Self {
        let metrics = Metrics::new(&telemetry, &name);
        Self {
            name,
            telemetry,
            metrics,
        }
    }
}
