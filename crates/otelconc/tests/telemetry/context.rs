//! The telemetry conventions: finding the current context, the sampled check, span
//! policies, and injected providers.

use opentelemetry::Context;
use opentelemetry::trace::{
    Span, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use otelconc::telemetry::{SpanPolicy, current_context, is_sampled, sampled_context};
use otelconc_testkit::TestTelemetry;

fn remote(flags: TraceFlags) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0xabc_u128),
        SpanId::from(0xdef_u64),
        flags,
        true,
        TraceState::default(),
    ))
}

#[test]
fn outside_any_trace_nothing_is_sampled() {
    assert!(sampled_context().is_none());
    assert!(!is_sampled());
    assert!(!current_context().has_active_span());
}

#[test]
fn a_sampled_span_is_found_and_an_unsampled_one_is_not() {
    {
        let _g = remote(TraceFlags::SAMPLED).attach();
        let cx = sampled_context().expect("inside a sampled trace");
        assert_eq!(
            cx.span().span_context().trace_id(),
            TraceId::from(0xabc_u128)
        );
        assert!(is_sampled());
    }
    {
        let _g = remote(TraceFlags::default()).attach();
        assert!(
            sampled_context().is_none(),
            "not sampled: no context is carried"
        );
        assert!(!is_sampled());
        assert!(
            current_context().has_active_span(),
            "the current context is still there"
        );
    }
}

#[test]
fn span_policy_decides_the_parent() {
    let tt = TestTelemetry::new();
    let t = tt.telemetry();
    assert!(t.span_parent().is_none());
    assert!(
        t.clone()
            .with_span_policy(SpanPolicy::Always)
            .span_parent()
            .is_some()
    );
    let _g = tt.root("caller").attach();
    let parent = t.span_parent().expect("sampled caller");
    assert_eq!(
        parent.span().span_context().trace_id(),
        Context::current().span().span_context().trace_id()
    );
    assert!(
        t.with_span_policy(SpanPolicy::Never)
            .span_parent()
            .is_none()
    );
}

#[test]
fn injected_tracer_exports_to_the_injected_provider() {
    let tt = TestTelemetry::new();
    let t = tt.telemetry();
    t.tracer().start("probe").end();
    let spans = tt.spans_named("probe");
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].instrumentation_scope.name(),
        otelconc::telemetry::SCOPE_NAME
    );
}

#[cfg(feature = "tracing")]
#[test]
fn the_current_tracing_span_is_the_context_when_bridged() {
    use opentelemetry::trace::TracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    let tt = TestTelemetry::new();
    let tracer = tt.tracer_provider().tracer("bridge");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        assert!(sampled_context().is_none(), "no tracing span yet");
        let span = tracing::info_span!("request");
        let _e = span.enter();
        let cx = sampled_context().expect("the tracing span is bridged and sampled");
        assert!(cx.span().span_context().is_valid());
        assert_eq!(
            current_context().span().span_context().span_id(),
            cx.span().span_context().span_id()
        );
    });
}
