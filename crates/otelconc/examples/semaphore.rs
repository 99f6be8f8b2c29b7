//! A weighted semaphore bounding the memory that request bodies may take: uploads take
//! as many permits as megabytes, a too-large upload fails at once instead of hanging,
//! an impatient one gives up (and leaves nothing behind), and the telemetry this
//! produced is printed from an in-memory exporter.
//!
//! Run with `cargo run -p otelconc --example semaphore`.

use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::names::{ATTR_NAME, ATTR_OUTCOME, ATTR_REASON};
use otelconc_testkit::{TestTelemetry, attr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tt = TestTelemetry::new();
    // At most 64 MB of bodies in memory at once; one permit per MB.
    let memory = Semaphore::builder("body-memory", 64)
        .telemetry(tt.telemetry())
        .build()?;

    let request = tt.root("upload-batch"); // the caller's (sampled) trace
    let mut uploads = Vec::new();
    for (i, mb) in [30u32, 20, 24, 8, 40, 16, 12, 32].into_iter().enumerate() {
        let memory = memory.clone();
        uploads.push(tokio::spawn(
            async move {
                // FIFO: a big upload at the head of the queue is not overtaken.
                let _permit = memory.acquire_many(mb).await?;
                tokio::time::sleep(Duration::from_millis(20 + 5 * i as u64)).await;
                Ok::<u32, otelconc::semaphore::ExceedsTotal>(mb)
            }
            .with_context(request.clone()),
        ));
    }
    // 100 MB can never fit in 64: refused at once, not after a hang.
    match memory.acquire_many(100).await {
        Ok(_) => println!("100 MB upload: admitted?!"),
        Err(e) => println!("100 MB upload: {e}"),
    }
    // Once the uploads hold their memory, an impatient upload gives up after 5 ms; its
    // place in the queue is released and nothing stays taken.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let timed_out = tokio::time::timeout(Duration::from_millis(5), memory.acquire_many(48))
        .await
        .is_err();
    println!("impatient 48 MB upload timed out: {timed_out}");

    let mut done = 0;
    for u in uploads {
        done += u.await??;
    }
    request.span().end();
    println!(
        "{done} MB uploaded; {} of {} permits free again\n",
        memory.available_permits(),
        memory.total_permits()
    );

    let m = tt.metrics();
    let name = attr(ATTR_NAME, "body-memory");
    let v = |metric: &str, extra: Vec<opentelemetry::KeyValue>| {
        let mut attrs = vec![name.clone()];
        attrs.extend(extra);
        m.value(metric, &attrs).unwrap_or(0.0)
    };
    println!("metrics:");
    println!(
        "  otelconc.semaphore.admitted   {}",
        v("otelconc.semaphore.admitted", vec![])
    );
    for reason in ["unavailable", "exceeds_total", "cancelled"] {
        let n = v(
            "otelconc.semaphore.refused",
            vec![attr(ATTR_REASON, reason)],
        );
        println!("  otelconc.semaphore.refused    {n} ({reason})");
    }
    for outcome in ["ok", "cancelled"] {
        if let Some((count, sum)) = m.histogram(
            "otelconc.semaphore.wait",
            &[name.clone(), attr(ATTR_OUTCOME, outcome)],
        ) {
            println!(
                "  otelconc.semaphore.wait       {count} waits ({outcome}), {:.1} ms on average",
                sum / count as f64 * 1e3
            );
        }
    }
    for g in ["waiters", "available", "in_use", "limit"] {
        let metric = format!("otelconc.semaphore.{g}");
        println!("  {metric:<29} {}", v(&metric, vec![]));
    }
    let waits = tt.spans_named("otelconc.semaphore.wait");
    println!(
        "\nspans: {} otelconc.semaphore.wait spans (only uploads that waited inside the trace)",
        waits.len()
    );
    Ok(())
}
