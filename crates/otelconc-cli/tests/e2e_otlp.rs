//! End to end: the `otelconc demo` program against the real collector (rotel), with each
//! OTLP protocol and with the embedded file default, asserted from what rotel printed.
//!
//! The demo's trace of one event must follow it across every primitive: the ingest
//! channel, each pipeline stage, the three lookups (with their semaphore and rate
//! limiter waits when they waited, and the HTTP CLIENT span of each lookup's request
//! with the downstream server's SERVER span as its child), the pool job, the fan-in and
//! the sink write, in one trace with no orphan span.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use otelconc_testkit::Rotel;
use otelconc_testkit::rotel::{RotelMetric, RotelSpan, attr};

const WAIT: Duration = Duration::from_secs(60);

/// A metric of every primitive the demo runs through.
const PRIMITIVE_METRICS: &[&str] = &[
    "otelconc.channel.sent",
    "otelconc.pipeline.stage.processed",
    "otelconc.group.task.finished",
    "otelconc.semaphore.acquisitions",
    "otelconc.rate.acquisitions",
    "otelconc.pool.jobs",
    "otelconc.fan_in.items",
    "otelconc.demo.event.duration",
];

fn demo_command(envs: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otelconc"));
    cmd.arg("demo").args(args);
    for var in otelconc_testkit::rotel::PROGRAM_ENV {
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

/// How many events ended as written, from the program's report.
fn succeeded(stdout: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("succeeded"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'succeeded' line in the report:\n{stdout}"))
}

/// What an operator alerts on, per queue: capacity next to size, the oldest item's age,
/// and the workers' busy time.
const QUEUE_METRICS: &[&str] = &[
    "otelconc.channel.size",
    "otelconc.channel.capacity",
    "otelconc.channel.oldest.age",
    "otelconc.pool.queue.size",
    "otelconc.pool.queue.capacity",
    "otelconc.pool.queue.oldest.age",
    "otelconc.pool.worker.busy.time",
    "otelconc.pipeline.stage.buffer.size",
    "otelconc.pipeline.stage.buffer.capacity",
    "otelconc.pipeline.stage.buffer.oldest.age",
    "otelconc.pipeline.stage.busy.time",
];

/// The metrics of the channel, the pool and the pipeline as rotel received them: no
/// additive level is a gauge (only ages are), every queue exports its capacity, its
/// oldest item's age and its workers' busy time, and `otelconc.channel.received`
/// counts messages, not polls (no `empty` outcome).
fn assert_queue_metrics(metrics: &[RotelMetric]) {
    for name in QUEUE_METRICS {
        assert!(
            metrics.iter().any(|m| m.name == *name),
            "{name} was exported"
        );
    }
    let ours = ["otelconc.channel.", "otelconc.pool.", "otelconc.pipeline."];
    for m in metrics
        .iter()
        .filter(|m| ours.iter().any(|p| m.name.starts_with(p)))
    {
        let last = m.name.rsplit('.').next().unwrap_or_default();
        let is_age = last == "age" || last.ends_with("_age");
        assert_eq!(
            m.data_type == "Gauge",
            is_age,
            "{} is a {}: only ages are gauges, additive levels are up-down counters",
            m.name,
            m.data_type
        );
        if is_age {
            assert_eq!(m.unit, "s", "{}", m.name);
        }
    }
    for m in metrics
        .iter()
        .filter(|m| m.name == "otelconc.channel.received")
    {
        for point in &m.points {
            assert_eq!(
                attr(point, "otelconc.outcome"),
                None,
                "received counts messages, with no outcome: {point:?}"
            );
        }
    }
}

/// Whether every metric of `names` is among `metrics`.
fn all_arrived(names: &[&str], metrics: &[RotelMetric]) -> bool {
    names.iter().all(|n| metrics.iter().any(|m| m.name == *n))
}

fn metrics_arrived(metrics: &[RotelMetric]) -> bool {
    all_arrived(PRIMITIVE_METRICS, metrics)
}

/// The spans of each trace, by trace id.
fn traces(spans: &[RotelSpan]) -> BTreeMap<&str, Vec<&RotelSpan>> {
    let mut by: BTreeMap<&str, Vec<&RotelSpan>> = BTreeMap::new();
    for s in spans {
        by.entry(s.trace_id.as_str()).or_default().push(s);
    }
    by
}

/// Traces of events that were written, complete: the root and the sink write are in.
fn complete_event_traces(spans: &[RotelSpan]) -> Vec<Vec<&RotelSpan>> {
    traces(spans)
        .into_values()
        .filter(|t| {
            t.iter().any(|s| s.name == "demo.event") && t.iter().any(|s| s.name == "sink write")
        })
        .collect()
}

fn parent_of<'a>(trace: &[&'a RotelSpan], s: &RotelSpan) -> Option<&'a RotelSpan> {
    trace
        .iter()
        .copied()
        .find(|p| p.span_id == s.parent_span_id)
}

/// One written event's trace holds every step of its way, in one parent chain.
fn assert_event_trace(trace: &[&RotelSpan]) {
    let names: BTreeSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "demo.event",
        "otelconc.channel.receive",
        "otelconc.pipeline.stage",
        "otelconc.group.task",
        "lookup users",
        "lookup geo",
        "lookup fraud",
        "otelconc.pool.job",
        "otelconc.fan_in.receive",
        "sink write",
    ] {
        assert!(
            names.contains(want),
            "{want} missing from the trace: {names:?}"
        );
    }
    let stages: BTreeSet<&str> = trace
        .iter()
        .filter(|s| s.name == "otelconc.pipeline.stage")
        .filter_map(|s| attr(&s.attributes, "otelconc.stage"))
        .collect();
    assert_eq!(stages, BTreeSet::from(["parse", "enrich", "process"]));
    // No orphans: every parent a span names is a span of this trace.
    for s in trace {
        if !s.parent_span_id.is_empty() {
            assert!(
                parent_of(trace, s).is_some(),
                "orphan {} in {trace:#?}",
                s.name
            );
        }
    }
    let roots: Vec<_> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root per event trace");
    assert_eq!(roots[0].name, "demo.event");
    // Each lookup is a real HTTP request: its CLIENT span (`GET`) has the downstream
    // server's SERVER span of the lookup's route as its child, across the hop.
    for service in ["users", "geo", "fraud"] {
        let lookup = trace
            .iter()
            .find(|s| s.name == format!("lookup {service}"))
            .expect("the lookup");
        let client = trace
            .iter()
            .find(|s| s.name == "GET" && s.parent_span_id == lookup.span_id)
            .unwrap_or_else(|| panic!("no CLIENT span under lookup {service}"));
        assert_eq!(attr(&client.attributes, "http.request.method"), Some("GET"));
        assert_eq!(
            attr(&client.attributes, "server.address"),
            Some("127.0.0.1")
        );
        let route = format!("/{service}/{{seq}}");
        let server = trace
            .iter()
            .find(|s| s.parent_span_id == client.span_id)
            .unwrap_or_else(|| panic!("no SERVER span under the CLIENT span of {service}"));
        assert_eq!(server.name, format!("GET {route}"));
        assert_eq!(attr(&server.attributes, "http.route"), Some(route.as_str()));
    }
    // Waits hang off the lookup that waited; the pool job off the process stage.
    for s in trace {
        let parent = parent_of(trace, s).map(|p| p.name.as_str());
        match s.name.as_str() {
            "otelconc.semaphore.wait" | "otelconc.rate.wait" => {
                assert!(
                    parent.is_some_and(|p| p.starts_with("lookup ")),
                    "{} under {parent:?}",
                    s.name
                )
            }
            "otelconc.pool.job" => assert_eq!(parent, Some("otelconc.pipeline.stage")),
            n if n.starts_with("lookup ") => assert_eq!(parent, Some("otelconc.group.task")),
            _ => {}
        }
    }
}

fn assert_demo_traces(spans: &[RotelSpan]) {
    let complete = complete_event_traces(spans);
    assert!(
        !complete.is_empty(),
        "no complete event trace among {} spans",
        spans.len()
    );
    for t in &complete {
        assert_event_trace(t);
    }
    assert!(
        spans.iter().any(|s| s.name == "otelconc.semaphore.wait"),
        "the connections semaphore made some lookup wait"
    );
}

/// The demo against rotel over `protocol`: one written event's whole trace, metrics of
/// every primitive, `service.name` and resource attributes on everything.
fn export_with(protocol: &str) {
    let rotel = Rotel::start();
    let service = format!("otelconc-e2e-{}", protocol.replace('/', "-"));
    let out = demo(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint_for(protocol)),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            ("OTEL_SERVICE_NAME", service.clone()),
            ("OTEL_TRACES_SAMPLER", "traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", "0.03".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_owned()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=e2e,vcs.ref=main%2Fx".to_owned(),
            ),
        ],
        &["--quick"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("OTLP ({protocol})")),
        "the program says where telemetry goes: {stdout}"
    );
    assert!(succeeded(&stdout) > 0);
    rotel.expect("metrics of every primitive", WAIT, |_, m| {
        metrics_arrived(m) && all_arrived(QUEUE_METRICS, m)
    });
    assert_queue_metrics(&rotel.metrics());
    rotel.expect("a complete event trace", WAIT, |spans, _| {
        !complete_event_traces(spans).is_empty()
    });
    let spans = rotel.spans();
    assert_demo_traces(&spans);
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

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otelconc-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn demo_without_endpoint_writes_files_a_collector_accepts() {
    let dir = temp_dir("files");
    let out = demo(
        &[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=files".to_owned(),
            ),
            ("OTEL_TRACES_SAMPLER", "traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1".to_owned()),
        ],
        &[
            "--events",
            "300",
            "--telemetry-dir",
            dir.to_str().expect("utf-8 temp dir"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("traces.jsonl"), "{stdout}");
    assert!(dir.join("traces.jsonl").is_file() && dir.join("metrics.jsonl").is_file());

    let rotel = Rotel::start();
    let (trace_lines, metric_lines) = rotel.replay_telemetry_dir(&dir);
    assert!(trace_lines >= 1 && metric_lines >= 1);
    rotel.expect("the replayed metrics", WAIT, |_, m| metrics_arrived(m));
    rotel.expect("a complete replayed event trace", WAIT, |spans, _| {
        !complete_event_traces(spans).is_empty()
    });
    let spans = rotel.spans();
    assert_demo_traces(&spans);
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
    let dir = temp_dir("envdir");
    demo(
        &[("OTELCONC_TELEMETRY_DIR", dir.display().to_string())],
        &["--events", "50"],
    );
    assert!(dir.join("traces.jsonl").is_file() && dir.join("metrics.jsonl").is_file());
}

#[test]
fn an_invalid_variable_fails_the_program_with_a_message_naming_it() {
    let out = demo_command(
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp".to_owned())],
        &["--events", "10"],
    )
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

/// The trace rules as a collector sees them, under the sampler production services use
/// and with injected failures: every Error span says what kind of error in
/// `error.type`, no span has an `exception` event, a span that ended by cancellation is
/// not an error, and no exported span names a parent its trace does not have (a hop
/// never starts an orphan fragment).
#[test]
fn under_a_parent_based_ratio_sampler_errors_cancellations_and_parents_follow_the_rules() {
    let rotel = Rotel::start();
    let out = demo(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint_for("grpc")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", "0.2".to_owned()),
        ],
        &["--quick", "--failure-rate", "0.05"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(succeeded(&stdout) > 0);
    rotel.expect("a complete event trace", WAIT, |spans, _| {
        !complete_event_traces(spans).is_empty()
    });
    // The program flushed before it exited; give rotel's printing a moment to catch
    // up with what it accepted by waiting for the metrics too.
    rotel.expect("metrics of every primitive", WAIT, |_, m| {
        metrics_arrived(m)
    });
    let spans = rotel.spans();
    let errors: Vec<_> = spans
        .iter()
        .filter(|s| s.status_code == "STATUS_CODE_ERROR")
        .collect();
    assert!(
        !errors.is_empty(),
        "a 5% failure rate made some span fail among {}",
        spans.len()
    );
    for s in &errors {
        assert!(
            attr(&s.attributes, "error.type").is_some_and(|t| !t.is_empty()),
            "Error span without error.type: {s:?}"
        );
    }
    for s in &spans {
        assert!(
            !s.events.iter().any(|e| e == "exception"),
            "exception event on {s:?}"
        );
        if attr(&s.attributes, "otelconc.outcome") == Some("cancelled") {
            assert_ne!(
                s.status_code, "STATUS_CODE_ERROR",
                "cancelled is not an error: {s:?}"
            );
        }
    }
    for (trace_id, trace) in traces(&spans) {
        for s in &trace {
            if !s.parent_span_id.is_empty() {
                assert!(
                    parent_of(&trace, s).is_some(),
                    "{} in trace {trace_id} names a parent the trace does not have",
                    s.name
                );
            }
        }
    }
}
