//! [`Shared`]: what every call on one [`FanOut`](super::FanOut) shares (its name,
//! telemetry handle and instruments).

use std::sync::{Arc, Mutex, Weak};

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;

use super::metrics::Metrics;
use crate::telemetry::Telemetry;
use crate::util::sync::lock;

/// What every call on one [`FanOut`](super::FanOut) shares, behind its `Arc`.
pub(crate) struct Shared {
    pub(crate) name: KeyValue,
    pub(crate) telemetry: Telemetry,
    pub(crate) metrics: Arc<Metrics>,
}

impl Shared {
    /// Registers the instruments of a fan-out named `name` on `telemetry`.
    pub(crate) fn new(name: KeyValue, telemetry: Telemetry) -> Self {
        let metrics = Arc::new(Metrics::new(&telemetry, &name));
        Self {
            name,
            telemetry,
            metrics,
        }
    }

    /// The fan-out of the free functions (`fan_out_items`, ...): named `"fan_out"` on
    /// [`Telemetry::global`], its instruments kept for as long as the global meter
    /// provider stays installed. A fan-out built per call would take its item counts
    /// with it when the call ends, before a collection reads them (its counters are
    /// observable, read at collection time).
    pub(crate) fn global() -> Self {
        type Kept = Option<(Weak<dyn MeterProvider + Send + Sync>, Arc<Metrics>)>;
        static KEPT: Mutex<Kept> = Mutex::new(None);
        let telemetry = Telemetry::global();
        let name = KeyValue::new(crate::telemetry::names::ATTR_NAME, "fan_out");
        let provider = opentelemetry::global::meter_provider();
        let mut kept = lock(&KEPT);
        let metrics = match &*kept {
            Some((p, m)) if std::ptr::addr_eq(p.as_ptr(), Arc::as_ptr(&provider)) => m.clone(),
            _ => {
                let m = Arc::new(Metrics::new(&telemetry, &name));
                *kept = Some((Arc::downgrade(&provider), m.clone()));
                m
            }
        };
        drop(kept);
        Self {
            name,
            telemetry,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use opentelemetry::KeyValue;
    use otelconc_testkit::TestTelemetry;

    use crate::fan::{fan_out_items, fan_out_items_unordered};

    /// The item counts of the free functions outlive each call: a collection made after
    /// the calls ended still reads them (their counters are observable, and a fan-out
    /// built per call would take its counts with it). The only unit test in the crate
    /// that installs a global meter provider.
    #[tokio::test]
    async fn the_free_functions_keep_their_item_counts_after_each_call() {
        let tt = TestTelemetry::new();
        opentelemetry::global::set_meter_provider(tt.meter_provider().clone());
        for _ in 0..3 {
            let ok = fan_out_items(0..5u32, 2, |i| async move { Ok::<_, String>(i) })
                .unwrap()
                .count()
                .await;
            assert_eq!(ok, 5);
        }
        let failed = fan_out_items_unordered(0..2u32, 2, |_| async move { Err::<u32, _>("no") })
            .unwrap()
            .count()
            .await;
        assert_eq!(failed, 2);
        let m = tt.metrics();
        let count = |outcome: &'static str| {
            m.value(
                "otelconc.fan_out.items",
                &[
                    KeyValue::new("otelconc.name", "fan_out"),
                    KeyValue::new("otelconc.outcome", outcome),
                ],
            )
        };
        assert_eq!(count("ok"), Some(15.0));
        assert_eq!(count("error"), Some(2.0));
    }
}
