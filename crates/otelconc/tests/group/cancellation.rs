//! TaskGroup cancellation: the token, shutdown, drop, the parent token.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otelconc::group::{CancelCause, TaskError, TaskGroup, TrySpawnError};
use otelconc_testkit::{Alive, settle};
use tokio::time::sleep;

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

/// Each way the group ends names its cause on the token: `wait` (even when every task
/// succeeded), `cancel`, `shutdown`, and dropping a `wait` future, which also aborts
/// the tasks still running. After `cancel`, both kinds of spawn hand the task back.
#[tokio::test(start_paused = true)]
async fn every_way_the_group_ends_names_its_cause() {
    let mut group: TaskGroup<u32, String> = TaskGroup::new();
    let token = group.token();
    group.spawn(async { Ok(1) }).await.unwrap();
    assert_eq!(token.cause(), None);
    assert_eq!(group.wait().await.unwrap(), vec![1]);
    assert_eq!(token.cause(), Some(CancelCause::Finished));

    let mut group: TaskGroup<u32, String> = TaskGroup::builder().limit(4).build().unwrap();
    group.cancel();
    assert_eq!(group.token().cause(), Some(CancelCause::Cancelled));
    let back = group.spawn(async { Ok(2) }).await.unwrap_err().into_inner();
    assert_eq!(back.await, Ok(2), "spawn hands the task back, not started");
    let back = group.try_spawn(async { Ok(3) }).unwrap_err();
    assert!(matches!(back, TrySpawnError::Cancelled(_)));
    assert_eq!(back.into_inner().await, Ok(3));
    assert!(group.is_empty());
    assert_eq!(group.wait().await.unwrap(), Vec::<u32>::new());

    let mut group: TaskGroup<u32, String> = TaskGroup::new();
    let token = group.token();
    group.spawn(async { Ok(4) }).await.unwrap();
    assert_eq!(
        group.shutdown(Duration::from_secs(1)).await.unwrap(),
        vec![4]
    );
    assert_eq!(token.cause(), Some(CancelCause::Shutdown));

    let alive = Arc::new(AtomicUsize::new(0));
    let mut group: TaskGroup<u32, String> = TaskGroup::new();
    let token = group.token();
    let guard = Alive::new(&alive);
    group
        .spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(5)
        })
        .await
        .unwrap();
    assert_eq!(group.len(), 1);
    let waited = tokio::time::timeout(Duration::from_secs(1), group.wait()).await;
    assert!(waited.is_err(), "the task never ends");
    assert!(
        token.is_cancelled(),
        "dropping a wait future fires the token"
    );
    assert_eq!(token.cause(), Some(CancelCause::Dropped));
    assert_eq!(
        settle(&alive).await,
        0,
        "the task outlived its dropped wait"
    );
}
