//! The semaphore's metrics and wait spans, as an exporter receives them.

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
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
        m.histogram("otelconc.semaphore.wait", std::slice::from_ref(&name))
            .map_or(0, |(count, _)| count),
        0
    );
    assert_eq!(
        m.value("otelconc.semaphore.in_use", std::slice::from_ref(&name)),
        Some(2.0)
    );
    assert_eq!(
        m.value("otelconc.semaphore.available", std::slice::from_ref(&name)),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.semaphore.limit", std::slice::from_ref(&name)),
        Some(3.0)
    );

    let waiter = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire_many(3).await.map(|p| p.num_permits()) }
    });
    settle().await;
    assert_eq!(
        tt.metrics()
            .value("otelconc.semaphore.waiters", std::slice::from_ref(&name)),
        Some(1.0)
    );
    drop(a);
    assert_eq!(waiter.await.expect("no panic"), Ok(3));

    let m = tt.metrics();
    assert_eq!(
        m.value("otelconc.semaphore.admitted", std::slice::from_ref(&name)),
        Some(5.0)
    );
    let refused = |reason: &'static str| {
        m.value(
            "otelconc.semaphore.refused",
            &[name.clone(), attr(ATTR_REASON, reason)],
        )
    };
    assert_eq!(refused("unavailable"), Some(2.0));
    assert_eq!(refused("exceeds_total"), Some(4.0));
    assert_eq!(refused("cancelled"), Some(0.0));
    assert_eq!(
        m.value("otelconc.semaphore.waiters", std::slice::from_ref(&name)),
        Some(0.0)
    );
    assert_eq!(
        m.value("otelconc.semaphore.in_use", std::slice::from_ref(&name)),
        Some(0.0)
    );
    let (count, sum) = m
        .histogram(
            "otelconc.semaphore.wait",
            &[name.clone(), attr(ATTR_OUTCOME, "ok")],
        )
        .expect("one real wait");
    assert_eq!(count, 1);
    assert!(sum > 0.0);
    tt.assert_all_cataloged();
    drop(sem);
    // A dropped semaphore stops reporting.
    assert_eq!(tt.metrics().value("otelconc.semaphore.limit", &[]), None);
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
