//! Fan-out and fan-in, with the telemetry they emit printed to stdout.
//!
//! ```text
//! cargo run -p otelconc --example fan_out
//! ```
//!
//! A request (one sampled trace) resizes images at bounded concurrency, asks three
//! replicas the same question, and merges two event streams. The SDK exports into
//! memory here so the example can print what an OTLP backend would receive.

use std::error::Error;
use std::time::Duration;

use futures::StreamExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use otelconc::fan::{FanIn, FanOut};
use otelconc::telemetry::Telemetry;
use tokio::time::sleep;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // SDK providers that export into memory (a program uses the otelconc-setup crate for OTLP).
    let spans = InMemorySpanExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    let telemetry = Telemetry::new(&meter_provider, &tracer_provider);

    // One incoming request: a sampled trace that the work below follows.
    let tracer = tracer_provider.tracer("example");
    let request = Context::current().with_span(tracer.start("handle-request"));

    async {
        // 1. `f` over many items, 2 at a time, results in input order. One item fails.
        let resize = FanOut::builder("resize")
            .telemetry(telemetry.clone())
            .build();
        let results: Vec<_> = resize
            .items([640u32, 800, 0, 320], 2, |px| async move {
                sleep(Duration::from_millis(u64::from(px) / 100)).await;
                if px == 0 {
                    Err("empty image")
                } else {
                    Ok(px / 2)
                }
            })?
            .collect()
            .await;
        println!("resized: {results:?}");

        // 2. The seed's FanOut: 3 workers on one input, every result or every error.
        let replicas = FanOut::builder("replicas")
            .telemetry(telemetry.clone())
            .build();
        let answers = replicas
            .run(
                "SELECT 1".to_owned(),
                3,
                |query, i, _cancelled| async move {
                    Ok::<_, String>(format!("replica {i} ran {query}"))
                },
            )
            .await?;
        println!("answers: {answers:?}");

        // 3. Fan-in: two inputs merged; each item keeps its producer's trace (a link).
        let merged = FanIn::builder("events")
            .telemetry(telemetry.clone())
            .input("clicks", futures::stream::iter(["click-1", "click-2"]))
            .input("views", futures::stream::iter(["view-1"]))
            .build()?;
        let events: Vec<&str> = merged.map(|m| m.into_inner()).collect().await;
        println!("events: {events:?}");
        Ok::<_, Box<dyn Error>>(())
    }
    .with_context(request.clone())
    .await?;
    request.span().end();

    println!(
        "\nspans (fan_out.item, fan_out and fan_in.receive are children of handle-request; group.task of fan_out):"
    );
    for s in spans.get_finished_spans()? {
        let attrs: Vec<String> = s
            .attributes
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        println!(
            "  {:<24} span={} parent={} links={} status={:?} {}",
            s.name,
            s.span_context.span_id(),
            s.parent_span_id,
            s.links.len(),
            s.status,
            attrs.join(" ")
        );
    }

    meter_provider.force_flush()?;
    println!("\nmetrics:");
    if let Some(rm) = metrics.get_finished_metrics()?.last() {
        for m in rm.scope_metrics().flat_map(|s| s.metrics()) {
            let points: Vec<(String, Vec<&KeyValue>)> = match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                    .data_points()
                    .map(|p| (p.value().to_string(), p.attributes().collect()))
                    .collect(),
                AggregatedMetrics::I64(MetricData::Sum(sum)) => sum
                    .data_points()
                    .map(|p| (p.value().to_string(), p.attributes().collect()))
                    .collect(),
                _ => Vec::new(),
            };
            for (value, attrs) in points {
                let attrs: Vec<String> = attrs
                    .iter()
                    .map(|kv| format!("{}={}", kv.key, kv.value))
                    .collect();
                println!("  {:<32} {:>3} {}", m.name(), value, attrs.join(" "));
            }
        }
    }
    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    Ok(())
}
