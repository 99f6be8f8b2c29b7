//! Carrying a context across a process boundary: [`inject`] into a message's headers,
//! [`extract`] on the far side, over the global text-map propagator.

use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};

/// Writes `cx` into `carrier` (a message's headers, an HTTP request, a map) with the
/// global text-map propagator, so a process that reads the message can continue the
/// trace with [`extract`].
///
/// With the W3C propagators installed (`otelconc-setup` installs W3C trace context and
/// W3C baggage), this writes `traceparent` (when `cx` holds a valid span context,
/// sampled or not), `tracestate` (when not empty) and `baggage` (when `cx` has any).
/// With no propagator installed (the OpenTelemetry API's default is a no-op), it
/// writes nothing.
///
/// # Examples
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::Context;
///
/// let mut headers = HashMap::new();
/// otelconc::telemetry::inject(&Context::current(), &mut headers);
/// // No span is current, so there is no trace to write.
/// assert!(!headers.contains_key("traceparent"));
/// ```
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    global::get_text_map_propagator(|p| p.inject_context(cx, carrier));
}

/// The context `carrier` holds (see [`inject`]), read with the global text-map
/// propagator, as a context to hand to `send_with_context`, `submit_with_context` and
/// the like, or to attach.
///
/// A remote parent extracted this way behaves like a local one: the spans otelconc
/// builds for work handed over under it are its children when it is sampled, and work
/// under an unsampled one stays in its trace without spans. Bad input never fails and
/// never panics: a missing or malformed `traceparent` (a forbidden version, bad hex,
/// fields of the wrong length, upper case, an all-zero trace or span id) gives a
/// context without a span context; a `tracestate` over the W3C limit of 32 list
/// members keeps its first 32; a `baggage` header over the W3C limit of 8192 bytes is
/// dropped, and one within it keeps at most 64 entries.
///
/// The context is built from the carrier alone, on an empty context: nothing of the
/// caller's current context (its span, its baggage) leaks into it, so a message that
/// carries no trace extracts to no trace even when `extract` runs inside a span. (The
/// OpenTelemetry API's `TextMapPropagator::extract` builds on the current context
/// instead.)
///
/// The `traceparent` is checked against the W3C format here before the propagator
/// reads it: the OpenTelemetry SDK's parser accepts trace and span ids shorter than 32
/// and 16 hex digits, which would make up an id the sender never sent.
///
/// # Examples
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::trace::TraceContextExt;
///
/// let headers = HashMap::from([("traceparent".to_string(), "not a traceparent".to_string())]);
/// let cx = otelconc::telemetry::extract(&headers);
/// assert!(!cx.span().span_context().is_valid());
/// ```
pub fn extract(carrier: &dyn Extractor) -> Context {
    global::get_text_map_propagator(|p| p.extract_with_context(&Context::new(), &Checked(carrier)))
}

/// The `traceparent` header, with the W3C field lengths the SDK's parser does not check.
const TRACEPARENT: &str = "traceparent";

/// A carrier whose `traceparent` is hidden unless it has the W3C shape: version, trace
/// id, span id and flags of 2, 32, 16 and 2 lowercase hex digits (version 00 with
/// exactly those four fields; a later version may add fields after them).
struct Checked<'a>(&'a dyn Extractor);

impl Extractor for Checked<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?;
        if key.eq_ignore_ascii_case(TRACEPARENT) && !well_formed(value.trim()) {
            return None;
        }
        Some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }

    /// Every value of `key` the carrier holds (a propagator that reads repeated headers
    /// gets them all); for `traceparent`, only the well-formed ones.
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let mut all = self.0.get_all(key)?;
        if key.eq_ignore_ascii_case(TRACEPARENT) {
            all.retain(|v| well_formed(v.trim()));
        }
        (!all.is_empty()).then_some(all)
    }
}

fn well_formed(traceparent: &str) -> bool {
    // One pass over the bytes: `vv-<32 hex>-<16 hex>-ff`, then, for a version other
    // than 00 only, more fields after a dash.
    let b = traceparent.as_bytes();
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    b.len() >= 55
        && hex(0..2)
        && b[2] == b'-'
        && hex(3..35)
        && b[35] == b'-'
        && hex(36..52)
        && b[52] == b'-'
        && hex(53..55)
        && (b.len() == 55 || (!b.starts_with(b"00-") && b[55] == b'-'))
}
