//! The queue against a real `redis-server`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otelconc_redis::{JobContext, Queue, Worker, WorkerBuilder, WorkerReport};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use support::{Server, run_until_empty, until};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Job {
    n: u64,
    sleep_ms: u64,
    fail: bool,
}

fn job(n: u64) -> Job {
    Job {
        n,
        sleep_ms: 0,
        fail: false,
    }
}

const EFFECTS: &str = "test:effects";

/// A private server and the queue `t` on it.
async fn queue_t() -> (Server, Queue<Job>) {
    let server = Server::start();
    let q = Queue::<Job>::connect(&server.url(), "t").await.unwrap();
    (server, q)
}

/// Adds the job's effect: its entry id counted once in `EFFECTS`.
fn count(cx: &JobContext) {
    cx.effect(redis::cmd("HINCRBY").arg(EFFECTS).arg(cx.id()).arg(1));
}

/// A handler that only adds the job's effect.
async fn counting(_j: Job, cx: JobContext) -> Result<(), String> {
    count(&cx);
    Ok(())
}

async fn effects(server: &Server) -> std::collections::HashMap<String, i64> {
    let mut c = server.conn().await;
    c.hgetall(EFFECTS).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_with_effects_applied_once() {
    let (server, q) = queue_t().await;
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(q.submit(&job(n)).await.unwrap());
    }
    let worker = Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
        count(&cx);
        let _ = j;
        Ok::<(), String>(())
    })
    .workers(4)
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    until(|| async { effects(&server).await.len() == 50 }).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.completed, 50, "{report:?}");
    assert!(report.adds_up(), "{report:?}");
    let e = effects(&server).await;
    for id in &ids {
        assert_eq!(e.get(id), Some(&1), "job {id}");
    }
    assert_eq!(q.pending().await.unwrap(), 0);
    assert_eq!(q.len().await.unwrap(), 0, "acked entries are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumers_job_is_reclaimed_and_applied_once() {
    let (server, q) = queue_t().await;
    let started = Arc::new(AtomicU64::new(0));
    // First consumer: takes the job and hangs in it; its tasks are then dropped with no
    // heartbeat (as a crashed process), leaving the entry pending under its name.
    let s1 = started.clone();
    let first = Worker::builder(q.clone(), move |_j: Job, cx: JobContext| {
        let s1 = s1.clone();
        async move {
            count(&cx);
            s1.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        }
    })
    .visibility_timeout(Duration::from_millis(300))
    .heartbeat(Duration::from_millis(100))
    // A crashed process reclaims nothing. Its reclaimer still runs in this process:
    // left at its 1 s default, it could take the entry back before the second consumer
    // does and hang it in the handler above, where no effect ever commits.
    .reclaim_interval(Duration::from_secs(3600))
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    let id = q.submit(&job(1)).await.unwrap();
    until(|| async { started.load(Ordering::SeqCst) == 1 }).await;
    let first_name = first.consumer().to_string();
    // A crash: the worker's runtime goes away without a word to Redis.
    std::mem::forget(first);
    // Simulate the dead process: stop its heartbeats by handing its entry's ownership
    // nowhere; the second consumer reclaims it, idle past the timeout.
    // (Its tasks still run in this process, so make its heartbeats fail by claiming the
    // entry to a tombstone consumer first, idle for a minute, as a dead process's entry
    // would sit. The second consumer's timeout is long, so that no stall of this
    // machine lets it reclaim the entry from itself while it runs it.)
    let mut c = server.conn().await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg("dead-consumer")
        .arg(0)
        .arg(&id)
        .arg("IDLE")
        .arg(60_000)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    let second = Worker::builder(q.clone(), counting)
        .visibility_timeout(Duration::from_secs(30))
        .reclaim_interval(Duration::from_millis(50))
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    until(|| async { effects(&server).await.get(&id) == Some(&1) }).await;
    let report = second.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.reclaimed, report.completed), (1, 1), "{report:?}");
    assert_eq!(q.pending().await.unwrap(), 0);
    assert!(!first_name.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_on_a_live_consumer_is_not_reclaimed() {
    let (server, q) = queue_t().await;
    let runs = Arc::new(AtomicU64::new(0));
    let make = |runs: Arc<AtomicU64>| {
        move |j: Job, cx: JobContext| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(j.sleep_ms)).await;
                count(&cx);
                Ok::<(), String>(())
            }
        }
    };
    // Heartbeats every 50 ms against a 1 s visibility timeout: only a stall of the
    // whole process longer than 0.95 s could let the other worker take the job, and the
    // job runs three timeouts long, so without heartbeats it would be taken.
    let start = |q: Queue<Job>, runs: Arc<AtomicU64>| {
        Worker::builder(q, make(runs))
            .visibility_timeout(Duration::from_secs(1))
            .heartbeat(Duration::from_millis(50))
            .reclaim_interval(Duration::from_millis(20))
            .read_block(Duration::from_millis(50))
            .start()
    };
    let a = start(q.clone(), runs.clone()).await.unwrap();
    let b = start(q.clone(), runs.clone()).await.unwrap();
    // Three visibility timeouts long: only heartbeats keep the other worker off it.
    let id = q
        .submit(&Job {
            n: 1,
            sleep_ms: 3000,
            fail: false,
        })
        .await
        .unwrap();
    until(|| async { effects(&server).await.get(&id) == Some(&1) }).await;
    let ra = a.shutdown(Duration::from_secs(5)).await;
    let rb = b.shutdown(Duration::from_secs(5)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(ra.reclaimed + rb.reclaimed, 0, "{ra:?} {rb:?}");
    assert_eq!(ra.completed + rb.completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_is_dead_lettered_after_max_deliveries_with_its_error() {
    let (_server, q) = queue_t().await;
    let worker = Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
        if j.fail {
            return Err(format!(
                "job {} always fails (attempt {})",
                j.n,
                cx.attempt()
            ));
        }
        Ok(())
    })
    .max_deliveries(3)
    // Long, so that no delivery is reclaimed for being slow on a loaded machine: the
    // retries come from the backoff, which sets the idle time past the timeout less it.
    .visibility_timeout(Duration::from_secs(30))
    .backoff(Duration::from_millis(10), Duration::from_millis(40))
    .reclaim_interval(Duration::from_millis(20))
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    let id = q
        .submit(&Job {
            n: 7,
            sleep_ms: 0,
            fail: true,
        })
        .await
        .unwrap();
    q.submit(&job(8)).await.unwrap();
    until(|| async { q.dead_letters(10).await.unwrap().len() == 1 }).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].source_id, id);
    assert_eq!(dead[0].deliveries, 3);
    assert_eq!(dead[0].error, "job 7 always fails (attempt 3)");
    assert!(dead[0].fields.contains_key("job"));
    assert_eq!(
        (report.retried, report.dead_lettered, report.completed),
        (2, 1, 1),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
    assert_eq!(q.pending().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_are_dead_lettered_with_a_decode_error() {
    let (server, q) = queue_t().await;
    let mut c = server.conn().await;
    // Not ours (no `job` field), bad JSON, and a job of another type.
    let foreign: String = c
        .xadd(q.stream_key(), "*", &[("hello", "world")])
        .await
        .unwrap();
    let bad: String = c
        .xadd(q.stream_key(), "*", &[("job", "{not json")])
        .await
        .unwrap();
    let other: String = c
        .xadd(q.stream_key(), "*", &[("job", "\"a string\"")])
        .await
        .unwrap();
    let good = q.submit(&job(1)).await.unwrap();
    let worker = Worker::builder(q.clone(), counting)
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    until(|| async { effects(&server).await.get(&good) == Some(&1) }).await;
    until(|| async { q.dead_letters(10).await.unwrap().len() == 3 }).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    let dead = q.dead_letters(10).await.unwrap();
    let ids: Vec<_> = dead.iter().map(|d| d.source_id.clone()).collect();
    assert_eq!(ids, vec![foreign, bad, other]);
    assert!(
        dead.iter().all(|d| d.error.starts_with("decode error")),
        "{dead:?}"
    );
    assert_eq!(
        dead[0].fields.get("hello").map(String::as_str),
        Some("world")
    );
    assert_eq!(
        (report.decode_errors, report.completed),
        (3, 1),
        "{report:?}"
    );
    assert!(report.adds_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_and_acks_in_flight_jobs() {
    let (server, q) = queue_t().await;
    let started = Arc::new(AtomicU64::new(0));
    let s = started.clone();
    let worker = Worker::builder(q.clone(), move |j: Job, cx: JobContext| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(j.sleep_ms)).await;
            count(&cx);
            Ok::<(), String>(())
        }
    })
    .workers(4)
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    for n in 0..4 {
        q.submit(&Job {
            n,
            sleep_ms: 300,
            fail: false,
        })
        .await
        .unwrap();
    }
    until(|| async { started.load(Ordering::SeqCst) == 4 }).await;
    let report = worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.received, report.completed), (4, 4), "{report:?}");
    assert_eq!(report.pool.completed, 4);
    assert!(report.adds_up());
    assert_eq!(effects(&server).await.len(), 4);
    assert_eq!(q.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unreachable_url_is_an_error() {
    // Port 1 (tcpmux) is privileged and unused: nothing listens there, and no test's
    // server can take it, as it could a port just freed.
    let err = Queue::<Job>::connect("redis://127.0.0.1:1", "t")
        .await
        .unwrap_err();
    assert!(matches!(err, otelconc_redis::Error::Redis(_)), "{err}");
    let err = Queue::<Job>::connect("not a url", "t").await.unwrap_err();
    assert!(matches!(err, otelconc_redis::Error::Redis(_)), "{err}");
}

#[tokio::test]
async fn an_empty_queue_name_is_refused_before_connecting() {
    // No server: the name is checked first.
    let err = Queue::<Job>::connect("redis://127.0.0.1:1", "")
        .await
        .unwrap_err();
    assert!(matches!(err, otelconc_redis::Error::Config(_)), "{err}");
    assert!(err.to_string().contains("queue name"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_another_consumer_reclaimed_is_left_to_it() {
    let (server, q) = queue_t().await;
    let started = Arc::new(tokio::sync::Notify::new());
    let go = Arc::new(tokio::sync::Notify::new());
    let (s, g) = (started.clone(), go.clone());
    let worker = Worker::builder(q.clone(), move |_j: Job, _cx: JobContext| {
        let (s, g) = (s.clone(), g.clone());
        async move {
            s.notify_one();
            g.notified().await;
            Err::<(), _>("fails")
        }
    })
    .visibility_timeout(Duration::from_secs(600))
    .reclaim_interval(Duration::from_secs(600))
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    let id = q.submit(&job(1)).await.unwrap();
    started.notified().await;
    // Meanwhile another consumer took the entry over (as after a stall of this one).
    let mut c = server.conn().await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg("other")
        .arg(0)
        .arg(&id)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    go.notify_one();
    until(|| async {
        let s = worker.stats();
        s.retried + s.released + s.dead_lettered > 0
    })
    .await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    // The failure is not this consumer's to retry any more: the entry is left to its
    // owner, untouched, and the report says so.
    assert_eq!(
        (report.retried, report.released, report.leases_lost),
        (0, 1, 1),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
    let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(pending.ids.len(), 1);
    assert_eq!(pending.ids[0].consumer, "other");
    // Its idle time was not moved toward a retry (the retry would set it to the
    // visibility timeout less the backoff: 599.9 s).
    assert!(
        pending.ids[0].last_delivered_ms < 60_000,
        "{:?}",
        pending.ids[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_submitted_in_batches_complete_once_and_a_failing_effect_fails_only_its_job() {
    let (server, q) = queue_t().await;
    let mut c = server.conn().await;
    // A string where job 7 expects a hash: its effect fails with WRONGTYPE.
    let _: () = c.set("test:string", "x").await.unwrap();
    let jobs: Vec<Job> = (0..2500).map(job).collect();
    // Three pipelined round trips (1,000 per chunk).
    let ids = q.submit_many(&jobs).await.unwrap();
    assert_eq!(ids.len(), 2500);
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| {
        let (ms, seq) = id.split_once('-').unwrap();
        (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
    });
    assert_eq!(sorted, ids, "ids in the order of the jobs");
    let builder = Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
        count(&cx);
        if j.n == 7 {
            cx.effect(redis::cmd("HINCRBY").arg("test:string").arg("f").arg(1));
        }
        Ok::<(), String>(())
    })
    .workers(8)
    .read_batch(256);
    let report = run_until_empty(builder, &q).await;
    assert_eq!(
        (report.completed, report.dead_lettered),
        (2499, 1),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
    let e = effects(&server).await;
    // Every job's first effect applied once, job 7's too: Redis does not roll a script
    // back, and the docs say so.
    assert_eq!(e.len(), 2500);
    assert!(e.values().all(|v| *v == 1));
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].source_id, ids[7]);
    assert!(
        dead[0].error.starts_with("effect failed: WRONGTYPE"),
        "{}",
        dead[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_jobs_with_effects_leave_a_dedup_marker() {
    let (server, q) = queue_t().await;
    let plain = q.submit(&job(0)).await.unwrap();
    let effectful = q.submit(&job(1)).await.unwrap();
    let builder = Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
        if j.n == 1 {
            count(&cx);
        }
        Ok::<(), String>(())
    });
    let report = run_until_empty(builder, &q).await;
    assert_eq!(report.completed, 2, "{report:?}");
    let mut c = server.conn().await;
    let markers: Vec<String> = c.keys("otelconc:{t}:done:*").await.unwrap();
    assert_eq!(markers, vec![format!("otelconc:{{t}}:done:{effectful}")]);
    assert_ne!(plain, effectful);
}

/// Runs `bad`, which fails each delivery, and a good job on a worker with `handler`
/// (tuned by `tune`), two deliveries and quick retries. Checks that `bad` was
/// dead-lettered after its second delivery, that the good job took effect once and that
/// the report adds up; returns the dead letter's error and the report.
async fn failed_twice<H, Fut>(
    handler: H,
    bad: Job,
    tune: impl FnOnce(WorkerBuilder<Job>) -> WorkerBuilder<Job>,
) -> (String, WorkerReport)
where
    H: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let (server, q) = queue_t().await;
    let builder = Worker::builder(q.clone(), handler)
        .max_deliveries(2)
        .visibility_timeout(Duration::from_secs(30))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .reclaim_interval(Duration::from_millis(20))
        .read_block(Duration::from_millis(50));
    let worker = tune(builder).start().await.unwrap();
    let bad = q.submit(&bad).await.unwrap();
    let good = q.submit(&job(8)).await.unwrap();
    until(|| async { q.dead_letters(10).await.unwrap().len() == 1 }).await;
    until(|| async { effects(&server).await.get(&good) == Some(&1) }).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].source_id, bad);
    assert_eq!(dead[0].deliveries, 2);
    assert!(!effects(&server).await.contains_key(&bad));
    assert_eq!(
        (report.retried, report.dead_lettered, report.completed),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
    assert_eq!(q.pending().await.unwrap(), 0);
    (dead[0].error.clone(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_delivery_and_the_worker_goes_on() {
    let handler = |j: Job, cx: JobContext| async move {
        if j.fail {
            panic!("job {} blew up", j.n);
        }
        count(&cx);
        Ok(())
    };
    let bad = Job {
        n: 7,
        sleep_ms: 0,
        fail: true,
    };
    let (error, report) = failed_twice(handler, bad, |b| b).await;
    assert_eq!(error, "panicked: job 7 blew up");
    // The pool still sees each panic.
    assert_eq!(report.pool.failed, 2, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_fails_timed_out_and_its_token_fires() {
    let fired = Arc::new(AtomicU64::new(0));
    let f = fired.clone();
    let handler = move |j: Job, cx: JobContext| {
        let f = f.clone();
        async move {
            let token = cx.token().clone();
            tokio::spawn(async move {
                token.cancelled().await;
                f.fetch_add(1, Ordering::SeqCst);
            });
            tokio::time::sleep(Duration::from_millis(j.sleep_ms)).await;
            count(&cx);
            Ok(())
        }
    };
    let slow = Job {
        n: 1,
        sleep_ms: 60_000,
        fail: false,
    };
    let (error, _) =
        failed_twice(handler, slow, |b| b.job_timeout(Duration::from_millis(100))).await;
    assert_eq!(error, "timed out");
    // Both deliveries of the slow job had their token fired (each seen by a task of its
    // own, which may not have run yet); the quick job's did not.
    until(|| async { fired.load(Ordering::SeqCst) >= 2 }).await;
    assert_eq!(fired.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_by_the_shutdown_deadline_is_released_to_another_consumer() {
    let (server, q) = queue_t().await;
    let started = Arc::new(AtomicU64::new(0));
    let make = |started: Arc<AtomicU64>| {
        move |j: Job, cx: JobContext| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                if cx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_millis(j.sleep_ms)).await;
                }
                count(&cx);
                Ok::<(), String>(())
            }
        }
    };
    let first = Worker::builder(q.clone(), make(started.clone()))
        .workers(1)
        .visibility_timeout(Duration::from_secs(30))
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    // One job runs past the deadline; the other waits in the pool's queue behind it.
    let long = q
        .submit(&Job {
            n: 1,
            sleep_ms: 60_000,
            fail: false,
        })
        .await
        .unwrap();
    let queued = q.submit(&job(2)).await.unwrap();
    // Both read (the second may come in a read of its own, after the first started):
    // a shutdown stops reading, and an entry not read yet is not this worker's.
    until(|| async { started.load(Ordering::SeqCst) == 1 && q.pending().await.unwrap() == 2 })
        .await;
    let report = first.shutdown(Duration::from_millis(50)).await;
    assert_eq!((report.received, report.released), (2, 2), "{report:?}");
    assert_eq!((report.pool.cancelled, report.pool.not_started), (1, 1));
    assert!(report.adds_up(), "{report:?}");
    assert_eq!(q.pending().await.unwrap(), 2);
    // Released with their idle time at the visibility timeout: another consumer
    // reclaims both at once, and runs them to the end.
    let second = Worker::builder(q.clone(), make(Arc::new(AtomicU64::new(0))))
        .visibility_timeout(Duration::from_secs(30))
        .reclaim_interval(Duration::from_millis(20))
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    until(|| async { effects(&server).await.len() == 2 }).await;
    let done = effects(&server).await;
    assert_eq!((done.get(&long), done.get(&queued)), (Some(&1), Some(&1)));
    let report = second.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.reclaimed, report.completed), (2, 2), "{report:?}");
}

/// The consumers of the queue's group, by name, with the number of entries each holds.
async fn consumers(server: &Server, q: &Queue<Job>) -> std::collections::HashMap<String, u64> {
    let mut c = server.conn().await;
    let infos: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(q.stream_key())
        .arg("otelconc")
        .query_async(&mut c)
        .await
        .unwrap();
    infos
        .into_iter()
        .map(|i| {
            let name: String = redis::from_redis_value_ref(&i["name"]).unwrap();
            let pending: u64 = redis::from_redis_value_ref(&i["pending"]).unwrap();
            (name, pending)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_returns_while_a_read_entry_waits_for_room_in_the_pool_and_releases_it() {
    let (server, q) = queue_t().await;
    // One worker, a queue of one: the first entry runs (and never ends), the second
    // waits in the pool's queue, the third is read and waits for room in it.
    for n in 0..3 {
        q.submit(&job(n)).await.unwrap();
    }
    let fired = Arc::new(AtomicU64::new(0));
    let f = fired.clone();
    let first = Worker::builder(q.clone(), move |_j: Job, cx: JobContext| {
        let f = f.clone();
        async move {
            let token = cx.token().clone();
            tokio::spawn(async move {
                token.cancelled().await;
                f.fetch_add(1, Ordering::SeqCst);
            });
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        }
    })
    .workers(1)
    .read_batch(1)
    .visibility_timeout(Duration::from_secs(30))
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    let name = first.consumer().to_string();
    until(|| async { q.pending().await.unwrap() == 3 }).await;
    // "Stops at once": a generous bound, not a threshold; without it a hang would hang
    // the test binary.
    let report = tokio::time::timeout(Duration::from_secs(60), first.abort())
        .await
        .expect("abort returns");
    assert_eq!((report.received, report.released), (3, 3), "{report:?}");
    assert!(report.adds_up(), "{report:?}");
    // The running job's token fired when the (zero) deadline passed.
    until(|| async { fired.load(Ordering::SeqCst) == 1 }).await;
    // Never deleted while it holds entries (deleting it would drop them from the PEL).
    assert_eq!(consumers(&server, &q).await.get(&name), Some(&3));
    // Released with their idle time at the visibility timeout: another consumer
    // reclaims all three at once and runs them.
    let second = Worker::builder(q.clone(), counting)
        .visibility_timeout(Duration::from_secs(30))
        .reclaim_interval(Duration::from_millis(20))
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let second_name = second.consumer().to_string();
    until(|| async { effects(&server).await.len() == 3 }).await;
    let report = second.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.reclaimed, report.completed), (3, 3), "{report:?}");
    // A consumer holding nothing is removed at shutdown; a dead one's name stays.
    let left = consumers(&server, &q).await;
    assert!(!left.contains_key(&second_name), "{left:?}");
    assert_eq!(left.get(&name), Some(&0), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_out_of_range_are_config_errors_at_start() {
    let (_server, q) = queue_t().await;
    type Tune = fn(WorkerBuilder<Job>) -> WorkerBuilder<Job>;
    let cases: [(&str, Tune); 12] = [
        ("zero workers", |b| b.workers(0)),
        ("zero read batch", |b| b.read_batch(0)),
        ("zero deliveries", |b| b.max_deliveries(0)),
        ("zero read block", |b| b.read_block(Duration::ZERO)),
        ("zero visibility timeout", |b| {
            b.visibility_timeout(Duration::ZERO)
        }),
        ("zero heartbeat", |b| b.heartbeat(Duration::ZERO)),
        ("heartbeat equal to the visibility timeout", |b| {
            b.visibility_timeout(Duration::from_millis(300))
                .heartbeat(Duration::from_millis(300))
        }),
        ("heartbeat longer than the visibility timeout", |b| {
            b.visibility_timeout(Duration::from_millis(300))
                .heartbeat(Duration::from_millis(400))
        }),
        ("zero reclaim interval", |b| {
            b.reclaim_interval(Duration::ZERO)
        }),
        ("zero metrics refresh", |b| {
            b.metrics_refresh(Duration::ZERO)
        }),
        ("zero job timeout", |b| b.job_timeout(Duration::ZERO)),
        ("zero dedup ttl", |b| b.dedup_ttl(Duration::ZERO)),
    ];
    for (what, tune) in cases {
        let builder = tune(Worker::builder(
            q.clone(),
            |_j: Job, _cx: JobContext| async { Ok::<(), String>(()) },
        ));
        match builder.start().await {
            Err(e @ otelconc_redis::Error::Config(_)) => {
                assert!(
                    e.to_string().starts_with("invalid configuration: "),
                    "{what}: {e}"
                );
            }
            Err(e) => panic!("{what}: not a configuration error: {e}"),
            Ok(w) => {
                w.abort().await;
                panic!("{what}: started");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_delivered_max_deliveries_times_without_an_outcome_is_dead_lettered_unrun() {
    let (server, q) = queue_t().await;
    let id = q.submit(&job(1)).await.unwrap();
    // Two consumers took it and died without a word: delivered twice, idle for a minute.
    let mut c = server.conn().await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("otelconc")
        .arg("ghost")
        .arg("STREAMS")
        .arg(q.stream_key())
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg("ghost")
        .arg(0)
        .arg(&id)
        .arg("IDLE")
        .arg(60_000)
        .arg("RETRYCOUNT")
        .arg(2)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let builder = Worker::builder(q.clone(), move |_j: Job, _cx: JobContext| {
        r.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<(), String>(()))
    })
    .max_deliveries(2)
    .visibility_timeout(Duration::from_secs(30))
    .reclaim_interval(Duration::from_millis(20));
    let report = run_until_empty(builder, &q).await;
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a job that kills its process is not run again"
    );
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].source_id, id);
    assert_eq!(dead[0].deliveries, 2);
    assert!(
        dead[0].error.contains("without an outcome"),
        "{}",
        dead[0].error
    );
    assert_eq!(
        dead[0].fields.get("job").map(String::as_str),
        Some(r#"{"n":1,"sleep_ms":0,"fail":false}"#)
    );
    // The fields are the dead-letter entry's: the original's and the three added.
    assert_eq!(dead[0].fields.get("otelconc.source_id"), Some(&id));
    assert_eq!(
        dead[0]
            .fields
            .get("otelconc.deliveries")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(dead[0].fields.get("otelconc.error"), Some(&dead[0].error));
    assert_eq!(
        (
            report.received,
            report.reclaimed,
            report.dead_lettered,
            report.decode_errors
        ),
        (1, 1, 1, 0),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
    assert_eq!(q.pending().await.unwrap(), 0);
}

/// A job whose serialization always fails.
#[derive(Deserialize, Debug)]
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_does_not_serialize_is_an_encode_error_and_nothing_is_sent() {
    let server = Server::start();
    let q = Queue::<Unserializable>::connect(&server.url(), "t")
        .await
        .unwrap();
    let err = q.submit(&Unserializable).await.unwrap_err();
    assert!(matches!(err, otelconc_redis::Error::Encode(_)), "{err}");
    assert!(
        err.to_string().starts_with("could not encode the job: "),
        "{err}"
    );
    let err = q
        .submit_many(&[Unserializable, Unserializable])
        .await
        .unwrap_err();
    assert!(matches!(err, otelconc_redis::Error::Encode(_)), "{err}");
    assert_eq!(q.len().await.unwrap(), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_key_of_another_type_is_a_redis_error() {
    let server = Server::start();
    let mut c = server.conn().await;
    let _: () = c.set("otelconc:{t}", "not a stream").await.unwrap();
    let err = Queue::<Job>::connect(&server.url(), "t").await.unwrap_err();
    match &err {
        otelconc_redis::Error::Redis(e) => assert_eq!(e.code(), Some("WRONGTYPE"), "{e:?}"),
        other => panic!("{other}"),
    }
}

/// The idle time (ms) and delivery count of entry `id`, and the consumer holding it.
async fn pending_entry(server: &Server, q: &Queue<Job>, id: &str) -> (u64, u64, String) {
    let mut c = server.conn().await;
    let p: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg(id)
        .arg(id)
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let e = &p.ids[0];
    (
        e.last_delivered_ms as u64,
        e.times_delivered as u64,
        e.consumer.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_becomes_reclaimable_after_its_doubling_capped_backoff() {
    let (server, q) = queue_t().await;
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = attempts.clone();
    let worker = Worker::builder(q.clone(), move |_j: Job, cx: JobContext| {
        a.lock().unwrap().push(cx.attempt());
        std::future::ready(Err::<(), _>("fails"))
    })
    .visibility_timeout(Duration::from_secs(3600))
    .backoff(Duration::from_secs(100), Duration::from_secs(150))
    .reclaim_interval(Duration::from_millis(20))
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    let id = q.submit(&job(1)).await.unwrap();
    until(|| async { worker.stats().retried == 1 }).await;
    // Attempt 1: a backoff of the base, 100 s: idle set to 3600 - 100 s. (It grows from
    // there in real time: the bounds are backoffs long, so that only a stall of more
    // than a minute could carry it past them and let a reclaim run early.)
    let (idle, deliveries, owner) = pending_entry(&server, &q, &id).await;
    assert!((3_500_000..3_600_000).contains(&idle), "idle {idle} ms");
    assert_eq!((deliveries, owner.as_str()), (1, worker.consumer()));
    // Two deliveries counted and reclaimable now: the reclaim makes it attempt 3, whose
    // backoff, 400 s, is capped at 150 s.
    let mut c = server.conn().await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg(worker.consumer())
        .arg(0)
        .arg(&id)
        .arg("IDLE")
        .arg(3_600_000)
        .arg("RETRYCOUNT")
        .arg(2)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    until(|| async { worker.stats().retried == 2 }).await;
    let (idle, deliveries, _) = pending_entry(&server, &q, &id).await;
    assert!((3_450_000..3_500_000).contains(&idle), "idle {idle} ms");
    assert_eq!(deliveries, 3);
    let report = worker.abort().await;
    assert_eq!(*attempts.lock().unwrap(), vec![1, 3]);
    assert_eq!(
        (report.received, report.reclaimed, report.retried),
        (2, 1, 2),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_during_a_run_is_counted_once_and_never_taken_back() {
    let (server, q) = queue_t().await;
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let (g, s) = (go.clone(), started.clone());
    let worker = Worker::builder(q.clone(), move |_j: Job, cx: JobContext| {
        let (g, s) = (g.clone(), s.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            let _ = g.acquire().await.unwrap();
            count(&cx);
            Ok::<(), String>(())
        }
    })
    .visibility_timeout(Duration::from_secs(600))
    .heartbeat(Duration::from_millis(20))
    .read_block(Duration::from_millis(50))
    .start()
    .await
    .unwrap();
    let stolen = q.submit(&job(1)).await.unwrap();
    let kept = q.submit(&job(2)).await.unwrap();
    until(|| async { started.load(Ordering::SeqCst) == 2 }).await;
    // Another consumer takes one entry over (as after a stall of this one).
    let mut c = server.conn().await;
    let claim = |id: String, to: String, idle: u64| {
        redis::cmd("XCLAIM")
            .arg(q.stream_key())
            .arg("otelconc")
            .arg(to)
            .arg(0)
            .arg(id)
            .arg("IDLE")
            .arg(idle)
            .arg("JUSTID")
            .clone()
    };
    let _: redis::Value = claim(stolen.clone(), "other".into(), 0)
        .query_async(&mut c)
        .await
        .unwrap();
    until(|| async { worker.stats().leases_lost == 1 }).await;
    // Make sure more heartbeats ran since: the other entry's idle time, set high, is
    // reset by one.
    for _ in 0..2 {
        let _: redis::Value = claim(kept.clone(), worker.consumer().to_string(), 500_000)
            .query_async(&mut c)
            .await
            .unwrap();
        until(|| async { pending_entry(&server, &q, &kept).await.0 < 100_000 }).await;
    }
    // Never taken back from its new owner.
    assert_eq!(pending_entry(&server, &q, &stolen).await.2, "other");
    // Heartbeats reset the idle time without counting a delivery.
    assert_eq!(pending_entry(&server, &q, &kept).await.1, 1);
    go.add_permits(2);
    until(|| async { effects(&server).await.len() == 2 }).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        report.leases_lost, 1,
        "one entry lost, counted once: {report:?}"
    );
    assert_eq!(report.completed, 2, "{report:?}");
    assert!(report.adds_up(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ran_twice_applies_its_effects_once_and_its_second_commit_is_a_duplicate() {
    let (server, q) = queue_t().await;
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicU64::new(0));
    // The first delivery waits for `go`; a later one runs through.
    let make = |go: Arc<tokio::sync::Semaphore>, started: Arc<AtomicU64>| {
        move |_j: Job, cx: JobContext| {
            let (go, started) = (go.clone(), started.clone());
            async move {
                if cx.attempt() == 1 {
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = go.acquire().await.unwrap();
                }
                count(&cx);
                Ok::<(), String>(())
            }
        }
    };
    let slow = Worker::builder(q.clone(), make(go.clone(), started.clone()))
        .visibility_timeout(Duration::from_secs(600))
        // Only the fast consumer reclaims: at the 1 s default, the slow one could claim
        // its own entry back once it is made idle below, and run it through itself.
        .reclaim_interval(Duration::from_secs(3600))
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let id = q.submit(&job(1)).await.unwrap();
    until(|| async { started.load(Ordering::SeqCst) == 1 }).await;
    // The slow consumer looks dead to the group: its entry is idle past the timeout.
    let mut c = server.conn().await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(q.stream_key())
        .arg("otelconc")
        .arg(slow.consumer())
        .arg(0)
        .arg(&id)
        .arg("IDLE")
        .arg(600_000)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    let fast = Worker::builder(q.clone(), make(go.clone(), started.clone()))
        .visibility_timeout(Duration::from_secs(600))
        .reclaim_interval(Duration::from_millis(20))
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    until(|| async { fast.stats().completed == 1 }).await;
    // The slow delivery ends too, and commits second.
    go.add_permits(1);
    until(|| async { slow.stats().duplicates == 1 }).await;
    let rs = slow.shutdown(Duration::from_secs(5)).await;
    let rf = fast.shutdown(Duration::from_secs(5)).await;
    assert_eq!((rf.reclaimed, rf.completed), (1, 1), "{rf:?}");
    assert_eq!((rs.completed, rs.duplicates), (0, 1), "{rs:?}");
    assert!(rs.adds_up() && rf.adds_up(), "{rs:?} {rf:?}");
    assert_eq!(effects(&server).await.get(&id), Some(&1), "applied once");
    assert_eq!(q.pending().await.unwrap(), 0);
    assert!(q.is_empty().await.unwrap());
}

/// An entry this worker acks itself is no lost lease, though a heartbeat that read it
/// running may reach Redis after the ack (and its answer this worker before the
/// ack's): heartbeats every millisecond over many quick jobs, with and without effects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_worker_settles_itself_are_no_lost_leases() {
    let (_server, q) = queue_t().await;
    let jobs: Vec<Job> = (0..3000).map(job).collect();
    q.submit_many(&jobs).await.unwrap();
    let builder = Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
        match j.n % 3 {
            0 => count(&cx),
            1 => return Err(format!("job {} fails", j.n)),
            _ => {}
        }
        Ok::<(), String>(())
    })
    .workers(8)
    .max_deliveries(1)
    .visibility_timeout(Duration::from_secs(600))
    .heartbeat(Duration::from_millis(1));
    let report = run_until_empty(builder, &q).await;
    assert_eq!(
        (report.completed, report.dead_lettered, report.leases_lost),
        (2000, 1000, 0),
        "{report:?}"
    );
    assert!(report.adds_up(), "{report:?}");
}

/// A failed delivery's retry comes after its backoff: a heartbeat that read the job
/// running does not reset the idle time its retry set (which would hold the retry back
/// for the whole visibility timeout). Heartbeats every millisecond over many jobs that
/// fail once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_does_not_hold_back_a_retry() {
    let (_server, q) = queue_t().await;
    let jobs: Vec<Job> = (0..1000).map(job).collect();
    q.submit_many(&jobs).await.unwrap();
    let builder = Worker::builder(q.clone(), |j: Job, cx: JobContext| async move {
        if cx.attempt() == 1 {
            return Err(format!("job {} fails once", j.n));
        }
        count(&cx);
        Ok::<(), String>(())
    })
    .workers(8)
    .visibility_timeout(Duration::from_secs(3600))
    .heartbeat(Duration::from_millis(1))
    .backoff(Duration::from_millis(1), Duration::from_millis(1))
    .reclaim_interval(Duration::from_millis(10));
    // A bound for a hang, not a threshold: a retry held back waits an hour.
    let report = tokio::time::timeout(Duration::from_secs(120), run_until_empty(builder, &q))
        .await
        .expect("every retry came after its backoff");
    assert_eq!(
        (report.retried, report.completed),
        (1000, 1000),
        "{report:?}"
    );
}
