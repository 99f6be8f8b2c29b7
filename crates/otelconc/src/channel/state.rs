//! [`Shared`]: the state every handle of one channel holds.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use opentelemetry::KeyValue;

use super::metrics::Metrics;
use super::space::Space;
use crate::telemetry::Telemetry;
use crate::telemetry::names;

/// The state every handle of one channel holds: its name and telemetry, its
/// [`Metrics`], the [`Space`] lossless senders and reservers wait on, and how many
/// receivers are alive.
pub(super) struct Shared {
    pub(super) name: KeyValue,
    pub(super) telemetry: Telemetry,
    pub(super) metrics: Metrics,
    pub(super) space: Space,
    /// Live `Receiver` handles; the last one to drop closes the channel.
    pub(super) receiver_handles: AtomicUsize,
    /// Whether the tracer builds real spans (see [`Telemetry::builds_spans`]); without
    /// one no span is started, and, unless an SDK reads the metrics, no context is
    /// carried.
    pub(super) traced: bool,
    /// Start an `otelconc.channel.send` span per traced send.
    pub(super) producer_spans: bool,
}

impl Shared {
    /// The state of a new channel, its observable instruments registered.
    pub(super) fn new(
        name: String,
        telemetry: Telemetry,
        producer_spans: bool,
        capacity: Option<usize>,
    ) -> Arc<Self> {
        // An `Arc<str>` value: cloning the attribute for a span allocates nothing.
        let name = KeyValue::new(names::ATTR_NAME, Arc::<str>::from(name));
        let shared = Arc::new(Self {
            metrics: Metrics::new(&telemetry, &name),
            traced: telemetry.builds_spans(),
            name,
            telemetry,
            space: Space::new(),
            receiver_handles: AtomicUsize::new(1),
            producer_spans,
        });
        Metrics::register(
            &shared,
            |s| &s.metrics,
            &shared.telemetry,
            &shared.name,
            capacity,
        );
        shared
    }

    /// Whether the channel carries its messages as [`Carried`](crate::telemetry::Carried)
    /// values: an SDK reads its metrics (queue-time samples travel with the message) or
    /// its tracer builds spans. Otherwise it carries bare messages and no context.
    #[inline]
    pub(super) fn is_observed(&self) -> bool {
        self.traced || self.metrics.is_observed()
    }
}
