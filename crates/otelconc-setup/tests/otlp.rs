//! OTLP export with each protocol to a real collector (rotel), configured through the
//! standard variables, asserted from what the collector printed.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use otelconc_setup::{self as setup, Destination, Protocol};
use otelconc_testkit::Rotel;
use otelconc_testkit::rotel::attr;

const WAIT: Duration = Duration::from_secs(20);

fn export_to_rotel(protocol: &str) {
    let rotel = Rotel::start();
    let service = format!("otlp-{}", protocol.replace('/', "-"));
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint_for(protocol)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_SERVICE_NAME", service.clone()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=e2e,otelconc.test=yes%2C%20really".to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-test-header=1".to_owned()),
    ]);
    let guard = setup::builder()
        .env_lookup(move |k| env.get(k).cloned())
        .build()
        .expect("setup");
    let Destination::Otlp {
        protocol: got_protocol,
        ..
    } = guard.destination().clone()
    else {
        panic!("expected OTLP, got {}", guard.destination());
    };
    assert_eq!(got_protocol.as_str(), protocol);

    let tracer = guard.tracer_provider().expect("tracer").tracer("otlp-test");
    let root = tracer.start("otlp-root");
    let cx = Context::current_with_span(root);
    tracer.start_with_context("otlp-child", &cx).end();
    let root_ids = cx.span().span_context().clone();
    cx.span().end();
    let meter = guard.meter_provider().expect("meter").meter("otlp-test");
    meter
        .u64_counter("otlp.test.events")
        .build()
        .add(3, &[KeyValue::new("outcome", "ok")]);
    meter
        .f64_histogram("otlp.test.duration")
        .with_unit("s")
        .build()
        .record(0.01, &[]);
    guard
        .shutdown_with_deadline(Duration::from_secs(10))
        .expect("shutdown flushes to a live collector");
    assert_eq!(guard.export_failures(), 0, "{:?}", guard.stats());

    rotel.expect("both spans and both metrics", WAIT, |spans, metrics| {
        spans.iter().any(|s| s.name == "otlp-child")
            && spans.iter().any(|s| s.name == "otlp-root")
            && metrics.iter().any(|m| m.name == "otlp.test.events")
            && metrics.iter().any(|m| m.name == "otlp.test.duration")
    });
    let spans = rotel.spans();
    let root = spans.iter().find(|s| s.name == "otlp-root").expect("root");
    let child = spans
        .iter()
        .find(|s| s.name == "otlp-child")
        .expect("child");
    assert_eq!(root.trace_id, root_ids.trace_id().to_string());
    assert_eq!(root.span_id, root_ids.span_id().to_string());
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.parent_span_id, root.span_id);
    for s in [root, child] {
        assert_eq!(s.service_name(), Some(service.as_str()));
        assert_eq!(
            attr(&s.resource, "deployment.environment.name"),
            Some("e2e")
        );
        assert_eq!(attr(&s.resource, "otelconc.test"), Some("yes, really"));
    }
    let metrics = rotel.metrics();
    let kind = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.data_type.clone())
    };
    assert_eq!(kind("otlp.test.events").as_deref(), Some("Sum"));
    // rotel 0.0.1a15 decodes histograms from OTLP/JSON as an empty metric (it prints
    // `DataType: Empty` even for a hand-written, spec-conformant body), so the kind is
    // only checked for the protobuf transports.
    if protocol != "http/json" {
        assert_eq!(kind("otlp.test.duration").as_deref(), Some("Histogram"));
    }
    for m in metrics {
        assert_eq!(m.service_name(), Some(service.as_str()), "{m:?}");
        assert_eq!(
            attr(&m.resource, "deployment.environment.name"),
            Some("e2e")
        );
    }
}

#[test]
fn exports_over_grpc() {
    export_to_rotel(Protocol::Grpc.as_str());
}

#[test]
fn exports_over_http_protobuf() {
    export_to_rotel(Protocol::HttpProtobuf.as_str());
}

#[test]
fn exports_over_http_json() {
    export_to_rotel(Protocol::HttpJson.as_str());
}

/// Installing from inside a tokio runtime (`#[tokio::main]`) works for every protocol,
/// and dropping the guard there neither panics nor loses the flush: the gRPC exporter
/// runs on the setup's own runtime, the HTTP client is built off the runtime.
async fn from_inside_a_runtime(protocol: &str) {
    let rotel = Rotel::start();
    let endpoint = rotel.endpoint_for(protocol);
    let protocol_owned = protocol.to_owned();
    let guard = setup::builder()
        .env_lookup(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol_owned.clone()),
            _ => None,
        })
        .service_name("in-runtime")
        .build()
        .expect("setup inside a runtime");
    let tracer = guard.tracer_provider().unwrap().tracer("in-runtime");
    tokio::task::yield_now().await;
    tracer.in_span("inside-runtime", |_| {});
    drop(guard);
    rotel.expect("the span flushed by drop", WAIT, |spans, _| {
        spans
            .iter()
            .any(|s| s.name == "inside-runtime" && s.service_name() == Some("in-runtime"))
    });
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_from_inside_a_runtime() {
    from_inside_a_runtime("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_from_inside_a_runtime() {
    from_inside_a_runtime("http/protobuf").await;
}
