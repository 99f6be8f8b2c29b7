//! The instruments of a [`TaskGroup`](super::TaskGroup), built once at construction.

use opentelemetry::KeyValue;

use crate::telemetry::names::{ATTR_OUTCOME, group as names};
use crate::telemetry::{Counter, Telemetry, UpDownCounter};

/// The instruments of one group, built once at construction.
pub(crate) struct Metrics {
    pub(crate) started: Counter,
    pub(crate) ok: Counter,
    pub(crate) error: Counter,
    pub(crate) panic: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) running: UpDownCounter,
}

impl Metrics {
    pub(crate) fn new(t: &Telemetry, name: &KeyValue) -> Self {
        let with = |outcome: &'static str| {
            t.counter(
                &names::TASKS_FINISHED,
                &[name.clone(), KeyValue::new(ATTR_OUTCOME, outcome)],
            )
        };
        Self {
            started: t.counter(&names::TASKS_STARTED, std::slice::from_ref(name)),
            ok: with("ok"),
            error: with("error"),
            panic: with("panic"),
            cancelled: with("cancelled"),
            running: t.up_down_counter(&names::TASKS_RUNNING, std::slice::from_ref(name)),
        }
    }
}
