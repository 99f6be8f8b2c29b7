//! The View `docs/telemetry.md` gives for overriding the buckets of otelconc's
//! histograms does what it says.

use std::time::Duration;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{
    Aggregation, InMemoryMetricExporter, Instrument, InstrumentKind, PeriodicReader,
    SdkMeterProvider, Stream,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use otelconc::pool::WorkerPool;
use otelconc::telemetry::Telemetry;

const BOUNDARIES: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[tokio::test]
async fn a_view_replaces_the_advised_bucket_boundaries() {
    let exporter = InMemoryMetricExporter::default();
    let reader = PeriodicReader::builder(exporter.clone())
        .with_interval(Duration::from_secs(3600))
        .build();
    // As in the docs.
    let provider = SdkMeterProvider::builder()
        .with_view(|i: &Instrument| {
            let ours = i.kind() == InstrumentKind::Histogram && i.name().starts_with("otelconc.");
            ours.then(|| {
                Stream::builder()
                    .with_aggregation(Aggregation::ExplicitBucketHistogram {
                        boundaries: BOUNDARIES.to_vec(),
                        record_min_max: true,
                    })
                    .build()
                    .ok()
            })
            .flatten()
        })
        .with_reader(reader)
        .build();
    let telemetry = Telemetry::new(&provider, &SdkTracerProvider::builder().build());
    let pool = WorkerPool::builder("viewed")
        .timing_sample(1)
        .telemetry(telemetry)
        .build()
        .unwrap();
    pool.submit(|| async {}).await.unwrap();
    let _ = pool.shutdown(Duration::from_secs(5)).await;
    provider.force_flush().unwrap();
    let metrics = exporter.get_finished_metrics().unwrap();
    let m = metrics
        .iter()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == "otelconc.pool.job.duration")
        .expect("the job's duration was recorded");
    let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() else {
        panic!("a histogram");
    };
    let p = h.data_points().next().expect("a point");
    assert_eq!(p.bounds().collect::<Vec<_>>(), BOUNDARIES.to_vec());
    // The View changed nothing else: the counters are still counters.
    assert!(
        metrics
            .iter()
            .flat_map(|r| r.scope_metrics())
            .flat_map(|s| s.metrics())
            .any(|m| m.name() == "otelconc.pool.jobs")
    );
}
