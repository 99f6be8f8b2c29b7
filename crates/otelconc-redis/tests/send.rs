//! The queue's futures are `Send` in generic async code: a library can spawn them for
//! any job type, without knowing it, and without the job type being `Sync`.

mod support;

use std::cell::Cell;
use std::time::Duration;

use otelconc_redis::{JobContext, Queue, Worker};
use serde::Serialize;
use serde::de::DeserializeOwned;
use support::Server;

/// Spawns a submit and a worker's shutdown from generic code: compiles only if the
/// futures are `Send` for every `J` that is `Send` (not `Sync`).
async fn submit_and_run<J>(queue: Queue<J>, job: J) -> (String, u64)
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    let q = queue.clone();
    let id = tokio::spawn(async move { q.submit(&job).await })
        .await
        .unwrap()
        .unwrap();
    let q = queue.clone();
    let ids = tokio::spawn(async move { q.submit_many(&[] as &[J]).await })
        .await
        .unwrap()
        .unwrap();
    assert!(ids.is_empty());
    let builder = Worker::builder(queue.clone(), |_j: J, _cx: JobContext| async {
        Ok::<(), String>(())
    })
    .read_block(Duration::from_millis(50));
    let worker = tokio::spawn(async move { builder.start().await })
        .await
        .unwrap()
        .unwrap();
    let q = queue.clone();
    tokio::spawn(async move {
        support::until(|| async { q.is_empty().await.unwrap() }).await;
        q.pending().await.unwrap();
        q.len().await.unwrap();
        q.dead_letters(1).await.unwrap();
    })
    .await
    .unwrap();
    let report = tokio::spawn(async move { worker.shutdown(Duration::from_secs(5)).await })
        .await
        .unwrap();
    (id, report.completed)
}

/// `Send` but not `Sync`.
#[derive(serde::Serialize, serde::Deserialize)]
struct NotSync {
    n: Cell<u64>,
}

/// Connects from generic code, in a spawned task.
async fn connect<J>(url: String) -> Queue<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move { Queue::<J>::connect(&url, "send").await })
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_shutdown_futures_are_send_for_a_job_that_is_not_sync() {
    let server = Server::start();
    let q = connect::<NotSync>(server.url()).await;
    let (id, completed) = submit_and_run(q, NotSync { n: Cell::new(3) }).await;
    assert!(!id.is_empty());
    assert_eq!(completed, 1);
}
