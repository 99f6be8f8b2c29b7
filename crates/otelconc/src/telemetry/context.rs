//! Finding the current OpenTelemetry context.

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;

/// The current OpenTelemetry context.
///
/// With the `tracing` feature, the context of the current `tracing` span wins when
/// `tracing-opentelemetry` bridges it and it holds a valid span; otherwise this is
/// [`Context::current`].
///
/// # Examples
/// ```
/// use opentelemetry::trace::TraceContextExt;
/// let cx = otelconc::telemetry::current_context();
/// assert!(!cx.has_active_span());
/// ```
pub fn current_context() -> Context {
    #[cfg(feature = "tracing")]
    if let Some(cx) = tracing_context() {
        return cx;
    }
    Context::current()
}

/// The current context if it holds a span that is sampled, else `None`.
///
/// This is the check primitives make before they build a span or attach a context to a
/// message: outside a sampled trace it costs one thread-local read (plus, with the
/// `tracing` feature, one look at the current `tracing` span) and allocates nothing.
///
/// # Examples
/// ```
/// use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, SpanId, TraceState};
/// use opentelemetry::Context;
/// use otelconc::telemetry::sampled_context;
///
/// assert!(sampled_context().is_none());
/// let remote = SpanContext::new(
///     TraceId::from(1_u128), SpanId::from(1_u64), TraceFlags::SAMPLED, true, TraceState::default(),
/// );
/// let _guard = Context::current().with_remote_span_context(remote).attach();
/// assert!(sampled_context().is_some());
/// ```
pub fn sampled_context() -> Option<Context> {
    #[cfg(feature = "tracing")]
    if let Some(cx) = tracing_context() {
        return is_sampled_cx(&cx).then_some(cx);
    }
    Context::map_current(|cx| is_sampled_cx(cx).then(|| cx.clone()))
}

/// Whether the current context holds a sampled span (see [`sampled_context`]).
///
/// # Examples
/// ```
/// assert!(!otelconc::telemetry::is_sampled());
/// ```
pub fn is_sampled() -> bool {
    #[cfg(feature = "tracing")]
    if let Some(cx) = tracing_context() {
        return is_sampled_cx(&cx);
    }
    Context::map_current(is_sampled_cx)
}

fn is_sampled_cx(cx: &Context) -> bool {
    cx.has_active_span() && cx.span().span_context().is_sampled()
}

/// The OpenTelemetry context of the current `tracing` span, when one is bridged and valid.
#[cfg(feature = "tracing")]
fn tracing_context() -> Option<Context> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    if span.is_none() || span.is_disabled() {
        return None;
    }
    let cx = span.context();
    cx.span().span_context().is_valid().then_some(cx)
}
