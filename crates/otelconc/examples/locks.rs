//! A session store behind an observable `RwLock` and a connection behind an observable
//! `Mutex`: many handlers read sessions, a few write them, one handler holds the
//! connection across a slow `.await` (the classic async lock mistake), and the
//! telemetry this produced, read from an in-memory exporter, shows all of it: the
//! contention, the waits, and the guard held across the `.await` in the oldest-hold gauge.
//!
//! Run with `cargo run -p otelconc --example locks`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::sync::{Mutex, RwLock};
use otelconc::telemetry::names::sync::ATTR_MODE;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tt = TestTelemetry::new();
    let sessions = Arc::new(
        RwLock::builder("sessions", HashMap::<u32, String>::new())
            .telemetry(tt.telemetry())
            .build()?,
    );
    let conn = Arc::new(
        Mutex::builder("db-conn", 0u64) // queries sent on the one connection
            .telemetry(tt.telemetry())
            .build()?,
    );

    let request = tt.root("handle-batch"); // the caller's (sampled) trace
    let mut handlers = Vec::new();
    for i in 0..40u32 {
        let (sessions, conn) = (sessions.clone(), conn.clone());
        handlers.push(tokio::spawn(
            async move {
                if i % 8 == 0 {
                    // A login: writers wait for readers, and later readers for them.
                    sessions.write().await.insert(i, format!("user-{i}"));
                } else {
                    let read = sessions.read().await;
                    let _known = read.contains_key(&(i - i % 8));
                    tokio::time::sleep(Duration::from_millis(1)).await; // a slow render
                    drop(read);
                }
                // Every handler sends a query on the one connection.
                let mut queries = conn.lock().await;
                *queries += 1;
                tokio::time::sleep(Duration::from_millis(2)).await; // held across .await
            }
            .with_context(request.clone()),
        ));
    }

    // Meanwhile a slow job holds the connection across a long `.await`: the metrics
    // collected while it does show a hold that is getting old.
    let slow = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let _held = conn.lock().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let age = |tt: &TestTelemetry| {
        tt.metrics()
            .value(
                "otelconc.lock.hold.oldest.age",
                &[attr(ATTR_NAME, "db-conn"), attr(ATTR_MODE, "exclusive")],
            )
            .unwrap_or(0.0)
    };
    let mut ages = Vec::new();
    for _ in 0..4 {
        ages.push(age(&tt));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    println!(
        "oldest db-conn hold, collected every 25 ms: {}",
        ages.iter()
            .map(|a| format!("{:.0} ms", a * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );

    for h in handlers {
        h.await?;
    }
    slow.await?;
    request.span().end();
    println!(
        "{} queries sent, {} sessions\n",
        *conn.lock().await,
        sessions.read().await.len()
    );

    let m = tt.metrics();
    println!("metrics:");
    for (name, mode) in [
        ("db-conn", "exclusive"),
        ("sessions", "exclusive"),
        ("sessions", "shared"),
    ] {
        let base = vec![attr(ATTR_NAME, name), attr(ATTR_MODE, mode)];
        let with = |extra: KeyValue| {
            let mut v = base.clone();
            v.push(extra);
            v
        };
        let ok = m
            .value(
                "otelconc.lock.acquisitions",
                &with(attr(ATTR_OUTCOME, "ok")),
            )
            .unwrap_or(0.0);
        let contended = m.value("otelconc.lock.contended", &base).unwrap_or(0.0);
        let waiting = m.value("otelconc.lock.waiter.count", &base).unwrap_or(0.0);
        println!(
            "  {name:<8} {mode:<9} acquisitions {ok:>3}, of which waited {contended:>3}, waiting now {waiting}"
        );
        for h in ["otelconc.lock.wait.duration", "otelconc.lock.hold.duration"] {
            if let Some((count, sum)) = m.histogram(h, &base).filter(|(n, _)| *n > 0) {
                println!(
                    "    {h:<28} {count} sampled, {:.2} ms on average",
                    sum / count as f64 * 1e3
                );
            }
        }
    }
    let waits = tt.spans_named("otelconc.lock.wait");
    println!(
        "\nspans: {} otelconc.lock.wait spans (only calls that waited inside the trace)",
        waits.len()
    );
    Ok(())
}
