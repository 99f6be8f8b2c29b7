//! `otelconc demo`: an event-ingestion workload through every primitive.
//!
//! For now a minimal workload that proves the telemetry wiring end to end: telemetry is
//! installed from the standard `OTEL_*` variables (OTLP when an endpoint is set, local
//! OTLP/JSON files otherwise), each event gets a root span with two child spans, and two
//! metrics are recorded through the global meter. At the end the guard flushes and the
//! program prints where the telemetry went.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use opentelemetry::context::FutureExt;
use opentelemetry::trace::{TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use otelconc::setup;

/// The tracer and meter scope of the demo's own telemetry.
const SCOPE: &str = "otelconc-demo";
/// Events processed at once.
const CONCURRENCY: usize = 64;

/// Arguments of `otelconc demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of generated events.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Directory of the local OTLP/JSON telemetry files, used when no OTLP endpoint is
    /// configured (default ./otelconc-telemetry).
    #[arg(long, env = setup::OTELCONC_TELEMETRY_DIR, value_name = "DIR")]
    telemetry_dir: Option<PathBuf>,
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut builder = setup::builder().default_service_name("otelconc");
    if let Some(dir) = &args.telemetry_dir {
        builder = builder.files_dir(dir);
    }
    let telemetry = builder.install()?;
    println!(
        "otelconc demo: {} events, telemetry to {}",
        args.events,
        telemetry.destination()
    );

    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let processed = runtime.block_on(ingest(args.events));
    drop(runtime);
    let elapsed = start.elapsed();

    let shutdown = telemetry.shutdown();
    let stats = telemetry.stats();
    println!(
        "processed {processed} events in {:.2?}; spans: {} ended, {} exported, {} dropped; failed exports: {}",
        elapsed,
        stats.spans_ended,
        stats.spans_exported,
        stats.spans_dropped(),
        stats.failed_exports
    );
    match shutdown {
        Ok(()) => println!("telemetry written to {}", telemetry.destination()),
        // Telemetry trouble is reported, not turned into a failed run.
        Err(e) => {
            eprintln!("otelconc: {e}");
            println!("telemetry destination: {}", telemetry.destination());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Processes `events` events, `CONCURRENCY` at a time; returns how many succeeded.
async fn ingest(events: u64) -> u64 {
    let tracer = std::sync::Arc::new(global::tracer(SCOPE));
    let meter = global::meter(SCOPE);
    let counter = meter
        .u64_counter("otelconc.demo.events")
        .with_unit("{event}")
        .with_description("Events the demo processed, by outcome.")
        .build();
    let duration = meter
        .f64_histogram("otelconc.demo.event.duration")
        .with_unit("s")
        .with_description("Time to process one event.")
        .build();
    let ok = [KeyValue::new("outcome", "ok")];

    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0_u64;
    let mut processed = 0_u64;
    loop {
        while next < events && tasks.len() < CONCURRENCY {
            let id = next;
            next += 1;
            let span = tracer
                .span_builder("otelconc.demo.event")
                .with_attributes([KeyValue::new("event.id", id as i64)])
                .start(&*tracer);
            let cx = Context::current_with_span(span);
            let tracer = tracer.clone();
            tasks.spawn(
                async move {
                    let started = Instant::now();
                    tracer.in_span("otelconc.demo.parse", |_| std::hint::black_box(id * 31));
                    let store =
                        tracer.start_with_context("otelconc.demo.store", &Context::current());
                    let store_cx = Context::current_with_span(store);
                    tokio::time::sleep(Duration::from_micros(200))
                        .with_context(store_cx.clone())
                        .await;
                    store_cx.span().end();
                    Context::current().span().end();
                    started.elapsed()
                }
                .with_context(cx),
            );
        }
        match tasks.join_next().await {
            Some(Ok(took)) => {
                processed += 1;
                counter.add(1, &ok);
                duration.record(took.as_secs_f64(), &ok);
            }
            Some(Err(e)) => eprintln!("otelconc demo: an event task failed: {e}"),
            None => break,
        }
    }
    processed
}
