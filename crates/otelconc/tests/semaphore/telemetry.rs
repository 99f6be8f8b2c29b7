//! The semaphore's metrics and wait spans, as an exporter receives them.

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::names::semaphore::ATTR_PERMIT_STATE;
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};

use crate::settle;

#[tokio::test]
async fn metrics_count_grants_refusals_permits_and_real_waits() {
    let tt = TestTelemetry::new();
    let sem = Semaphore::builder("pool", 3)
        .telemetry(tt.telemetry())
        .build()
        .expect("valid");
    let name = attr(ATTR_NAME, "pool");
    let a = sem.acquire_many(2).await.expect("free"); // no wait
    assert!(sem.try_acquire_many(2).is_err()); // unavailable
    assert!(sem.try_acquire_many(4).is_err()); // exceeds the total
    let m = tt.metrics();
    // No wait recorded: no point, or (bound instruments) an empty one.
    assert_eq!(
        m.histogram(
            "otelconc.semaphore.wait.duration",
            std::slice::from_ref(&name)
        )
        .map_or(0, |(count, _)| count),
        0
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.permit.count",
            &[name.clone(), attr(ATTR_PERMIT_STATE, "used")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.permit.count",
            &[name.clone(), attr(ATTR_PERMIT_STATE, "free")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.permit.limit",
            std::slice::from_ref(&name)
        ),
        Some(3.0)
    );

    let waiter = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire_many(3).await.map(|p| p.num_permits()) }
    });
    settle().await;
    assert_eq!(
        tt.metrics().value(
            "otelconc.semaphore.waiter.count",
            std::slice::from_ref(&name)
        ),
        Some(1.0)
    );
    drop(a);
    assert_eq!(waiter.await.expect("no panic"), Ok(3));

    let m = tt.metrics();
    // Calls and permits, each by the same outcome and error.type.
    let by = |metric: &str, outcome: &'static str, error: Option<&'static str>| {
        let mut attrs = vec![name.clone(), attr(ATTR_OUTCOME, outcome)];
        attrs.extend(error.map(|e| attr(ATTR_ERROR_TYPE, e)));
        m.value(metric, &attrs)
    };
    let calls = |o, e| by("otelconc.semaphore.acquisitions", o, e);
    let permits = |o, e| by("otelconc.semaphore.permits", o, e);
    assert_eq!(calls("ok", None), Some(2.0));
    assert_eq!(permits("ok", None), Some(5.0));
    assert_eq!(calls("refused", Some("would_block")), Some(1.0));
    assert_eq!(permits("refused", Some("would_block")), Some(2.0));
    assert_eq!(calls("refused", Some("exceeds_total")), Some(1.0));
    assert_eq!(permits("refused", Some("exceeds_total")), Some(4.0));
    assert_eq!(calls("cancelled", None), Some(0.0));
    // One call of the four waited.
    assert_eq!(
        m.value("otelconc.semaphore.contended", std::slice::from_ref(&name)),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.acquisitions",
            std::slice::from_ref(&name)
        ),
        Some(4.0)
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.waiter.count",
            std::slice::from_ref(&name)
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "otelconc.semaphore.permit.count",
            &[name.clone(), attr(ATTR_PERMIT_STATE, "used")]
        ),
        Some(0.0)
    );
    let (count, sum) = m
        .histogram(
            "otelconc.semaphore.wait.duration",
            &[name.clone(), attr(ATTR_OUTCOME, "ok")],
        )
        .expect("one real wait");
    assert_eq!(count, 1);
    assert!(sum > 0.0);
    tt.assert_all_cataloged();
    drop(sem);
    // A dropped semaphore stops reporting.
    assert_eq!(
        tt.metrics().value("otelconc.semaphore.permit.limit", &[]),
        None
    );
}

#[tokio::test]
async fn wait_spans_only_inside_a_sampled_trace_as_children_of_the_caller() {
    let tt = TestTelemetry::new();
    let sem = Semaphore::builder("traced", 1)
        .telemetry(tt.telemetry())
        .build()
        .expect("valid");
    let root = tt.root("caller");
    let root_id = root.span().span_context().span_id();

    // No wait inside the trace: no span.
    let held = sem
        .acquire()
        .with_context(root.clone())
        .await
        .expect("free");
    // A wait outside any trace: no span.
    let outside = tokio::spawn({
        let sem = sem.clone();
        async move {
            drop(sem.acquire().await);
        }
    });
    settle().await;
    // A wait inside the trace: a span, child of the caller.
    let inside = tokio::spawn({
        let (sem, root) = (sem.clone(), root.clone());
        async move {
            drop(sem.acquire().with_context(root).await);
        }
    });
    settle().await;
    // A cancelled wait inside the trace: its span ends too, marked cancelled.
    let cancelled = tokio::spawn({
        let (sem, root) = (sem.clone(), root.clone());
        async move {
            drop(sem.acquire().with_context(root).await);
        }
    });
    settle().await;
    cancelled.abort();
    let _ = cancelled.await;
    drop(held);
    outside.await.expect("no panic");
    inside.await.expect("no panic");
    root.span().end();

    let spans = tt.spans_named("otelconc.semaphore.wait");
    assert_eq!(spans.len(), 2, "{spans:?}");
    let outcome = |s: &otelconc_testkit::SpanData| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == ATTR_OUTCOME)
            .map(|kv| kv.value.to_string())
    };
    let mut outcomes: Vec<_> = spans.iter().filter_map(outcome).collect();
    outcomes.sort();
    assert_eq!(outcomes, vec!["cancelled", "ok"]);
    for s in &spans {
        assert_eq!(s.parent_span_id, root_id);
    }
    tt.assert_all_cataloged();
}
