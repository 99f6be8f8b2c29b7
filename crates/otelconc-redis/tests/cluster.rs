//! On a Redis Cluster node, a job's effect keys must share the queue's hash tag.

mod support;

use otelconc_redis::{JobContext, Queue, Worker};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use support::{Server, run_until_empty, until};

#[derive(Serialize, Deserialize)]
struct Job {
    key: String,
}

/// A one-node cluster that owns every slot: it would run a script touching a key of
/// another slot without complaint, which a cluster of several nodes would not.
async fn one_node_cluster() -> Server {
    let server = Server::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    let mut c = server.conn().await;
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async(&mut c)
        .await
        .unwrap();
    until(|| {
        let mut c = c.clone();
        async move {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut c)
                .await
                .unwrap();
            info.contains("cluster_state:ok")
        }
    })
    .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_effect_outside_the_queues_hash_slot_fails_its_job_with_a_clear_error() {
    let server = one_node_cluster().await;
    let q = Queue::<Job>::connect(&server.url(), "t").await.unwrap();
    let inside = "otelconc:{t}:effects";
    let bad = q
        .submit(&Job {
            key: "elsewhere".into(),
        })
        .await
        .unwrap();
    let good = q.submit(&Job { key: inside.into() }).await.unwrap();
    let report = run_until_empty(
        Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
            cx.effect(redis::cmd("HINCRBY").arg(&j.key).arg(cx.id()).arg(1));
            Ok::<(), String>(())
        }),
        &q,
    )
    .await;
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].source_id, bad);
    assert_eq!(
        dead[0].error,
        "effect key `elsewhere` is outside the queue's hash slot: in Redis Cluster the keys \
         of a job's effects must carry the queue's hash tag {t}"
    );
    let mut c = server.conn().await;
    let elsewhere: bool = c.exists("elsewhere").await.unwrap();
    assert!(!elsewhere, "nothing of the failed job was applied");
    let applied: Option<i64> = c.hget(inside, &good).await.unwrap();
    assert_eq!(applied, Some(1));
    assert_eq!(
        (report.completed, report.dead_lettered),
        (1, 1),
        "{report:?}"
    );
}
