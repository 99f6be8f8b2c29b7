//! `install` makes otelconc's global handles record through bound instruments, and the
//! SDK this crate depends on records what goes through a binding.
//!
//! What this cannot show: that the SDK feature comes from this crate's own Cargo.toml.
//! In this workspace other crates (the test kit, the program) turn it on too, and Cargo
//! unifies it, so the build a test runs in always has it.

use std::time::Duration;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};
use otelconc::group::TaskGroup;
use otelconc::telemetry::Telemetry;

fn started(exporter: &InMemoryMetricExporter) -> Option<u64> {
    let all = exporter.get_finished_metrics().expect("metrics");
    let last = all.last()?;
    let metric = last
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == "otelconc.group.task.started")?;
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(s)) => {
            Some(s.data_points().map(|p| p.value()).sum())
        }
        other => panic!("tasks.started is not a u64 sum: {other:?}"),
    }
}

#[test]
fn installed_meter_provider_records_otelconc_through_bindings() {
    let dir = std::env::temp_dir().join(format!("otelconc-bound-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exporter = InMemoryMetricExporter::default();
    let reader = PeriodicReader::builder(exporter.clone())
        .with_interval(Duration::from_secs(3600))
        .build();
    assert!(
        !Telemetry::global().bound_instruments(),
        "no SDK installed yet"
    );
    let guard = otelconc_setup::builder()
        .env_lookup(|_| None)
        .files_dir(&dir)
        .with_metric_reader(reader)
        .install()
        .expect("setup");

    let t = Telemetry::global();
    assert!(t.bound_instruments(), "install vouches for its provider");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut group: TaskGroup<(), String> = TaskGroup::builder()
            .name("bound")
            .telemetry(t)
            .build()
            .unwrap();
        for _ in 0..5 {
            group.spawn(async { Ok(()) }).await.unwrap();
        }
        group.wait().await.unwrap();
    });

    guard
        .meter_provider()
        .expect("meter provider")
        .force_flush()
        .expect("flush");
    assert_eq!(started(&exporter), Some(5));
    guard.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
