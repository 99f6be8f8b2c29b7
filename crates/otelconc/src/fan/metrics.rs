//! The instruments of a fan-out, built once per [`FanOut`](super::FanOut): the counts
//! of `fan_out_items` streams and the observable counters that read them.

use std::sync::{Arc, Weak};

use opentelemetry::KeyValue;

use super::error::ItemError;
use crate::telemetry::names::{ATTR_ERROR_TYPE, ATTR_OUTCOME, fan as names};
use crate::telemetry::{Observation, Telemetry};
use crate::util::counts::{Owned, Roster};

/// The outcomes an item is counted under, by index, with the `error.type` the counter
/// carries: a panic's is known here; a user error's type name is on the item's span
/// (the counters are built before any item type is known).
const OUTCOMES: [(&str, Option<&str>); 3] =
    [("ok", None), ("error", None), ("panic", Some("panic"))];

/// The instruments of one [`FanOut`](super::FanOut): items of `fan_out_items` by
/// outcome, counted by each stream into counters of its own ([`ItemCounts`]) and summed
/// when metrics are collected.
pub(crate) struct Metrics {
    items: Arc<Roster<3>>,
    /// The fan-out's part in its observable counters (they read `items` through a
    /// `Weak`); dropped with the fan-out.
    _observers: Vec<Observation>,
}

impl Metrics {
    pub(crate) fn new(telemetry: &Telemetry, name: &KeyValue) -> Self {
        let items = Arc::new(Roster::default());
        let observers = OUTCOMES
            .iter()
            .enumerate()
            .map(|(k, &(outcome, error))| {
                let r: Weak<Roster<3>> = Arc::downgrade(&items);
                let mut attrs = vec![name.clone(), KeyValue::new(ATTR_OUTCOME, outcome)];
                attrs.extend(error.map(|e| KeyValue::new(ATTR_ERROR_TYPE, e)));
                telemetry.observable_counter(&names::ITEMS, attrs, move || {
                    r.upgrade().map(|r| r.total(k))
                })
            })
            .collect();
        Self {
            items,
            _observers: observers,
        }
    }
}

/// One stream's item counts: counters only that stream writes (a plain load and store
/// per item), in the fan-out's roster from the stream's start until it is dropped, when
/// they go into the roster's totals.
pub(crate) struct ItemCounts {
    roster: Arc<Roster<3>>,
    own: Arc<Owned<3>>,
}

impl ItemCounts {
    pub(crate) fn join(metrics: &Metrics) -> Self {
        Self {
            roster: metrics.items.clone(),
            own: metrics.items.join(),
        }
    }

    /// Counts one yielded result under its outcome.
    #[inline]
    pub(crate) fn count<R, E>(&self, out: &Result<R, ItemError<E>>) {
        let k = match out {
            Ok(_) => 0,
            Err(ItemError::Failed { .. }) => 1,
            Err(ItemError::Panicked { .. }) => 2,
        };
        self.own.add(k, 1);
    }
}

impl Drop for ItemCounts {
    fn drop(&mut self) {
        self.roster.leave(&self.own);
    }
}
