//! What a task carries of its spawner: the context (sampled or not) and its baggage,
//! and the parent and link of its span.

use std::sync::Arc;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, TraceId};
use otelconc::group::TaskGroup;
use otelconc::telemetry::SpanPolicy;
use otelconc_testkit::{BAGGAGE_VALUE, TestTelemetry, UNSAMPLED_TRACE_ID, seen_context};

fn group<T: Send + 'static>(tt: &TestTelemetry) -> TaskGroup<T, String> {
    TaskGroup::builder()
        .name("context")
        .telemetry(tt.telemetry())
        .build()
        .unwrap()
}

/// Under a parent-based sampler, a span the task starts is a child of the spawner's
/// unsampled span and is dropped with it. Had the task lost that context, the span would
/// be a new root, which the sampler keeps and exports.
#[tokio::test]
async fn a_task_spawned_under_an_unsampled_parent_starts_no_exported_span() {
    let tt = Arc::new(TestTelemetry::parent_based());
    let mut g = group(&tt);
    let user = tt.clone();
    g.spawn(async move {
        user.start_user_span("user.work");
        Ok(())
    })
    .with_context(TestTelemetry::unsampled_parent())
    .await
    .unwrap();
    // The same task spawned outside any trace does start an exported root (so the
    // assertion below can fail).
    let user = tt.clone();
    g.spawn(async move {
        user.start_user_span("user.root");
        Ok(())
    })
    .await
    .unwrap();
    g.wait().await.unwrap();

    assert!(tt.spans_named("user.work").is_empty(), "{:#?}", tt.spans());
    assert_eq!(tt.spans_named("user.root").len(), 1);
    assert!(tt.spans_named("otelconc.group.task").is_empty());
}

/// A task runs inside the spawner's context even when it is not sampled: logs written
/// there carry its trace id, and its baggage is readable. `try_spawn` carries it too.
#[tokio::test]
async fn a_task_sees_the_spawners_unsampled_trace_id_and_baggage() {
    let tt = TestTelemetry::parent_based();
    let mut g = group(&tt);
    async {
        g.spawn(async { Ok(seen_context()) }).await.unwrap();
        g.try_spawn(async { Ok(seen_context()) }).unwrap();
    }
    .with_context(TestTelemetry::unsampled_parent())
    .await;
    let seen = g.wait().await.unwrap();
    for (trace, baggage) in seen {
        assert_eq!(trace, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
        assert_eq!(baggage.as_deref(), Some(BAGGAGE_VALUE));
    }
}

/// `SpanPolicy::Never` turns spans off, not the context: a task spawned inside a
/// sampled trace still runs in that trace, and under an unsampled one still sees its
/// trace id and baggage, with no `otelconc.group.task` span either way.
#[tokio::test]
async fn without_spans_a_task_still_runs_in_the_spawners_context() {
    let tt = TestTelemetry::parent_based();
    let mut g: TaskGroup<_, String> = TaskGroup::builder()
        .name("context")
        .telemetry(tt.telemetry().with_span_policy(SpanPolicy::Never))
        .build()
        .unwrap();
    g.spawn(async { Ok(seen_context()) })
        .with_context(TestTelemetry::unsampled_parent())
        .await
        .unwrap();
    let root = tt.root("caller");
    let root_trace = root.span().span_context().trace_id();
    g.spawn(async { Ok(seen_context()) })
        .with_context(root)
        .await
        .unwrap();
    let seen = g.wait().await.unwrap();
    assert_eq!(
        seen[0],
        (
            Some(TraceId::from(UNSAMPLED_TRACE_ID)),
            Some(BAGGAGE_VALUE.to_owned())
        )
    );
    assert_eq!(seen[1].0, Some(root_trace));
    assert!(tt.spans_named("otelconc.group.task").is_empty());
}

/// A `tracing` event written in a task, spawned from inside a `tracing` span whose
/// OpenTelemetry parent is not sampled, carries that trace id (as a log appender reads
/// it).
#[cfg(feature = "tracing")]
#[tokio::test]
async fn a_tracing_event_in_a_task_carries_the_unsampled_spawners_trace_id() {
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let tt = TestTelemetry::parent_based();
    let (dispatch, events) = otelconc_testkit::log_capture(&tt);
    // A current-thread runtime: the tasks run on this thread, under this dispatcher.
    let _default = tracing::dispatcher::set_default(&dispatch);
    let mut g = group::<()>(&tt);
    let request = tracing::info_span!("request");
    request
        .set_parent(TestTelemetry::unsampled_parent())
        .unwrap();
    async {
        g.spawn(async {
            tracing::info!("in the task");
            Ok(())
        })
        .await
        .unwrap();
    }
    .instrument(request)
    .await;
    g.wait().await.unwrap();

    let logged = events.with_message("in the task");
    assert_eq!(logged.len(), 1, "{:#?}", events.all());
    assert_eq!(logged[0].trace_id, Some(TraceId::from(UNSAMPLED_TRACE_ID)));
    assert_eq!(logged[0].baggage.as_deref(), Some(BAGGAGE_VALUE));
}

/// The consumer rule: a task runs outside any span, so its span is a child of the
/// spawner's sampled span, and links to it.
#[tokio::test]
async fn a_task_span_is_a_child_of_the_spawner_and_links_to_it() {
    let tt = Arc::new(TestTelemetry::new());
    let mut g = group(&tt);
    let root = tt.root("spawner");
    let user = tt.clone();
    g.spawn(async move {
        user.start_user_span("user.work");
        Ok(())
    })
    .with_context(root.clone())
    .await
    .unwrap();
    g.wait().await.unwrap();
    root.span().end();

    let spawner = root.span().span_context().clone();
    let task = tt
        .spans_named("otelconc.group.task")
        .pop()
        .expect("task span");
    assert_eq!(task.parent_span_id, spawner.span_id());
    assert_eq!(task.span_context.trace_id(), spawner.trace_id());
    let links: Vec<_> = task.links.iter().map(|l| l.span_context.clone()).collect();
    assert_eq!(links, [spawner]);
    // Work the task starts is a child of the task's span.
    let work = tt.spans_named("user.work").pop().expect("user span");
    assert_eq!(work.parent_span_id, task.span_context.span_id());
}
