//! End to end: the `otelconc demo` program against the real collector (rotel), with each
//! OTLP protocol and with the embedded file default, asserted from what rotel printed.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use otelconc_testkit::Rotel;
use otelconc_testkit::rotel::{RotelMetric, RotelSpan, attr};

const WAIT: Duration = Duration::from_secs(30);
/// Few enough events that no span is dropped even by a debug build (3 spans each).
const EVENTS: &str = "200";

/// Every variable the program reads, so the caller's environment cannot leak in.
const OTEL_VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_SDK_DISABLED",
    "OTELCONC_TELEMETRY_DIR",
];

fn demo_command(envs: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otelconc"));
    cmd.arg("demo").args(["--events", EVENTS]).args(args);
    for var in OTEL_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

fn demo(envs: &[(&str, String)], args: &[&str]) -> Output {
    let out = demo_command(envs, args).output().expect("run otelconc");
    assert!(
        out.status.success(),
        "otelconc demo failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn demo_telemetry_arrived(spans: &[RotelSpan], metrics: &[RotelMetric]) -> bool {
    [
        "otelconc.demo.event",
        "otelconc.demo.parse",
        "otelconc.demo.store",
    ]
    .iter()
    .all(|n| spans.iter().filter(|s| s.name == *n).count() == 200)
        && ["otelconc.demo.events", "otelconc.demo.event.duration"]
            .iter()
            .all(|n| metrics.iter().any(|m| m.name == *n))
}

fn assert_traces_follow_the_work(spans: &[RotelSpan]) {
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "otelconc.demo.event")
        .collect();
    assert_eq!(roots.len(), 200, "one root span per event");
    assert!(roots.iter().all(|r| r.parent_span_id.is_empty()));
    for child in spans.iter().filter(|s| s.name != "otelconc.demo.event") {
        let parent = roots
            .iter()
            .find(|r| r.span_id == child.parent_span_id)
            .unwrap_or_else(|| panic!("{} has no event parent: {child:?}", child.name));
        assert_eq!(parent.trace_id, child.trace_id);
    }
}

fn export_with(protocol: &str) {
    let rotel = Rotel::start();
    let service = format!("otelconc-e2e-{}", protocol.replace('/', "-"));
    let out = demo(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint_for(protocol)),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            ("OTEL_SERVICE_NAME", service.clone()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=e2e,vcs.ref=main%2Fx".to_owned(),
            ),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("OTLP ({protocol})")),
        "the program says where telemetry goes: {stdout}"
    );
    rotel.expect("the demo's spans and metrics", WAIT, demo_telemetry_arrived);
    let spans = rotel.spans();
    assert_traces_follow_the_work(&spans);
    for s in &spans {
        assert_eq!(s.service_name(), Some(service.as_str()), "{s:?}");
        assert_eq!(
            attr(&s.resource, "deployment.environment.name"),
            Some("e2e")
        );
        assert_eq!(attr(&s.resource, "vcs.ref"), Some("main/x"));
    }
    for m in rotel.metrics() {
        assert_eq!(m.service_name(), Some(service.as_str()), "{m:?}");
        assert_eq!(
            attr(&m.resource, "deployment.environment.name"),
            Some("e2e")
        );
    }
}

#[test]
fn demo_exports_over_grpc() {
    export_with("grpc");
}

#[test]
fn demo_exports_over_http_protobuf() {
    export_with("http/protobuf");
}

#[test]
fn demo_exports_over_http_json() {
    export_with("http/json");
}

#[test]
fn demo_without_endpoint_writes_files_a_collector_accepts() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("otelconc-e2e-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = demo(
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=files".to_owned(),
        )],
        &["--telemetry-dir", dir.to_str().expect("utf-8 temp dir")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("traces.jsonl"), "{stdout}");
    assert!(dir.join("traces.jsonl").is_file() && dir.join("metrics.jsonl").is_file());

    let rotel = Rotel::start();
    let (trace_lines, metric_lines) = rotel.replay_telemetry_dir(&dir);
    assert!(trace_lines >= 1 && metric_lines >= 1);
    rotel.expect(
        "the replayed spans and metrics",
        WAIT,
        demo_telemetry_arrived,
    );
    let spans = rotel.spans();
    assert_traces_follow_the_work(&spans);
    for s in &spans {
        assert_eq!(
            s.service_name(),
            Some("otelconc"),
            "the program's default name"
        );
        assert_eq!(
            attr(&s.resource, "deployment.environment.name"),
            Some("files")
        );
    }
}

#[test]
fn the_telemetry_dir_can_come_from_the_environment() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("otelconc-e2e-envdir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    demo(
        &[("OTELCONC_TELEMETRY_DIR", dir.display().to_string())],
        &[],
    );
    assert!(dir.join("traces.jsonl").is_file() && dir.join("metrics.jsonl").is_file());
}

#[test]
fn an_invalid_variable_fails_the_program_with_a_message_naming_it() {
    let out = demo_command(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp".to_owned())], &[])
        .output()
        .expect("run otelconc");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL")
            && stderr.contains("grpc, http/protobuf, http/json"),
        "{stderr}"
    );
}
