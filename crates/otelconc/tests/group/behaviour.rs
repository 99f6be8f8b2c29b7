//! TaskGroup: results, every error, the token's cause, panics, limits, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otelconc::group::{CancelCause, TaskError, TaskGroup, TrySpawnError};
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
