//! TaskGroup: results, every error, the token's cause, panics, limits, shutdown, drop,
//! and the telemetry an exporter receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Status, TraceContextExt};
use otelconc::group::{CancelCause, TaskError, TaskGroup, TrySpawnError};
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{Alive, TestTelemetry, attr, settle};
use tokio::sync::oneshot;
use tokio::time::sleep;

#[tokio::test(start_paused = true)]
async fn wait_returns_values_in_spawn_order() {
    let mut group: TaskGroup<u64, String> = TaskGroup::new();
    for (i, delay) in [30u64, 10, 20].into_iter().enumerate() {
        group
            .spawn(async move {
                sleep(Duration::from_millis(delay)).await;
                Ok(i as u64)
            })
            .await
            .unwrap();
    }
    assert_eq!(group.wait().await.unwrap(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn first_error_fires_the_token_with_its_cause_and_every_error_is_kept() {
    let mut group: TaskGroup<(), String> = TaskGroup::new();
    let token = group.token();
    group
        .spawn(async {
            sleep(Duration::from_millis(10)).await;
            Err("disk full".to_owned())
        })
        .await
        .unwrap();
    group
        .spawn(async {
            sleep(Duration::from_millis(20)).await;
            Err("network down".to_owned())
        })
        .await
        .unwrap();
    let watcher = token.clone();
    group
        .spawn(async move {
            watcher.cancelled().await;
            // The cause is readable by the task that was woken.
            match watcher.cause() {
                Some(CancelCause::TaskFailed { index: 0, message }) if &*message == "disk full" => {
                    Ok(())
                }
                other => Err(format!("unexpected cause {other:?}")),
            }
        })
        .await
        .unwrap();
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
    assert_eq!(
        err.first(),
        &TaskError::Failed {
            index: 0,
            error: "disk full".to_owned()
        }
    );
    let indexes: Vec<usize> = err.iter().map(TaskError::index).collect();
    assert_eq!(indexes, [0, 1]);
    assert_eq!(
        err.to_string(),
        "task 0 failed: disk full (and 1 more task error)"
    );
}

#[tokio::test]
async fn a_panic_becomes_an_error_with_its_message() {
    let mut group: TaskGroup<u8, String> = TaskGroup::new();
    let token = group.token();
    group.spawn(async { Ok(1) }).await.unwrap();
    group
        .spawn(async {
            let n = 3;
            panic!("bad index {n}")
        })
        .await
        .unwrap();
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err.first(),
        &TaskError::Panicked {
            index: 1,
            message: "bad index 3".to_owned()
        }
    );
    assert!(matches!(
        token.cause(),
        Some(CancelCause::TaskPanicked { index: 1, message }) if &*message == "bad index 3"
    ));
}

#[tokio::test(start_paused = true)]
async fn with_a_limit_spawn_waits_for_a_slot_and_try_spawn_refuses() {
    let mut group: TaskGroup<(), String> = TaskGroup::builder().limit(2).build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (tx0, rx0) = oneshot::channel::<()>();
    let (tx1, rx1) = oneshot::channel::<()>();
    for rx in [rx0, rx1] {
        let (running, peak) = (running.clone(), peak.clone());
        group
            .spawn(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let _ = rx.await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap();
    }
    let refused = group.try_spawn(async { Ok(()) }).unwrap_err();
    assert!(matches!(refused, TrySpawnError::Full(_)), "{refused}");
    // spawn waits while both slots are taken...
    let waited = tokio::time::timeout(Duration::from_secs(5), group.spawn(async { Ok(()) })).await;
    assert!(
        waited.is_err(),
        "spawn returned while the limit was reached"
    );
    // ...and starts the task once one ends.
    tx0.send(()).unwrap();
    group.spawn(async { Ok(()) }).await.unwrap();
    tx1.send(()).unwrap();
    group.wait().await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn spawn_waiting_for_a_slot_stops_when_the_group_is_cancelled() {
    let mut group: TaskGroup<(), String> = TaskGroup::builder().limit(1).build().unwrap();
    let token = group.token();
    group
        .spawn(async move {
            sleep(Duration::from_millis(5)).await;
            Err("first failed".to_owned())
        })
        .await
        .unwrap();
    // Waits for the slot; the failure cancels the group first, so the task comes back.
    let refused = group.spawn(async { Ok(()) }).await;
    assert!(refused.is_err());
    assert!(token.is_cancelled());
    assert!(matches!(
        group.try_spawn(async { Ok(()) }),
        Err(TrySpawnError::Cancelled(_))
    ));
    assert_eq!(group.wait().await.unwrap_err().len(), 1);
}

#[tokio::test]
async fn dropping_the_group_aborts_every_task() {
    let alive = Arc::new(AtomicUsize::new(0));
    let mut group: TaskGroup<(), String> = TaskGroup::new();
    let token = group.token();
    for _ in 0..10 {
        let guard = Alive::new(&alive);
        group
            .spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok(())
            })
            .await
            .unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(alive.load(Ordering::SeqCst), 10);
    drop(group);
    assert_eq!(token.cause(), Some(CancelCause::Dropped));
    assert_eq!(settle(&alive).await, 0, "tasks outlived their group");
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_tasks_finish_within_grace_then_aborts_the_rest() {
    let alive = Arc::new(AtomicUsize::new(0));
    let mut group: TaskGroup<&str, String> = TaskGroup::new();
    let token = group.token();
    let guard = Alive::new(&alive);
    group
        .spawn(async move {
            let _guard = guard;
            token.cancelled().await; // cooperates
            Ok("stopped")
        })
        .await
        .unwrap();
    let guard = Alive::new(&alive);
    group
        .spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await; // ignores the token
            Ok("never")
        })
        .await
        .unwrap();
    let err = group.shutdown(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "shutdown returned with a task alive"
    );
    assert_eq!(err.len(), 1);
    assert_eq!(err.first(), &TaskError::Cancelled { index: 1 });
}

#[tokio::test]
async fn the_parent_token_cancels_the_group() {
    let parent = tokio_util::sync::CancellationToken::new();
    let mut group: TaskGroup<(), String> =
        TaskGroup::builder().parent_token(&parent).build().unwrap();
    let token = group.token();
    group
        .spawn(async move {
            token.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    parent.cancel();
    assert_eq!(group.token().cause(), Some(CancelCause::Parent));
    group.wait().await.unwrap();

    // Never the other way round: a failing group leaves its parent alone.
    let parent = tokio_util::sync::CancellationToken::new();
    let mut group: TaskGroup<(), String> =
        TaskGroup::builder().parent_token(&parent).build().unwrap();
    group.spawn(async { Err("x".to_owned()) }).await.unwrap();
    assert!(group.wait().await.is_err());
    assert!(!parent.is_cancelled());
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
    let failed = spans
        .iter()
        .find(|s| matches!(s.status, Status::Error { .. }))
        .expect("the failed task's span has an error status");
    assert!(failed.events.iter().any(|e| e.name == "exception"));

    let m = tt.metrics();
    let name = attr(ATTR_NAME, "fetch");
    assert_eq!(
        m.value("otelconc.group.tasks.started", std::slice::from_ref(&name)),
        Some(3.0)
    );
    let finished = |outcome: &'static str| {
        m.value(
            "otelconc.group.tasks.finished",
            &[name.clone(), attr(ATTR_OUTCOME, outcome)],
        )
    };
    assert_eq!(finished("ok"), Some(2.0));
    assert_eq!(finished("error"), Some(1.0));
    assert_eq!(
        m.value("otelconc.group.tasks.running", std::slice::from_ref(&name)),
        Some(0.0)
    );
    tt.assert_all_cataloged();
}

#[tokio::test(start_paused = true)]
async fn aborted_and_panicked_tasks_are_counted_and_their_spans_end() {
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
    assert!(
        spans
            .iter()
            .all(|s| matches!(s.status, Status::Error { .. }))
    );
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "jobs");
    for outcome in ["panic", "cancelled"] {
        assert_eq!(
            m.value(
                "otelconc.group.tasks.finished",
                &[name.clone(), attr(ATTR_OUTCOME, outcome)]
            ),
            Some(1.0),
            "{outcome}"
        );
    }
    assert_eq!(m.value("otelconc.group.tasks.running", &[name]), Some(0.0));
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
    assert_eq!(
        tt.spans_named("otelconc.group.task").len(),
        3,
        "every span ended"
    );
    let m = tt.metrics();
    let name = attr(ATTR_NAME, "unstarted");
    assert_eq!(
        m.value(
            "otelconc.group.tasks.finished",
            &[name.clone(), attr(ATTR_OUTCOME, "cancelled")]
        ),
        Some(3.0)
    );
    assert_eq!(m.value("otelconc.group.tasks.running", &[name]), Some(0.0));
}

#[test]
fn a_zero_limit_is_rejected_with_a_clear_error() {
    let err = TaskGroup::<(), String>::builder()
        .limit(0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task group limit must be at least 1 (a limit of 0 would never start a task); \
         leave it unset for no limit"
    );
}
