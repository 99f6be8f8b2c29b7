//! A rate limiter in front of an outbound API: callers wait their turn, a probe that
//! must not wait is refused, the rate is raised at runtime, and the telemetry this
//! produced is printed from an in-memory exporter.
//!
//! Run with `cargo run -p otelconc --example rate_limit`.

use std::time::{Duration, Instant};

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::rate::{Rate, RateLimiter};
use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
use otelconc_testkit::{TestTelemetry, attr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In-memory exporters stand in for an OTLP endpoint.
    let tt = TestTelemetry::new();
    // 20 calls a second, bursts of up to 5.
    let api = RateLimiter::builder("outbound-api", Rate::per_second(20).burst(5)?)
        .telemetry(tt.telemetry())
        .build();

    let start = Instant::now();
    let request = tt.root("handle-request"); // the caller's (sampled) trace
    let mut callers = Vec::new();
    for caller in 0..3 {
        let api = api.clone();
        callers.push(tokio::spawn(
            async move {
                for _ in 0..5 {
                    api.acquire().await?; // waits only when the bucket is empty
                }
                Ok::<_, otelconc::rate::ExceedsBurst>(caller)
            }
            .with_context(request.clone()),
        ));
    }
    // A health probe must never wait: it asks without blocking.
    tokio::time::sleep(Duration::from_millis(50)).await;
    match api.try_acquire() {
        Ok(()) => println!("probe: passed"),
        Err(e) => println!("probe: refused, {e}"),
    }
    // Traffic is quiet elsewhere: raise the rate; the callers waiting now speed up.
    api.set_rate(Rate::per_second(100))?;
    for c in callers {
        c.await??;
    }
    request.span().end();
    println!(
        "15 calls through in {:?} (tokens left: {:.1})\n",
        start.elapsed(),
        api.tokens()
    );

    let m = tt.metrics();
    let name = attr(ATTR_NAME, "outbound-api");
    let v = |metric: &str, extra: Vec<opentelemetry::KeyValue>| {
        let mut attrs = vec![name.clone()];
        attrs.extend(extra);
        m.value(metric, &attrs).unwrap_or(0.0)
    };
    println!("metrics:");
    let outcomes = [
        ("ok", None),
        ("refused", Some("rate_limited")),
        ("refused", Some("exceeds_burst")),
        ("cancelled", None),
    ];
    for (outcome, error) in outcomes {
        let mut extra = vec![attr(ATTR_OUTCOME, outcome)];
        extra.extend(error.map(|e| attr(ATTR_ERROR_TYPE, e)));
        let calls = v("otelconc.rate.acquisitions", extra.clone());
        let tokens = v("otelconc.rate.tokens", extra);
        let label = error.map_or(outcome.to_owned(), |e| format!("{outcome}, {e}"));
        println!("  otelconc.rate.acquisitions  {calls} calls, {tokens} tokens ({label})");
    }
    println!(
        "  otelconc.rate.contended     {} calls waited",
        v("otelconc.rate.contended", vec![])
    );
    if let Some((count, sum)) = m.histogram(
        "otelconc.rate.wait.duration",
        &[name.clone(), attr(ATTR_OUTCOME, "ok")],
    ) {
        println!(
            "  otelconc.rate.wait.duration {count} waits, {:.1} ms on average",
            sum / count as f64 * 1e3
        );
    }
    for level in ["waiter.count", "token.count", "token.limit", "limit"] {
        let metric = format!("otelconc.rate.{level}");
        println!("  {metric:<27} {:.1}", v(&metric, vec![]));
    }

    let root = tt.spans_named("handle-request");
    let waits = tt.spans_named("otelconc.rate.wait");
    let children = waits
        .iter()
        .filter(|s| {
            root.first()
                .is_some_and(|r| s.parent_span_id == r.span_context.span_id())
        })
        .count();
    println!(
        "\nspans: {} otelconc.rate.wait spans (only calls that waited), {children} of them children of handle-request",
        waits.len()
    );
    Ok(())
}
