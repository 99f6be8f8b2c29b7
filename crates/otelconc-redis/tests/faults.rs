//! Faults: Redis killed and restarted under load, jobs of the wrong type, a server that
//! never answers.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otelconc_redis::{JobContext, Queue, Worker};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use support::{Server, run_until_empty, until};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Job {
    n: u64,
}

const EFFECTS: &str = "test:effects";

async fn effects(server: &Server) -> Option<HashMap<String, i64>> {
    let mut c = redis::Client::open(server.url())
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()?;
    c.hgetall(EFFECTS).await.ok()
}

/// Submits `n` jobs one at a time, retrying each until Redis acknowledges it; returns
/// the acknowledged ids. `acked` counts them as they come.
async fn produce(q: Queue<Job>, n: u64, acked: Arc<AtomicU64>) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        loop {
            match q.submit(&Job { n: i }).await {
                Ok(id) => {
                    ids.push(id);
                    acked.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                // Redis is down: the connection manager reconnects; try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_loses_nothing_acknowledged_and_applies_effects_once() {
    let mut server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let q = Queue::<Job>::connect(&server.url(), "t").await.unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let make = |ran: Arc<AtomicU64>| {
        move |_j: Job, cx: JobContext| {
            ran.fetch_add(1, Ordering::SeqCst);
            cx.effect(redis::cmd("HINCRBY").arg(EFFECTS).arg(cx.id()).arg(1));
            std::future::ready(Ok::<(), String>(()))
        }
    };
    let start = |q: Queue<Job>| {
        Worker::builder(q, make(ran.clone()))
            .workers(4)
            .visibility_timeout(Duration::from_secs(1))
            .heartbeat(Duration::from_millis(200))
            .reclaim_interval(Duration::from_millis(100))
            .read_block(Duration::from_millis(100))
            .start()
    };
    let a = start(q.clone()).await.unwrap();
    let b = start(q.clone()).await.unwrap();
    const JOBS: u64 = 1500;
    let acked = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce(q.clone(), JOBS, acked.clone()));
    // Kill it mid-run, with jobs submitted, in flight and committed.
    until(|| async { acked.load(Ordering::SeqCst) >= JOBS / 3 }).await;
    server.kill();
    // Down for a while: submits, reads, commits and heartbeats fail meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let ids = producer.await.unwrap();
    assert_eq!(ids.len() as u64, JOBS);
    // Every acknowledged job is completed once: its effect is there, exactly 1.
    until(|| async {
        effects(&server)
            .await
            .is_some_and(|e| ids.iter().all(|id| e.contains_key(id)))
    })
    .await;
    until(|| async { q.is_empty().await.unwrap_or(false) }).await;
    let ra = a.shutdown(Duration::from_secs(10)).await;
    let rb = b.shutdown(Duration::from_secs(10)).await;
    let e = effects(&server).await.unwrap();
    for id in &ids {
        assert_eq!(e.get(id), Some(&1), "job {id}: {ra:?} {rb:?}");
    }
    // Entries submitted twice (an XADD applied whose reply was lost) have ids of their
    // own and ran once each too; nothing ran twice to a double effect.
    assert!(e.values().all(|v| *v == 1), "{e:?}");
    assert!(ra.adds_up() && rb.adds_up(), "{ra:?} {rb:?}");
    assert_eq!(q.pending().await.unwrap(), 0);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    assert!(ran.load(Ordering::SeqCst) >= JOBS);
}

#[derive(Serialize, Deserialize)]
struct Other {
    title: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_another_type_is_dead_lettered_with_a_decode_error() {
    let server = Server::start();
    // A producer that believes the queue holds `Other`s.
    let wrong = Queue::<Other>::connect(&server.url(), "t").await.unwrap();
    let bad = wrong.submit(&Other { title: "x".into() }).await.unwrap();
    let q = Queue::<Job>::connect(&server.url(), "t").await.unwrap();
    let good = q.submit(&Job { n: 1 }).await.unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let report = run_until_empty(
        Worker::builder(q.clone(), move |_j: Job, _cx: JobContext| {
            r.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<(), String>(()))
        }),
        &q,
    )
    .await;
    assert_eq!(ran.load(Ordering::SeqCst), 1, "only the good job ran");
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].source_id, bad);
    assert!(
        dead[0].error.starts_with("decode error") && dead[0].error.contains("missing field `n`"),
        "{}",
        dead[0].error
    );
    assert_eq!(dead[0].deliveries, 1);
    assert_eq!(
        (report.completed, report.dead_lettered, report.decode_errors),
        (1, 1, 1),
        "{report:?}"
    );
    assert_ne!(bad, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_an_error_in_bounded_time() {
    // Accepts connections (the kernel completes them into the backlog) and never says a
    // word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    // The bound is generous (the documented worst case is far below it): the point is
    // that it returns, with an error that says what happened.
    let t0 = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(120), Queue::<Job>::connect(&url, "t"))
        .await
        .expect("connect returns")
        .unwrap_err();
    match &err {
        otelconc_redis::Error::Redis(e) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("{other}"),
    }
    eprintln!("{err} (after {:?})", t0.elapsed());
    drop(silent);
}
