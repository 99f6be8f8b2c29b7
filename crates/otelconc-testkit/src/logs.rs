//! Capturing `tracing` events with the trace context they were written in, the way an
//! OpenTelemetry log appender correlates them.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::trace::{TraceId, TracerProvider as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context as LayerCx, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

use crate::memory::{TestTelemetry, seen_context};

/// One captured event: its `message`, and the trace id and baggage value
/// ([`BAGGAGE_KEY`](crate::BAGGAGE_KEY)) of the OpenTelemetry context current when it
/// was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// The event's `message` field.
    pub message: String,
    /// The trace id of the context current when it was written, if valid.
    pub trace_id: Option<TraceId>,
    /// The baggage value under [`BAGGAGE_KEY`](crate::BAGGAGE_KEY) there.
    pub baggage: Option<String>,
}

/// The events a [`log_capture`] dispatcher saw.
#[derive(Debug, Clone, Default)]
pub struct LoggedEvents(Arc<Mutex<Vec<LoggedEvent>>>);

impl LoggedEvents {
    /// Every event captured so far.
    pub fn all(&self) -> Vec<LoggedEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The events whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<LoggedEvent> {
        self.all()
            .into_iter()
            .filter(|e| e.message == message)
            .collect()
    }
}

struct Capture(LoggedEvents);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: LayerCx<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let (trace_id, baggage) = seen_context();
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LoggedEvent {
                message: message.0,
                trace_id,
                baggage,
            });
    }
}

/// A `tracing` dispatcher that bridges `tracing` spans to `telemetry`'s tracer
/// (`tracing-opentelemetry`) and captures every event with the OpenTelemetry context
/// current when it was written. Install it with `tracing::dispatcher::set_default` (per
/// thread) or run the test on a current-thread runtime inside `with_default`.
pub fn log_capture(telemetry: &TestTelemetry) -> (tracing::Dispatch, LoggedEvents) {
    let events = LoggedEvents::default();
    let tracer = telemetry.tracer_provider().tracer("otelconc-test-tracing");
    let subscriber = Registry::default()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(Capture(events.clone()));
    (tracing::Dispatch::new(subscriber), events)
}
