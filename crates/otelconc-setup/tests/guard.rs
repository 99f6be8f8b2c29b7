//! The guard: shutdown flushes, is idempotent and safe from several threads, dropping
//! it shuts down; install sets the globals; extra readers see the same metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use otelconc_setup::{self as setup, SetupBuilder};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otelconc-guard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn files(dir: &Path) -> SetupBuilder {
    setup::builder()
        .env_lookup(|_| None)
        .service_name("guard-test")
        .files_dir(dir)
}

/// Span names in traces.jsonl, one entry per exported span.
fn exported_span_names(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("traces.jsonl")).unwrap_or_default();
    let mut names = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        for rs in v["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    names.push(s["name"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    names
}

fn metric_names(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    let mut names = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        for rm in v["resourceMetrics"].as_array().unwrap() {
            for sm in rm["scopeMetrics"].as_array().unwrap() {
                for m in sm["metrics"].as_array().unwrap() {
                    names.push(m["name"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn shutdown_flushes_and_is_idempotent() {
    let dir = temp_dir("idempotent");
    let guard = files(&dir).build().unwrap();
    let tracer = guard.tracer_provider().unwrap().tracer("t");
    for _ in 0..3 {
        tracer.in_span("before-shutdown", |_| {});
    }
    guard
        .meter_provider()
        .unwrap()
        .meter("m")
        .u64_counter("guard.test.count")
        .build()
        .add(1, &[]);
    assert!(
        exported_span_names(&dir).is_empty(),
        "batched until flushed"
    );
    guard.shutdown().expect("first shutdown");
    assert_eq!(exported_span_names(&dir), ["before-shutdown"; 3]);
    assert_eq!(metric_names(&dir), ["guard.test.count"]);
    let stats = guard.stats();
    assert_eq!(
        (stats.spans_ended, stats.spans_exported),
        (3, 3),
        "{stats:?}"
    );
    assert_eq!(stats.metric_exports, 1);

    guard.shutdown().expect("second shutdown is a no-op");
    guard
        .shutdown_with_deadline(Duration::ZERO)
        .expect("a no-op even with no time");
    tracer.in_span("after-shutdown", |_| {});
    drop(guard);
    assert_eq!(
        exported_span_names(&dir),
        ["before-shutdown"; 3],
        "nothing after shutdown"
    );
    assert_eq!(metric_names(&dir).len(), 1, "no second flush on drop");
}

#[test]
fn concurrent_shutdowns_flush_once() {
    let dir = temp_dir("concurrent");
    let guard = Arc::new(files(&dir).build().unwrap());
    let tracer = guard.tracer_provider().unwrap().tracer("t");
    for _ in 0..100 {
        tracer.in_span("work", |_| {});
    }
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let g = guard.clone();
            std::thread::spawn(move || g.shutdown())
        })
        .collect();
    for t in threads {
        t.join().expect("no panic").expect("every caller gets Ok");
    }
    assert_eq!(
        exported_span_names(&dir).len(),
        100,
        "each span exactly once"
    );
}

#[test]
fn dropping_the_guard_shuts_down_and_flushes() {
    let dir = temp_dir("drop");
    {
        let guard = files(&dir).build().unwrap();
        let tracer = guard.tracer_provider().unwrap().tracer("t");
        tracer.in_span("dropped-guard", |_| {});
        guard
            .meter_provider()
            .unwrap()
            .meter("m")
            .f64_histogram("guard.test.duration")
            .build()
            .record(0.5, &[]);
    }
    assert_eq!(exported_span_names(&dir), ["dropped-guard"]);
    assert_eq!(metric_names(&dir), ["guard.test.duration"]);
}

#[test]
fn dropping_inside_a_tokio_runtime_does_not_panic() {
    let dir = temp_dir("drop-async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let guard = files(&dir).build().unwrap();
        guard
            .tracer_provider()
            .unwrap()
            .tracer("t")
            .in_span("in-async", |_| {});
        drop(guard);
    });
    assert_eq!(exported_span_names(&dir), ["in-async"]);
}

#[test]
fn install_sets_the_global_providers() {
    let dir = temp_dir("install");
    let guard = files(&dir).install().unwrap();
    opentelemetry::global::tracer("global-test").in_span("via-global", |_| {});
    opentelemetry::global::meter("global-test")
        .u64_counter("guard.test.global")
        .build()
        .add(2, &[]);
    guard.shutdown().unwrap();
    assert_eq!(exported_span_names(&dir), ["via-global"]);
    // Other tests in this process may build SDK batch processors meanwhile, which
    // register the SDK's own `otel.sdk.*` counters on the (now ours) global meter.
    let names = metric_names(&dir);
    assert!(names.contains(&"guard.test.global".to_owned()), "{names:?}");
}

#[test]
fn an_extra_reader_sees_the_same_metrics() {
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};
    let dir = temp_dir("reader");
    let memory = InMemoryMetricExporter::default();
    let reader = PeriodicReader::builder(memory.clone())
        .with_interval(Duration::from_secs(3600))
        .build();
    let guard = files(&dir).with_metric_reader(reader).build().unwrap();
    guard
        .meter_provider()
        .unwrap()
        .meter("m")
        .u64_counter("guard.test.shared")
        .build()
        .add(5, &[]);
    guard.shutdown().unwrap();
    assert_eq!(metric_names(&dir), ["guard.test.shared"]);
    let got = memory.get_finished_metrics().unwrap();
    let names: Vec<String> = got
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(names, ["guard.test.shared"]);
}

#[test]
fn files_append_across_runs() {
    let dir = temp_dir("append");
    for name in ["first-run", "second-run"] {
        let guard = files(&dir).build().unwrap();
        guard
            .tracer_provider()
            .unwrap()
            .tracer("t")
            .in_span(name, |_| {});
        guard.shutdown().unwrap();
    }
    assert_eq!(exported_span_names(&dir), ["first-run", "second-run"]);
}

#[test]
fn an_unwritable_directory_is_an_error_naming_the_path() {
    let file = temp_dir("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = files(&file.join("sub")).build().unwrap_err();
    assert!(matches!(err, setup::SetupError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn the_configured_sampler_is_installed() {
    use opentelemetry::trace::{TraceContextExt, Tracer as _};
    for (sampler, sampled) in [("always_off", false), ("always_on", true)] {
        let dir = temp_dir(sampler);
        let guard = setup::builder()
            .env_lookup(move |k| (k == "OTEL_TRACES_SAMPLER").then(|| sampler.to_owned()))
            .files_dir(&dir)
            .build()
            .unwrap();
        let tracer = guard.tracer_provider().unwrap().tracer("t");
        let is_sampled = tracer.in_span("maybe", |cx| cx.span().span_context().is_sampled());
        assert_eq!(is_sampled, sampled, "{sampler}");
        guard.shutdown().unwrap();
        assert_eq!(
            exported_span_names(&dir).len(),
            usize::from(sampled),
            "{sampler}"
        );
    }
}
