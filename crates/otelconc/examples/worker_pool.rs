//! A worker pool in one minute: submit jobs, await their handles, see a panicking and a
//! timed-out job become errors, shut down gracefully, and print the telemetry.
//!
//! Run with `cargo run --example worker_pool`.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use otelconc::pool::{Named, WorkerPool, with_token};
use otelconc::telemetry::Telemetry;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SDK providers that keep what they export in memory, so we can print it below.
    let spans = InMemorySpanExporter::default();
    let metrics = InMemoryMetricExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();

    let pool = WorkerPool::builder("thumbnails")
        .workers(2)
        .queue_capacity(16)
        .job_timeout(Duration::from_millis(100))
        .timing_sample(1) // time every job; the default times 1 in 16
        .telemetry(Telemetry::new(&meter_provider, &tracer_provider))
        .build()?;

    // The code that submits: jobs submitted inside its (sampled) span get a child span.
    let request = tracer_provider.tracer("example").start("handle-request");
    let cx = Context::current_with_span(request);
    async {
        let mut handles = Vec::new();
        for image in 1..=3_u32 {
            let job =
                Named::new("resize", move || async move { image * 100 }).with_id(image.to_string());
            handles.push(pool.submit_handle(job).await?);
        }
        for h in handles {
            println!("resize -> {:?}", h.await);
        }

        // A panic becomes an error on that job; the worker keeps running. (The default
        // panic hook would still print it with a backtrace; one line is enough here.)
        std::panic::set_hook(Box::new(|info| eprintln!("[panic hook] {info}")));
        let bad = Named::new("decode", || async { panic!("corrupt header") });
        println!("decode -> {:?}", pool.submit_handle(bad).await?.await);

        // Past the 100 ms timeout the job is dropped and its token fires.
        let slow = Named::new(
            "upscale",
            with_token(|token| async move {
                tokio::select! {
                    () = token.cancelled() => "cancelled",
                    () = tokio::time::sleep(Duration::from_secs(10)) => "done",
                }
            }),
        );
        println!("upscale -> {:?}", pool.submit_handle(slow).await?.await);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .with_context(cx.clone())
    .await?;
    cx.span().end();

    // Graceful shutdown: drain the queue (within the default 30 s deadline), then report.
    let report = pool.graceful_shutdown().await;
    println!("\n{report:?}  (accepted: {})", report.accepted());

    println!("\nspans:");
    for s in spans.get_finished_spans()? {
        let attr = |k: &str| s.attributes.iter().find(|kv| kv.key.as_str() == k);
        let job = attr("otelconc.pool.job.name").map(|kv| kv.value.to_string());
        let wait = attr("otelconc.queue_wait").map(|kv| kv.value.to_string());
        println!(
            "  {:<22} job={:<8} parent={} queue_wait={}s status={:?}",
            s.name,
            job.unwrap_or_default(),
            s.parent_span_id,
            wait.unwrap_or_default(),
            s.status
        );
    }

    println!("\nmetrics:");
    meter_provider.force_flush()?;
    for rm in metrics.get_finished_metrics()?.iter().rev().take(1) {
        for m in rm.scope_metrics().flat_map(|s| s.metrics()) {
            let points: Vec<String> = match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(s)) => s
                    .data_points()
                    .map(|p| format!("{}{}", labels(p.attributes()), p.value()))
                    .collect(),
                AggregatedMetrics::I64(MetricData::Sum(s)) => s
                    .data_points()
                    .map(|p| format!("{}{}", labels(p.attributes()), p.value()))
                    .collect(),
                AggregatedMetrics::F64(MetricData::Sum(s)) => s
                    .data_points()
                    .map(|p| format!("{}{:.6}", labels(p.attributes()), p.value()))
                    .collect(),
                AggregatedMetrics::I64(MetricData::Gauge(g)) => g
                    .data_points()
                    .map(|p| format!("{}{}", labels(p.attributes()), p.value()))
                    .collect(),
                AggregatedMetrics::F64(MetricData::Gauge(g)) => g
                    .data_points()
                    .map(|p| format!("{}{}", labels(p.attributes()), p.value()))
                    .collect(),
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                    .data_points()
                    .map(|p| {
                        format!(
                            "{}count={} sum={:.6}",
                            labels(p.attributes()),
                            p.count(),
                            p.sum()
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            };
            println!("  {} [{}]: {}", m.name(), m.unit(), points.join("; "));
        }
    }
    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    Ok(())
}

/// The attributes of a data point other than the pool's name, as `k=v `.
fn labels<'a>(attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> String {
    attrs
        .filter(|kv| kv.key.as_str() != "otelconc.name")
        .map(|kv| format!("{}={} ", kv.key, kv.value))
        .collect()
}
