//! The limiter's telemetry, as an in-memory exporter receives it: calls and tokens by
//! outcome, contended calls, waiters, the tokens in the bucket, the configured rate and
//! burst, wait durations and wait spans.

use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::rate::{Clock, Rate, RateLimiter};
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};
use tokio::time::advance;

#[tokio::test(start_paused = true)]
async fn metrics_count_grants_refusals_and_real_waits() {
    let tt = TestTelemetry::new();
    let l = RateLimiter::builder("api", Rate::per_second(10.0).burst(2).expect("valid quota"))
        .clock(Clock::tokio())
        .telemetry(tt.telemetry())
        .build();
    let name = attr(ATTR_NAME, "api");
    l.try_acquire().expect("full");
    l.acquire().await.expect("one token"); // no wait: the bucket had a token
    assert!(l.try_acquire().is_err());
    assert!(l.try_acquire_many(3).is_err());
    let m = tt.metrics();
    // No wait recorded: no point, or (bound instruments) an empty one.
    assert_eq!(
        m.histogram("otelconc.rate.wait.duration", std::slice::from_ref(&name))
            .map_or(0, |(count, _)| count),
        0
    );
    assert!(
        m.value("otelconc.rate.token.count", std::slice::from_ref(&name))
            .expect("gauge")
            .abs()
            < 1e-9
    );

    let waiter = tokio::spawn({
        let l = l.clone();
        async move { l.acquire_many(2).await }
    });
    tokio::task::yield_now().await;
    let m = tt.metrics();
    assert_eq!(
        m.value("otelconc.rate.waiter.count", std::slice::from_ref(&name)),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.rate.token.count", std::slice::from_ref(&name)),
        Some(-2.0)
    );
    waiter.await.expect("no panic").expect("within the burst");

    let m = tt.metrics();
    // Calls and tokens, each by the same outcome and error.type.
    let by = |metric: &str, outcome: &'static str, error: Option<&'static str>| {
        let mut attrs = vec![name.clone(), attr(ATTR_OUTCOME, outcome)];
        attrs.extend(error.map(|e| attr(ATTR_ERROR_TYPE, e)));
        m.value(metric, &attrs)
    };
    let calls = |o, e| by("otelconc.rate.acquisitions", o, e);
    let tokens = |o, e| by("otelconc.rate.tokens", o, e);
    assert_eq!(calls("ok", None), Some(3.0));
    assert_eq!(tokens("ok", None), Some(4.0));
    assert_eq!(calls("refused", Some("rate_limited")), Some(1.0));
    assert_eq!(tokens("refused", Some("rate_limited")), Some(1.0));
    assert_eq!(calls("refused", Some("exceeds_burst")), Some(1.0));
    assert_eq!(tokens("refused", Some("exceeds_burst")), Some(3.0));
    assert_eq!(calls("cancelled", None), Some(0.0));
    assert_eq!(tokens("cancelled", None), Some(0.0));
    // One call of the five waited: the share of calls that waited is computable.
    assert_eq!(
        m.value("otelconc.rate.contended", std::slice::from_ref(&name)),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.rate.acquisitions", std::slice::from_ref(&name)),
        Some(5.0)
    );
    // The configured quota.
    assert_eq!(
        m.value("otelconc.rate.limit", std::slice::from_ref(&name)),
        Some(10.0)
    );
    assert_eq!(
        m.value("otelconc.rate.token.limit", std::slice::from_ref(&name)),
        Some(2.0)
    );
    assert_eq!(
        m.value("otelconc.rate.waiter.count", std::slice::from_ref(&name)),
        Some(0.0)
    );
    let (count, sum) = m
        .histogram(
            "otelconc.rate.wait.duration",
            &[name.clone(), attr(ATTR_OUTCOME, "ok")],
        )
        .expect("one wait");
    assert_eq!(count, 1);
    assert!((sum - 0.2).abs() < 1e-9, "waited {sum} s");
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn unlimited_reports_no_tokens_and_no_rate() {
    let tt = TestTelemetry::new();
    let l = RateLimiter::builder("free", Rate::Unlimited.burst(1).expect("valid quota"))
        .telemetry(tt.telemetry())
        .build();
    for _ in 0..10 {
        l.try_acquire().expect("unlimited");
    }
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "free");
    assert_eq!(
        m.value("otelconc.rate.acquisitions", std::slice::from_ref(&name)),
        Some(10.0)
    );
    assert_eq!(
        m.value("otelconc.rate.token.count", std::slice::from_ref(&name)),
        None
    );
    assert_eq!(
        m.value("otelconc.rate.limit", std::slice::from_ref(&name)),
        None
    );
    assert_eq!(m.value("otelconc.rate.token.limit", &[name]), Some(1.0));
    drop(l);
    // A dropped limiter stops reporting.
    assert_eq!(tt.metrics().value("otelconc.rate.acquisitions", &[]), None);
}

#[tokio::test(start_paused = true)]
async fn wait_spans_only_inside_a_sampled_trace_as_children_of_the_caller() {
    let tt = TestTelemetry::new();
    let l = RateLimiter::builder(
        "traced",
        Rate::per_second(10.0).burst(1).expect("valid quota"),
    )
    .clock(Clock::tokio())
    .telemetry(tt.telemetry())
    .build();
    // Outside a trace: no span even though it waits.
    l.acquire().await.expect("one token");
    l.acquire().await.expect("one token");
    assert!(tt.spans_named("otelconc.rate.wait").is_empty());

    let root = tt.root("caller");
    let root_id = root.span().span_context().span_id();
    // Inside a sampled trace: a wait gets a span, a pass-through does not.
    advance(Duration::from_secs(1)).await;
    l.acquire()
        .with_context(root.clone())
        .await
        .expect("one token"); // token there: no wait, no span
    l.acquire()
        .with_context(root.clone())
        .await
        .expect("one token"); // waits 100 ms
    // A cancelled wait ends its span too.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(10),
        l.acquire().with_context(root.clone()),
    )
    .await;
    assert!(cancelled.is_err());
    root.span().end();

    let spans = tt.spans_named("otelconc.rate.wait");
    assert_eq!(spans.len(), 2, "{spans:?}");
    for s in &spans {
        assert_eq!(s.parent_span_id, root_id);
        assert_eq!(
            s.span_context.trace_id(),
            root.span().span_context().trace_id()
        );
    }
    let outcome = |s: &otelconc_testkit::SpanData| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == ATTR_OUTCOME)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(outcome(&spans[0]).as_deref(), Some("ok"));
    assert_eq!(outcome(&spans[1]).as_deref(), Some("cancelled"));
    let (count, _) = tt
        .metrics()
        .histogram(
            "otelconc.rate.wait.duration",
            &[attr(ATTR_NAME, "traced"), attr(ATTR_OUTCOME, "cancelled")],
        )
        .expect("cancelled wait recorded");
    assert_eq!(count, 1);
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn cancelled_waits_and_reservations_count_once_and_the_quota_follows_changes() {
    let tt = TestTelemetry::new();
    let l = RateLimiter::builder("q", Rate::per_second(10.0).burst(3).expect("valid quota"))
        .clock(Clock::tokio())
        .telemetry(tt.telemetry())
        .build();
    let name = attr(ATTR_NAME, "q");
    l.try_acquire_many(3).expect("full");
    // A wait for 2 tokens, dropped while it waits.
    let waited = tokio::time::timeout(Duration::from_millis(10), l.acquire_many(2)).await;
    assert!(waited.is_err());
    // A reservation of 1, cancelled; another of 2, committed by dropping it.
    l.reserve().expect("within the burst").cancel();
    drop(l.reserve_many(2).expect("within the burst"));
    l.set_rate(Rate::per_second(2.5)).expect("valid rate");
    l.set_burst(5).expect("valid burst");

    let m = tt.metrics();
    let by = |metric: &str, outcome: &'static str| {
        m.value(metric, &[name.clone(), attr(ATTR_OUTCOME, outcome)])
    };
    assert_eq!(by("otelconc.rate.acquisitions", "ok"), Some(2.0));
    assert_eq!(by("otelconc.rate.tokens", "ok"), Some(5.0));
    assert_eq!(by("otelconc.rate.acquisitions", "cancelled"), Some(2.0));
    assert_eq!(by("otelconc.rate.tokens", "cancelled"), Some(3.0));
    // Only the acquire waited; the reservations were made, not waited on.
    assert_eq!(
        m.value("otelconc.rate.contended", std::slice::from_ref(&name)),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.rate.waiter.count", std::slice::from_ref(&name)),
        Some(0.0)
    );
    assert_eq!(
        m.value("otelconc.rate.limit", std::slice::from_ref(&name)),
        Some(2.5)
    );
    assert_eq!(
        m.value("otelconc.rate.token.limit", std::slice::from_ref(&name)),
        Some(5.0)
    );
    assert_eq!(
        m.histogram(
            "otelconc.rate.wait.duration",
            &[name, attr(ATTR_OUTCOME, "cancelled")]
        )
        .map(|(count, _)| count),
        Some(1)
    );
    tt.assert_all_cataloged();
}
