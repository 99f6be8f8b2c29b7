//! Finding the current OpenTelemetry context.

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
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

/// The current context if it is worth carrying to where the work runs: it holds a valid
/// span context (sampled **or not**) or baggage. Else `None`, after one thread-local read
/// (plus, with the `tracing` feature, one look at the current `tracing` span).
///
/// This is what every primitive captures when a value is handed to it (a message sent, a
/// job submitted, an item fed to a pipeline or a fan-out, a task spawned), and what the
/// work then runs under on the far side: a span the work starts is a child of the
/// producer's trace even when that trace is not sampled, so a parent-based sampler drops
/// it with its parent instead of keeping an orphan root, and logs written there carry the
/// producer's trace id and baggage.
///
/// # Examples
/// ```
/// use opentelemetry::baggage::BaggageExt;
/// use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, SpanId, TraceState};
/// use opentelemetry::{Context, KeyValue};
/// use otelconc::telemetry::propagated_context;
///
/// assert!(propagated_context().is_none());
/// let unsampled = SpanContext::new(
///     TraceId::from(1_u128), SpanId::from(1_u64), TraceFlags::default(), true, TraceState::default(),
/// );
/// let guard = Context::current().with_remote_span_context(unsampled).attach();
/// assert!(propagated_context().is_some()); // carried, though not sampled
/// drop(guard);
/// let _guard = Context::current_with_baggage([KeyValue::new("tenant", "a")]).attach();
/// assert!(propagated_context().is_some()); // baggage alone is carried too
/// ```
pub fn propagated_context() -> Option<Context> {
    #[cfg(feature = "tracing")]
    if let Some(cx) = tracing_context() {
        return Some(cx);
    }
    Context::map_current(|cx| is_worth_carrying(cx).then(|| cx.clone()))
}

/// Whether `cx` holds a valid span context or baggage (see [`propagated_context`]).
#[inline]
pub(crate) fn is_worth_carrying(cx: &Context) -> bool {
    (cx.has_active_span() && cx.span().span_context().is_valid()) || !cx.baggage().is_empty()
}

/// Whether `cx` holds a sampled span.
pub(crate) fn is_sampled_context(cx: &Context) -> bool {
    is_sampled_cx(cx)
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
#[inline]
fn tracing_context() -> Option<Context> {
    // No active subscriber enables anything: no `tracing` span can be current, and
    // looking for one (a thread-local read and a dispatcher clone) is skipped.
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::OFF {
        return None;
    }
    tracing_span_context()
}

#[cfg(feature = "tracing")]
fn tracing_span_context() -> Option<Context> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    if span.is_none() || span.is_disabled() {
        return None;
    }
    let cx = span.context();
    cx.span().span_context().is_valid().then_some(cx)
}
