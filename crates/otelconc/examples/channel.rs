//! A producer and a consumer over an otelconc channel, with the trace and the metrics
//! printed to stdout.
//!
//! Run with `cargo run -p otelconc --example channel`. Look for:
//! - each `place order` span and, in the same trace, its child
//!   `otelconc.channel.receive` (kind Consumer, with `otelconc.queue_wait`): the trace
//!   follows the order through the channel;
//! - the `otelconc.channel.*` metrics: messages sent by outcome and received, size,
//!   capacity, the oldest message's age, queue time, and how long the consumer waited
//!   for messages.

use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt, Tracer};
use opentelemetry::{Context, global};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The application installs an SDK (here: print everything to stdout).
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default()).build(),
        )
        .build();
    global::set_tracer_provider(tracer_provider.clone());
    global::set_meter_provider(meter_provider.clone());

    // 2. A named channel; it reports to the global providers installed above.
    let (tx, rx) = otelconc::channel::bounded::<u64>("orders", 16);
    // A channel reports while any of its handles lives: keep one until metrics are out.
    let keep = rx.clone();

    // 3. The producer places each order inside its own trace.
    let producer = tokio::spawn(async move {
        let tracer = global::tracer("shop");
        for order in 1..=3 {
            let cx = Context::current_with_span(tracer.start("place order"));
            tx.send(order).with_context(cx.clone()).await?;
            cx.span().end();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, otelconc::channel::SendError<u64>>(())
    });

    // 4. The consumer processes each order in a span that continues the order's trace.
    let consumer = tokio::spawn(async move {
        while let Ok(msg) = rx.recv_traced().await {
            msg.in_span(|order| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                println!("processed order {order}");
            })
            .await;
        }
    });

    producer.await??;
    consumer.await?;

    // 5. Spans were printed as they ended; shutting the meter provider down collects and
    //    prints the metrics.
    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    drop(keep);
    Ok(())
}
