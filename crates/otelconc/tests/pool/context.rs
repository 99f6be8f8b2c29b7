//! What a job carries of its submitter: the context (sampled or not) and its baggage,
//! and the parent and link of its span.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, TraceId};
use otelconc::pool::WorkerPool;
use otelconc_testkit::{BAGGAGE_VALUE, SpanData, TestTelemetry, UNSAMPLED_TRACE_ID, seen_context};

fn pool(tt: &TestTelemetry, name: &str) -> WorkerPool {
    WorkerPool::builder(name)
        .workers(2)
        .telemetry(tt.telemetry())
        .build()
        .unwrap()
}

/// Under a parent-based sampler, a span the job starts is a child of the submitter's
/// unsampled span and is dropped with it. Had the job lost that context, the span would
/// be a new root, which the sampler keeps and exports.
#[tokio::test]
async fn a_job_submitted_under_an_unsampled_parent_starts_no_exported_span() {
    let tt = Arc::new(TestTelemetry::parent_based());
    let p = pool(&tt, "unsampled");
    let user = tt.clone();
    let h = p
        .submit_handle(move || async move { user.start_user_span("user.work") })
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    h.await.unwrap();
    // The same job submitted outside any trace does start an exported root (so the
    // assertion above can fail).
    let user = tt.clone();
    let h = p
        .submit_handle(move || async move { user.start_user_span("user.root") })
        .await
        .unwrap();
    h.await.unwrap();
    p.shutdown(Duration::from_secs(5)).await;

    assert!(tt.spans_named("user.work").is_empty(), "{:#?}", tt.spans());
    assert_eq!(tt.spans_named("user.root").len(), 1);
    assert!(tt.spans_named("otelconc.pool.job").is_empty());
}

/// A job runs inside the submitter's context even when it is not sampled: logs written
/// there carry its trace id, and its baggage is readable.
#[tokio::test]
async fn a_job_sees_the_submitters_unsampled_trace_id_and_baggage() {
    let tt = TestTelemetry::parent_based();
    let p = pool(&tt, "baggage");
    let h = p
        .submit_handle(|| async { seen_context() })
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    let (trace, baggage) = h.await.unwrap();
    assert_eq!(trace, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
    assert_eq!(baggage.as_deref(), Some(BAGGAGE_VALUE));
    // try_submit carries it the same way.
    let h = async { p.try_submit_handle(|| async { seen_context() }) }
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    assert_eq!(h.await.unwrap().1.as_deref(), Some(BAGGAGE_VALUE));
    p.shutdown(Duration::from_secs(5)).await;
}

/// A `tracing` event written in a job, submitted from inside a `tracing` span whose
/// OpenTelemetry parent is not sampled, carries that trace id (as a log appender reads
/// it).
#[cfg(feature = "tracing")]
#[tokio::test]
async fn a_tracing_event_in_a_job_carries_the_unsampled_submitters_trace_id() {
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let tt = TestTelemetry::parent_based();
    let (dispatch, events) = otelconc_testkit::log_capture(&tt);
    // A current-thread runtime: the workers run on this thread, under this dispatcher.
    let _default = tracing::dispatcher::set_default(&dispatch);
    let p = pool(&tt, "logs");
    let request = tracing::info_span!("request");
    request
        .set_parent(TestTelemetry::unsampled_parent())
        .unwrap();
    let h = p
        .submit_handle(|| async { tracing::info!("in the job") })
        .instrument(request)
        .await
        .unwrap();
    h.await.unwrap();
    p.shutdown(Duration::from_secs(5)).await;

    let logged = events.with_message("in the job");
    assert_eq!(logged.len(), 1, "{:#?}", events.all());
    assert_eq!(logged[0].trace_id, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
    assert_eq!(logged[0].baggage.as_deref(), Some(BAGGAGE_VALUE));
}

/// The consumer rule: a worker runs outside any span, so a job's span is a child of the
/// submitter's sampled span, and links to it.
#[tokio::test]
async fn a_job_span_is_a_child_of_the_submitter_and_links_to_it() {
    let tt = Arc::new(TestTelemetry::new());
    let p = pool(&tt, "linked");
    let root = tt.root("submitter");
    let user = tt.clone();
    let h = p
        .submit_handle(move || async move { user.start_user_span("user.work") })
        .with_context(root.clone())
        .await
        .unwrap();
    h.await.unwrap();
    p.shutdown(Duration::from_secs(5)).await;
    root.span().end();

    let submitter = root.span().span_context().clone();
    let job: SpanData = tt.spans_named("otelconc.pool.job").pop().expect("job span");
    assert_eq!(job.parent_span_id, submitter.span_id());
    assert_eq!(job.span_context.trace_id(), submitter.trace_id());
    let links: Vec<_> = job.links.iter().map(|l| l.span_context.clone()).collect();
    assert_eq!(links, [submitter]);
    // Work the job starts is a child of the job's span.
    let work = tt.spans_named("user.work").pop().expect("user span");
    assert_eq!(work.parent_span_id, job.span_context.span_id());
}
