//! The observable locks, one file per concern: `behaviour` (mutual exclusion, tokio's
//! fairness, cancellation, guards and their maps, bad input) and `telemetry` (metrics,
//! the oldest-hold gauge and wait spans, as an exporter receives them).

mod behaviour;
mod telemetry;

use opentelemetry::KeyValue;
use otelconc::telemetry::names::sync::ATTR_MODE;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::attr;
use tokio::task::yield_now;

/// Lets spawned tasks run until they wait.
pub(crate) async fn settle() {
    for _ in 0..10 {
        yield_now().await;
    }
}

/// The attributes of lock `name`'s `mode` side, plus `outcome` when given.
pub(crate) fn side(
    name: &'static str,
    mode: &'static str,
    outcome: Option<&'static str>,
) -> Vec<KeyValue> {
    let mut v = vec![attr(ATTR_NAME, name), attr(ATTR_MODE, mode)];
    v.extend(outcome.map(|o| attr(ATTR_OUTCOME, o)));
    v
}
