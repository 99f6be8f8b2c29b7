//! The span of a caller's wait (rate limiter, semaphore): built only when the caller
//! really waits inside a sampled trace, and only when the tracer makes spans at all.

use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};

use super::Telemetry;
use super::names::{ATTR_NAME, ATTR_OUTCOME, SpanSpec};

/// How one primitive instance starts and ends its wait spans.
pub(crate) struct WaitSpans {
    telemetry: Telemetry,
    spec: &'static SpanSpec,
    /// The attribute key of the amount asked for (tokens, permits).
    requested: &'static str,
    /// The instance's name, an `Arc<str>` value: cloned per span without allocating.
    name: KeyValue,
    /// Whether the tracer makes spans ([`Telemetry::builds_spans`]); if not, a wait
    /// does not even look for a parent. A wait span is never handed to user code, so
    /// skipping it changes nothing.
    traced: bool,
}

impl WaitSpans {
    pub(crate) fn new(
        telemetry: &Telemetry,
        spec: &'static SpanSpec,
        requested: &'static str,
        name: &Arc<str>,
    ) -> Self {
        Self {
            telemetry: telemetry.clone(),
            spec,
            requested,
            name: KeyValue::new(ATTR_NAME, name.clone()),
            traced: telemetry.builds_spans(),
        }
    }

    /// The span of a wait for `n`, as a child of the caller's context, when the caller
    /// is inside a sampled trace.
    #[inline]
    pub(crate) fn start(&self, n: u32) -> Option<Context> {
        if !self.traced {
            return None;
        }
        let parent = self.telemetry.span_parent()?;
        Some(self.telemetry.start_span(
            self.spec,
            &parent,
            vec![
                self.name.clone(),
                KeyValue::new(self.requested, i64::from(n)),
            ],
        ))
    }

    /// Ends a wait's span (if it has one) with its outcome.
    pub(crate) fn end(span: Option<Context>, outcome: &'static str) {
        if let Some(cx) = span {
            let span = cx.span();
            span.set_attribute(KeyValue::new(ATTR_OUTCOME, outcome));
            span.end();
        }
    }
}
