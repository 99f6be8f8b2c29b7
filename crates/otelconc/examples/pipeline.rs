//! A three-stage pipeline over a stream of log lines, with its telemetry printed.
//!
//! `cargo run -p otelconc --example pipeline`
//!
//! Lines are parsed, enriched and formatted by stages that each have their own
//! concurrency and buffer; bad lines are skipped and counted. The telemetry goes to
//! in-memory exporters and is printed at the end: the per-stage metrics, and the span
//! chain of one item (each stage's span is the child of the previous one).

use std::time::Duration;

use futures::{StreamExt, stream};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt;
use otelconc::pipeline::{ErrorPolicy, Pipeline};
use otelconc_testkit::{TestTelemetry, attr};

#[derive(Debug)]
struct Event {
    user: u32,
    millis: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = TestTelemetry::new();

    let pipeline = Pipeline::builder("access-log")
        .stage("parse", 4, 64, |line: String| async move {
            let (user, millis) = line.split_once(' ').ok_or("no space")?;
            Ok(Event {
                user: user.parse().map_err(|_| "bad user")?,
                millis: millis.parse().map_err(|_| "bad millis")?,
            })
        })
        .stage("enrich", 2, 64, |e: Event| async move {
            tokio::time::sleep(Duration::from_millis(1)).await; // a lookup
            Ok((format!("user-{}", e.user), e.millis))
        })
        .stage("format", 1, 64, |(name, ms): (String, u64)| async move {
            Ok(format!("{name} took {ms} ms"))
        })
        .ordered(true)
        .on_error(ErrorPolicy::Skip)
        .telemetry(telemetry.telemetry())
        .build()?;

    let lines = ["7 12", "8 40", "oops", "9 3"].map(String::from);
    // Run inside a sampled trace, so every item gets a span per stage.
    let request = telemetry.root("request");
    let (out, skipped) = async {
        let mut out = pipeline.run(stream::iter(lines));
        let mut got = Vec::new();
        while let Some(r) = out.next().await {
            got.push(r?);
        }
        Ok::<_, otelconc::pipeline::PipelineError<&str>>((got, out.skipped()))
    }
    .with_context(request.clone())
    .await
    .map_err(|e| e.to_string())?;
    request.span().end();

    println!("output (in input order): {out:?}; skipped: {skipped}\n");

    println!("metrics:");
    let m = telemetry.metrics();
    for stage in ["parse", "enrich", "format"] {
        let s = attr("otelconc.stage", stage);
        let ok = attr("otelconc.outcome", "ok");
        let err = attr("otelconc.outcome", "error");
        let processed = "otelconc.pipeline.stage.processed";
        let (n, sum) = m
            .histogram("otelconc.pipeline.stage.duration", std::slice::from_ref(&s))
            .unwrap_or_default();
        println!(
            "  {stage:<7} received {} ok {} error {} | {n} timed, mean {:.3} ms",
            m.value("otelconc.pipeline.stage.received", std::slice::from_ref(&s))
                .unwrap_or(0.0),
            m.value(processed, &[s.clone(), ok]).unwrap_or(0.0),
            m.value(processed, &[s, err]).unwrap_or(0.0),
            if n > 0 { sum / n as f64 * 1e3 } else { 0.0 },
        );
    }

    println!("\nspans of item 1 (seq 1), one trace, each the child of the one above:");
    let spans = telemetry.spans();
    let mut chain: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "otelconc.pipeline.seq" && kv.value.as_str() == "1")
        })
        .collect();
    chain.sort_by_key(|s| s.start_time);
    println!(
        "  request  span {}",
        request.span().span_context().span_id()
    );
    for s in chain {
        let stage = s
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "otelconc.stage")
            .map(|kv| kv.value.to_string())
            .unwrap_or_default();
        println!(
            "  {stage:<8} span {} parent {} trace {}",
            s.span_context.span_id(),
            s.parent_span_id,
            s.span_context.trace_id()
        );
    }
    Ok(())
}
