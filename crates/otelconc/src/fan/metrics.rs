//! The instruments of a fan-out, built once per [`FanOut`](super::FanOut), and the
//! item counts a `fan_out_items` stream keeps locally and adds to them in batches.

use opentelemetry::KeyValue;

use super::error::ItemError;
use crate::telemetry::names::{ATTR_OUTCOME, fan as names};
use crate::telemetry::{Counter, Telemetry};

/// The instruments of one [`FanOut`](super::FanOut): items of `fan_out_items` by outcome.
pub(crate) struct Metrics {
    ok: Counter,
    error: Counter,
    panic: Counter,
}

impl Metrics {
    pub(crate) fn new(telemetry: &Telemetry, name: &KeyValue) -> Self {
        let counter = |outcome: &'static str| {
            telemetry.counter(
                &names::ITEMS,
                &[name.clone(), KeyValue::new(ATTR_OUTCOME, outcome)],
            )
        };
        Self {
            ok: counter("ok"),
            error: counter("error"),
            panic: counter("panic"),
        }
    }
}

/// Outcomes are added to the counters in batches of at most this many, and whenever the
/// stream waits, ends or is dropped: a collection never misses more than the items the
/// stream yielded since it last waited, and an item costs a local increment.
const FLUSH_EVERY: u32 = 256;

/// The outcomes one stream yielded since it last flushed them to its [`Metrics`].
#[derive(Default)]
pub(crate) struct ItemCounts {
    /// Results yielded since the last flush (any outcome).
    yielded: u32,
    /// Errors and panics among them: counted on the (cold) failure path only, so an
    /// `ok` item costs one increment.
    failed: u32,
    panicked: u32,
}

impl ItemCounts {
    /// Counts one yielded result; flushes every [`FLUSH_EVERY`] results.
    #[inline]
    pub(crate) fn count<R, E>(&mut self, out: &Result<R, ItemError<E>>, metrics: &Metrics) {
        if let Err(e) = out {
            self.count_failure(e);
        }
        self.yielded += 1;
        if self.yielded >= FLUSH_EVERY {
            self.flush(metrics);
        }
    }

    #[cold]
    fn count_failure<E>(&mut self, e: &ItemError<E>) {
        match e {
            ItemError::Failed { .. } => self.failed += 1,
            ItemError::Panicked { .. } => self.panicked += 1,
        }
    }

    /// Adds the counts to `metrics` and starts again from zero.
    pub(crate) fn flush(&mut self, metrics: &Metrics) {
        let yielded = std::mem::take(&mut self.yielded);
        let error = std::mem::take(&mut self.failed);
        let panic = std::mem::take(&mut self.panicked);
        let ok = yielded.saturating_sub(error).saturating_sub(panic);
        if ok > 0 {
            metrics.ok.add(u64::from(ok));
        }
        if error > 0 {
            metrics.error.add(u64::from(error));
        }
        if panic > 0 {
            metrics.panic.add(u64::from(panic));
        }
    }
}
