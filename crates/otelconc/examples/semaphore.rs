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
use otelconc::telemetry::names::semaphore::ATTR_PERMIT_STATE;
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
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
    let outcomes = [
        ("ok", None),
        ("refused", Some("would_block")),
        ("refused", Some("exceeds_total")),
        ("cancelled", None),
    ];
    for (outcome, error) in outcomes {
        let mut extra = vec![attr(ATTR_OUTCOME, outcome)];
        extra.extend(error.map(|e| attr(ATTR_ERROR_TYPE, e)));
        let calls = v("otelconc.semaphore.acquisitions", extra.clone());
        let permits = v("otelconc.semaphore.permits", extra);
        let label = error.map_or(outcome.to_owned(), |e| format!("{outcome}, {e}"));
        println!("  otelconc.semaphore.acquisitions  {calls} calls, {permits} permits ({label})");
    }
    println!(
        "  otelconc.semaphore.contended     {} calls waited",
        v("otelconc.semaphore.contended", vec![])
    );
    for outcome in ["ok", "cancelled"] {
        if let Some((count, sum)) = m.histogram(
            "otelconc.semaphore.wait.duration",
            &[name.clone(), attr(ATTR_OUTCOME, outcome)],
        ) {
            println!(
                "  otelconc.semaphore.wait.duration {count} waits ({outcome}), {:.1} ms on average",
                sum / count as f64 * 1e3
            );
        }
    }
    println!(
        "  otelconc.semaphore.waiter.count  {}",
        v("otelconc.semaphore.waiter.count", vec![])
    );
    for state in ["free", "used"] {
        let n = v(
            "otelconc.semaphore.permit.count",
            vec![attr(ATTR_PERMIT_STATE, state)],
        );
        println!("  otelconc.semaphore.permit.count  {n} ({state})");
    }
    println!(
        "  otelconc.semaphore.permit.limit  {}",
        v("otelconc.semaphore.permit.limit", vec![])
    );
    let waits = tt.spans_named("otelconc.semaphore.wait");
    println!(
        "\nspans: {} otelconc.semaphore.wait spans (only uploads that waited inside the trace)",
        waits.len()
    );
    Ok(())
}
