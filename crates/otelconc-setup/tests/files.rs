//! The embedded default: OTLP/JSON files as the Collector's file exporter writes them,
//! accepted by a real collector's OTLP/HTTP receiver.

use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use otelconc_setup::{self as setup, Destination};
use otelconc_testkit::Rotel;
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otelconc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Writes a root span with a child, and one metric of each kind, to files in `dir`.
fn write_telemetry(dir: &PathBuf) -> (PathBuf, PathBuf) {
    let guard = setup::builder()
        .env_lookup(|k| match k {
            "OTEL_RESOURCE_ATTRIBUTES" => {
                Some("deployment.environment.name=test,team=a%20b".into())
            }
            _ => None,
        })
        .service_name("files-test")
        .files_dir(dir)
        .build()
        .expect("setup");
    let Destination::Files {
        traces, metrics, ..
    } = guard.destination().clone()
    else {
        panic!("expected files, got {}", guard.destination());
    };
    let tracer = guard
        .tracer_provider()
        .expect("tracer")
        .tracer("files-test-scope");
    let mut root = tracer.start("root-op");
    root.set_attribute(KeyValue::new("count", 42_i64));
    root.set_attribute(KeyValue::new("big", i64::MAX));
    root.set_attribute(KeyValue::new("ok", true));
    root.set_attribute(KeyValue::new("ratio", 0.5));
    root.set_attribute(KeyValue::new("who", "me"));
    let cx = Context::current_with_span(root);
    let mut child = tracer.start_with_context("child-op", &cx);
    child.add_event("something", vec![KeyValue::new("n", 1_i64)]);
    child.set_status(Status::error("it broke"));
    child.end();
    cx.span().end();

    let meter = guard
        .meter_provider()
        .expect("meter")
        .meter("files-test-scope");
    let counter = meter
        .u64_counter("files.test.events")
        .with_unit("{event}")
        .build();
    counter.add(7, &[KeyValue::new("outcome", "ok")]);
    let hist = meter
        .f64_histogram("files.test.duration")
        .with_unit("s")
        .build();
    hist.record(0.002, &[]);
    hist.record(0.3, &[]);
    meter
        .f64_histogram("files.test.zero")
        .build()
        .record(0.0, &[]);
    let updown = meter.i64_up_down_counter("files.test.inflight").build();
    updown.add(-3, &[]);
    let gauge = meter.f64_gauge("files.test.level").build();
    gauge.record(1.5, &[]);
    guard
        .shutdown_with_deadline(Duration::from_secs(10))
        .expect("shutdown");
    (traces, metrics)
}

fn lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_u64_string(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| !s.is_empty() && s.parse::<u64>().is_ok())
}

/// Every object key in the document is lowerCamelCase (no `_`, starts lowercase).
fn assert_camel_case(v: &Value, path: &str) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                assert!(
                    !k.contains('_') && k.starts_with(|c: char| c.is_ascii_lowercase()),
                    "key {k:?} at {path} is not lowerCamelCase"
                );
                assert!(
                    !v.is_null(),
                    "null at {path}.{k}: proto3 JSON omits unset fields"
                );
                assert_camel_case(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_camel_case(i, path)),
        _ => {}
    }
}

fn resource_attr<'a>(resource: &'a Value, key: &str) -> Option<&'a Value> {
    resource["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[test]
fn trace_lines_follow_the_otlp_json_encoding() {
    let dir = temp_dir("trace-shape");
    let (traces, _) = write_telemetry(&dir);
    let lines = lines(&traces);
    assert!(!lines.is_empty());
    let mut spans = Vec::new();
    for line in &lines {
        assert_camel_case(line, "$");
        let obj = line.as_object().expect("object");
        assert_eq!(
            obj.keys().collect::<Vec<_>>(),
            ["resourceSpans"],
            "one request per line"
        );
        for rs in line["resourceSpans"].as_array().expect("resourceSpans") {
            let resource = &rs["resource"];
            assert_eq!(
                resource_attr(resource, "service.name").unwrap()["stringValue"],
                "files-test"
            );
            assert_eq!(
                resource_attr(resource, "team").unwrap()["stringValue"],
                "a b"
            );
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                assert_eq!(ss["scope"]["name"], "files-test-scope");
                spans.extend(ss["spans"].as_array().expect("spans").iter().cloned());
            }
        }
    }
    let root = spans
        .iter()
        .find(|s| s["name"] == "root-op")
        .expect("root span");
    let child = spans
        .iter()
        .find(|s| s["name"] == "child-op")
        .expect("child span");
    for s in [root, child] {
        assert!(
            is_hex(s["traceId"].as_str().unwrap(), 32),
            "hex trace id: {s}"
        );
        assert!(
            is_hex(s["spanId"].as_str().unwrap(), 16),
            "hex span id: {s}"
        );
        assert!(
            is_u64_string(&s["startTimeUnixNano"]),
            "fixed64 as string: {s}"
        );
        assert!(
            is_u64_string(&s["endTimeUnixNano"]),
            "fixed64 as string: {s}"
        );
        assert_eq!(s["kind"], 1, "enum as integer (SPAN_KIND_INTERNAL): {s}");
    }
    assert!(
        root.get("parentSpanId").is_none(),
        "a root has no parent field: {root}"
    );
    assert_eq!(child["parentSpanId"], root["spanId"]);
    assert_eq!(child["traceId"], root["traceId"]);
    assert_eq!(child["status"]["code"], 2, "STATUS_CODE_ERROR as integer");
    assert_eq!(child["status"]["message"], "it broke");
    let event = &child["events"][0];
    assert_eq!(event["name"], "something");
    assert!(is_u64_string(&event["timeUnixNano"]));
    assert_eq!(event["attributes"][0]["value"]["intValue"], "1");

    let attrs: std::collections::HashMap<&str, &Value> = root["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap(), &a["value"]))
        .collect();
    assert_eq!(attrs["count"]["intValue"], "42", "int64 as string");
    assert_eq!(
        attrs["big"]["intValue"],
        i64::MAX.to_string(),
        "no precision lost"
    );
    assert_eq!(attrs["ok"]["boolValue"], true);
    assert_eq!(attrs["ratio"]["doubleValue"], 0.5);
    assert_eq!(attrs["who"]["stringValue"], "me");
}

#[test]
fn metric_lines_follow_the_otlp_json_encoding() {
    let dir = temp_dir("metric-shape");
    let (_, metrics) = write_telemetry(&dir);
    let lines = lines(&metrics);
    assert!(!lines.is_empty());
    let mut by_name = std::collections::HashMap::new();
    for line in &lines {
        assert_camel_case(line, "$");
        for rm in line["resourceMetrics"].as_array().expect("resourceMetrics") {
            assert_eq!(
                resource_attr(&rm["resource"], "service.name").unwrap()["stringValue"],
                "files-test"
            );
            for sm in rm["scopeMetrics"].as_array().expect("scopeMetrics") {
                for m in sm["metrics"].as_array().expect("metrics") {
                    by_name.insert(m["name"].as_str().unwrap().to_owned(), m.clone());
                }
            }
        }
    }
    let events = &by_name["files.test.events"];
    assert_eq!(events["unit"], "{event}");
    assert_eq!(
        events["sum"]["aggregationTemporality"], 2,
        "CUMULATIVE as integer"
    );
    assert_eq!(events["sum"]["isMonotonic"], true);
    let point = &events["sum"]["dataPoints"][0];
    assert_eq!(point["asInt"], "7", "int64 as string");
    assert!(is_u64_string(&point["timeUnixNano"]));
    assert!(is_u64_string(&point["startTimeUnixNano"]));
    assert_eq!(point["attributes"][0]["key"], "outcome");

    let inflight = &by_name["files.test.inflight"];
    assert_eq!(inflight["sum"]["dataPoints"][0]["asInt"], "-3");
    assert!(
        inflight["sum"].get("isMonotonic").is_none(),
        "false is omitted"
    );

    let hist = &by_name["files.test.duration"]["histogram"];
    assert_eq!(hist["aggregationTemporality"], 2);
    let point = &hist["dataPoints"][0];
    assert_eq!(point["count"], "2", "fixed64 count as string");
    assert_eq!(point["sum"], 0.302);
    let buckets = point["bucketCounts"].as_array().unwrap();
    assert!(
        buckets.iter().all(is_u64_string),
        "bucket counts as strings: {point}"
    );
    assert_eq!(
        buckets.len(),
        point["explicitBounds"].as_array().unwrap().len() + 1
    );
    assert!(
        buckets.iter().any(|b| b == "0"),
        "zero buckets stay in the array"
    );

    // `sum`, `min` and `max` have explicit presence: a set 0 is written, not omitted.
    let zero = &by_name["files.test.zero"]["histogram"]["dataPoints"][0];
    assert_eq!(zero["count"], "1");
    assert_eq!(
        (&zero["sum"], &zero["min"], &zero["max"]),
        (&0.0.into(), &0.0.into(), &0.0.into())
    );

    let level = &by_name["files.test.level"]["gauge"];
    assert_eq!(level["dataPoints"][0]["asDouble"], 1.5);
}

#[test]
fn a_real_collector_accepts_every_line() {
    let dir = temp_dir("replay");
    let (traces, metrics) = write_telemetry(&dir);
    let rotel = Rotel::start();
    let trace_lines = rotel.replay_jsonl(&traces, "/v1/traces");
    let metric_lines = rotel.replay_jsonl(&metrics, "/v1/metrics");
    assert!(trace_lines >= 1 && metric_lines >= 1);
    rotel.expect(
        "the replayed spans and metrics",
        Duration::from_secs(20),
        |spans, metrics| {
            spans.iter().any(|s| s.name == "root-op")
                && spans.iter().any(|s| s.name == "child-op")
                && [
                    "files.test.events",
                    "files.test.duration",
                    "files.test.inflight",
                    "files.test.level",
                ]
                .iter()
                .all(|n| metrics.iter().any(|m| m.name == *n))
        },
    );
    let spans = rotel.spans();
    let root = spans.iter().find(|s| s.name == "root-op").unwrap();
    let child = spans.iter().find(|s| s.name == "child-op").unwrap();
    assert_eq!(
        child.parent_span_id, root.span_id,
        "ids survive the round trip"
    );
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(root.service_name(), Some("files-test"));
    assert!(
        root.attributes
            .contains(&("count".to_owned(), "Int(42)".to_owned()))
    );
    let metrics = rotel.metrics();
    for m in &metrics {
        assert_eq!(m.service_name(), Some("files-test"));
    }
    let kind = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.data_type.as_str())
    };
    assert_eq!(kind("files.test.events"), Some("Sum"));
    assert_eq!(kind("files.test.inflight"), Some("Sum"));
    assert_eq!(kind("files.test.level"), Some("Gauge"));
    // rotel 0.0.1a15 decodes any OTLP/JSON histogram as `DataType: Empty` (also the
    // body of opentelemetry-otlp's own http/json exporter), so only its name is checked.
}

#[test]
fn no_endpoint_means_files_in_the_configured_dir() {
    let dir = temp_dir("default-dir");
    let guard = setup::builder()
        .env_lookup({
            let d = dir.clone();
            move |k| (k == "OTELCONC_TELEMETRY_DIR").then(|| d.display().to_string())
        })
        .build()
        .expect("setup");
    assert_eq!(
        guard.destination(),
        &Destination::Files {
            dir: dir.clone(),
            traces: dir.join("traces.jsonl"),
            metrics: dir.join("metrics.jsonl"),
        }
    );
    guard.shutdown().expect("shutdown");
    assert!(dir.join("traces.jsonl").exists() && dir.join("metrics.jsonl").exists());
    let text = guard.destination().to_string();
    assert!(
        text.contains("traces.jsonl") && text.contains("metrics.jsonl"),
        "{text}"
    );
}
