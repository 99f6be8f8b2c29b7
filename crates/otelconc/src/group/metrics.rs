//! The instruments of a [`TaskGroup`](super::TaskGroup), built once at construction.

use opentelemetry::KeyValue;

use crate::telemetry::names::{ATTR_ERROR_TYPE, ATTR_OUTCOME, group as names};
use crate::telemetry::{Counter, Telemetry, UpDownCounter};

/// The instruments of one group, built once at construction.
pub(crate) struct Metrics {
    pub(crate) started: Counter,
    pub(crate) ok: Counter,
    pub(crate) error: Counter,
    pub(crate) panic: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) active: UpDownCounter,
}

impl Metrics {
    /// The instruments of the group `name`, whose tasks fail with errors of the type
    /// named `error_type` (the `error.type` of their `error` outcome).
    pub(crate) fn new(t: &Telemetry, name: &KeyValue, error_type: &'static str) -> Self {
        let with = |outcome: &'static str, error: Option<&'static str>| {
            let mut attrs = vec![name.clone(), KeyValue::new(ATTR_OUTCOME, outcome)];
            attrs.extend(error.map(|e| KeyValue::new(ATTR_ERROR_TYPE, e)));
            t.counter(&names::TASK_FINISHED, &attrs)
        };
        Self {
            started: t.counter(&names::TASK_STARTED, std::slice::from_ref(name)),
            ok: with("ok", None),
            error: with("error", Some(error_type)),
            panic: with("panic", Some("panic")),
            cancelled: with("cancelled", None),
            active: t.up_down_counter(&names::TASK_ACTIVE, std::slice::from_ref(name)),
        }
    }
}
