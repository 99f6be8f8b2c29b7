//! The crate's metrics, read through an in-memory SDK reader, and their table in
//! `docs/telemetry.md`.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use otelconc_redis::{JobContext, Queue, Worker};
use otelconc_testkit::{TestTelemetry, attr};
use serde::{Deserialize, Serialize};
use support::{Server, until};
use tokio::sync::Semaphore;

#[derive(Serialize, Deserialize)]
struct Job {
    fail: bool,
}

const QUEUE: &str = "m";

async fn value(tt: &TestTelemetry, name: &str, attrs: &[opentelemetry::KeyValue]) -> Option<f64> {
    tt.metrics().value(name, attrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_durations_and_levels_reach_the_reader() {
    let server = Server::start();
    let tt = TestTelemetry::new();
    let q = Queue::<Job>::connect(&server.url(), QUEUE)
        .await
        .unwrap()
        .with_telemetry(tt.telemetry());
    for _ in 0..5 {
        q.submit(&Job { fail: false }).await.unwrap();
    }
    q.submit_many(&[Job { fail: true }]).await.unwrap();
    // One job runs, one waits in the pool's queue, one in the reader's hands for room
    // there, all held at the gate: 3 pending (workers + 2 x read batch), 3 not yet
    // delivered.
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let worker = Worker::builder(q.clone(), move |j: Job, _cx: JobContext| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            if j.fail { Err("always") } else { Ok(()) }
        }
    })
    .workers(1)
    .read_batch(1)
    .max_deliveries(2)
    .backoff(Duration::from_millis(1), Duration::from_millis(1))
    .visibility_timeout(Duration::from_secs(60))
    .reclaim_interval(Duration::from_millis(20))
    .read_block(Duration::from_millis(50))
    .metrics_refresh(Duration::from_millis(20))
    .start()
    .await
    .unwrap();
    let name = attr("otelconc.name", QUEUE);
    until(|| async {
        value(&tt, "otelconc.queue.pending", std::slice::from_ref(&name)).await == Some(3.0)
            && value(&tt, "otelconc.queue.lag", std::slice::from_ref(&name)).await == Some(3.0)
    })
    .await;
    let age = value(
        &tt,
        "otelconc.queue.pending.oldest.age",
        std::slice::from_ref(&name),
    )
    .await
    .unwrap();
    assert!((0.0..600.0).contains(&age), "{age}");
    gate.add_permits(1000);
    until(|| async { q.is_empty().await.unwrap() }).await;
    until(|| async {
        value(&tt, "otelconc.queue.pending", std::slice::from_ref(&name)).await == Some(0.0)
            && value(&tt, "otelconc.queue.lag", std::slice::from_ref(&name)).await == Some(0.0)
    })
    .await;
    assert_eq!(
        value(
            &tt,
            "otelconc.queue.pending.oldest.age",
            std::slice::from_ref(&name)
        )
        .await,
        Some(0.0)
    );
    // Every instrument the crate lists reaches the reader, with its unit.
    let m = tt.metrics();
    for (name, _, unit) in otelconc_redis::INSTRUMENTS {
        assert_eq!(m.unit(name).as_deref(), Some(*unit), "{name}");
    }
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (report.completed, report.retried, report.dead_lettered),
        (5, 1, 1),
        "{report:?}"
    );

    let m = tt.metrics();
    let dest = attr("messaging.destination.name", QUEUE);
    let system = attr("messaging.system", "redis");
    assert_eq!(
        m.value(
            "messaging.client.sent.messages",
            &[system.clone(), dest.clone()]
        ),
        Some(6.0)
    );
    // Six new entries and one reclaimed retry.
    assert_eq!(
        m.value(
            "messaging.client.consumed.messages",
            &[system.clone(), dest.clone()]
        ),
        Some(7.0)
    );
    assert_eq!(
        m.value("otelconc.queue.redelivered", std::slice::from_ref(&name)),
        Some(1.0)
    );
    let jobs = |outcome: &'static str| {
        m.value(
            "otelconc.queue.jobs",
            &[name.clone(), attr("otelconc.outcome", outcome)],
        )
    };
    assert_eq!(jobs("completed"), Some(5.0));
    assert_eq!(jobs("retried"), Some(1.0));
    assert_eq!(
        m.value(
            "otelconc.queue.jobs",
            &[
                attr("otelconc.outcome", "dead_lettered"),
                attr("error.type", "job")
            ]
        ),
        Some(1.0)
    );
    let (runs, _) = m
        .histogram("messaging.process.duration", std::slice::from_ref(&dest))
        .unwrap();
    assert_eq!(runs, 7);
    let (failed, _) = m
        .histogram("messaging.process.duration", &[attr("error.type", "job")])
        .unwrap();
    assert_eq!(failed, 2);
}

/// The rows of the `otelconc-redis` instruments table in `docs/telemetry.md`: name,
/// kind, unit.
fn documented() -> BTreeSet<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/telemetry.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut in_section = false;
    let mut rows = BTreeSet::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            in_section = h.trim() == "otelconc-redis instruments";
            continue;
        }
        if line.starts_with("## ") {
            in_section = false;
        }
        if !in_section || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        rows.insert((
            cells[0].trim_matches('`').to_string(),
            cells[1].to_string(),
            cells[2].trim_matches('`').to_string(),
        ));
    }
    rows
}

#[test]
fn the_telemetry_doc_lists_exactly_the_instruments() {
    let code: BTreeSet<(String, String, String)> = otelconc_redis::INSTRUMENTS
        .iter()
        .map(|(n, k, u)| (n.to_string(), k.to_string(), u.to_string()))
        .collect();
    assert_eq!(documented(), code);
}
