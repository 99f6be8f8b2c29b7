//! The spans and metrics an exporter receives from a TaskGroup.

use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Status, TraceContextExt};
use otelconc::group::TaskGroup;
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{SpanData, TestTelemetry, attr};

fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn cancelled(span: &SpanData) -> bool {
    span.status == Status::Unset
        && str_attr(span, ATTR_OUTCOME).as_deref() == Some("cancelled")
        && str_attr(span, ATTR_ERROR_TYPE).is_none()
}

#[tokio::test]
async fn task_spans_are_children_of_the_spawner_and_metrics_count_outcomes() {
    let tt = TestTelemetry::new();
    let mut group: TaskGroup<(), String> = TaskGroup::builder()
        .name("fetch")
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    async {
        group.spawn(async { Ok(()) }).await.unwrap();
        group
            .spawn(async { Err("backend down".to_owned()) })
            .await
            .unwrap();
    }
    .with_context(root.clone())
    .await;
    // Spawned outside any trace: no span. (On this current-thread runtime no task has
    // run yet, so the group is not cancelled and the spawn is accepted.)
    group.spawn(async { Ok(()) }).await.unwrap();
    let _ = group.wait().await;
    root.span().end();

    let root_id = root.span().span_context().span_id();
    let trace_id = root.span().span_context().trace_id();
    let spans = tt.spans_named("otelconc.group.task");
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for s in &spans {
        assert_eq!(s.parent_span_id, root_id);
        assert_eq!(s.span_context.trace_id(), trace_id);
    }
    // The error rule: status Error with the message, `error.type` the error's type
    // name, no `exception` event.
    let failed: Vec<_> = spans
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{spans:#?}");
    assert_eq!(
        failed[0].status,
        Status::error("backend down"),
        "the message is the status description"
    );
    assert_eq!(
        str_attr(failed[0], ATTR_ERROR_TYPE).as_deref(),
        Some(std::any::type_name::<String>())
    );
    assert!(
        spans
            .iter()
            .all(|s| s.events.iter().all(|e| e.name != "exception"))
    );

    let m = tt.metrics();
    let name = attr(ATTR_NAME, "fetch");
    assert_eq!(
        m.value("otelconc.group.task.started", std::slice::from_ref(&name)),
        Some(3.0)
    );
    let finished = |outcome: &'static str| {
        m.value(
            "otelconc.group.task.finished",
            &[name.clone(), attr(ATTR_OUTCOME, outcome)],
        )
    };
    assert_eq!(finished("ok"), Some(2.0));
    assert_eq!(finished("error"), Some(1.0));
    // The failure carries the same error.type as its span.
    assert_eq!(
        m.value(
            "otelconc.group.task.finished",
            &[
                name.clone(),
                attr(ATTR_OUTCOME, "error"),
                attr(ATTR_ERROR_TYPE, std::any::type_name::<String>()),
            ],
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("otelconc.group.task.active", std::slice::from_ref(&name)),
        Some(0.0)
    );
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn a_panicked_task_is_an_error_and_an_aborted_one_is_cancelled() {
    let tt = TestTelemetry::new();
    let mut group: TaskGroup<(), String> = TaskGroup::builder()
        .name("jobs")
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    async {
        group.spawn(async { panic!("oops") }).await.unwrap();
        group
            .spawn(std::future::pending::<Result<(), String>>())
            .await
            .ok();
    }
    .with_context(root.clone())
    .await;
    let err = group.shutdown(Duration::from_millis(1)).await.unwrap_err();
    assert_eq!(err.len(), 2);
    let spans = tt.spans_named("otelconc.group.task");
    assert_eq!(spans.len(), 2, "every task span ended");
    let panicked = spans
        .iter()
        .find(|s| matches!(s.status, Status::Error { .. }))
        .expect("the panicked task's span");
    assert_eq!(panicked.status, Status::error("oops"));
    assert_eq!(
        str_attr(panicked, ATTR_ERROR_TYPE).as_deref(),
        Some("panic")
    );
    assert_eq!(
        spans.iter().filter(|s| cancelled(s)).count(),
        1,
        "{spans:#?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.events.iter().all(|e| e.name != "exception"))
    );
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "jobs");
    for outcome in ["panic", "cancelled"] {
        assert_eq!(
            m.value(
                "otelconc.group.task.finished",
                &[name.clone(), attr(ATTR_OUTCOME, outcome)]
            ),
            Some(1.0),
            "{outcome}"
        );
    }
    assert_eq!(
        m.value(
            "otelconc.group.task.finished",
            &[
                name.clone(),
                attr(ATTR_OUTCOME, "panic"),
                attr(ATTR_ERROR_TYPE, "panic")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(m.value("otelconc.group.task.active", &[name]), Some(0.0));
}

#[tokio::test]
async fn tasks_aborted_before_their_first_poll_are_still_accounted_for() {
    let tt = TestTelemetry::new();
    let mut group: TaskGroup<(), String> = TaskGroup::builder()
        .name("unstarted")
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let root = tt.root("submitter");
    async {
        for _ in 0..3 {
            group.spawn(async { Ok(()) }).await.unwrap();
        }
    }
    .with_context(root)
    .await;
    // On this current-thread runtime none of them has run yet: dropping the group
    // aborts them before their first poll.
    drop(group);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let spans = tt.spans_named("otelconc.group.task");
    assert_eq!(spans.len(), 3, "every span ended");
    assert!(spans.iter().all(cancelled), "{spans:#?}");
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "unstarted");
    assert_eq!(
        m.value(
            "otelconc.group.task.finished",
            &[name.clone(), attr(ATTR_OUTCOME, "cancelled")]
        ),
        Some(3.0)
    );
    assert_eq!(m.value("otelconc.group.task.active", &[name]), Some(0.0));
}

/// One failing task among five: its span is the one error. The four siblings, still
/// running when the caller shuts the group down, are aborted: cancelled, not errors.
#[tokio::test(start_paused = true)]
async fn one_failing_task_is_one_error_span_and_its_aborted_siblings_are_cancelled() {
    let tt = TestTelemetry::new();
    let mut group: TaskGroup<(), String> = TaskGroup::builder()
        .name("siblings")
        .telemetry(tt.telemetry())
        .build()
        .unwrap();
    let token = group.token();
    let root = tt.root("submitter");
    async {
        for _ in 0..4 {
            // Siblings that ignore the token.
            group
                .spawn(std::future::pending::<Result<(), String>>())
                .await
                .unwrap();
        }
        group
            .spawn(async { Err("backend down".to_owned()) })
            .await
            .unwrap();
    }
    .with_context(root.clone())
    .await;
    token.cancelled().await;
    let err = group.shutdown(Duration::from_millis(10)).await.unwrap_err();
    assert_eq!(err.len(), 5);

    let spans = tt.spans_named("otelconc.group.task");
    assert_eq!(spans.len(), 5);
    let errors: Vec<_> = spans
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(errors.len(), 1, "{spans:#?}");
    assert_eq!(
        str_attr(errors[0], "otelconc.group.task.index").as_deref(),
        Some("4")
    );
    assert!(str_attr(errors[0], ATTR_ERROR_TYPE).is_some());
    assert_eq!(
        spans.iter().filter(|s| cancelled(s)).count(),
        4,
        "{spans:#?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.events.iter().all(|e| e.name != "exception"))
    );
}
