//! A collector that is down (connection refused, or accepting and never answering)
//! never blocks the application: spans keep being produced, the failure is reported
//! once, and shutdown returns by its deadline.
//!
//! The outer bounds below (`HANG`) only detect a hang; they are not performance claims.
#![cfg(feature = "setup")]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use otelconc::setup::{self, TelemetryGuard};
use otelconc_testkit::Rotel;

/// Hang detector for work that should finish in well under a second.
const HANG: Duration = Duration::from_secs(60);
/// Spans produced while the collector is down: ~100 times the batch queue (2048).
const SPANS: u64 = 200_000;

type Lines = Arc<Mutex<Vec<String>>>;

/// A port nothing listens on.
fn refused() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener that accepts connections and never reads or answers.
fn hanging() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in l.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

fn guard_for(protocol: &str, addr: SocketAddr) -> (TelemetryGuard, Lines) {
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "300".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_owned()),
        ("OTEL_SERVICE_NAME", "down-test".to_owned()),
    ]);
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let guard = setup::builder()
        .env_lookup(move |k| env.get(k).cloned())
        .warning_sink(move |line| sink.lock().unwrap().push(line.to_owned()))
        .build()
        .expect("setup");
    (guard, lines)
}

/// Runs `f` on a thread and panics if it has not returned within `bound`.
fn within<T: Send + 'static>(
    what: &str,
    bound: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("{what} did not return within {bound:?}: it hangs"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < HANG, "{what} never happened");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn collector_down(protocol: &str, addr: SocketAddr, reason: &str) {
    let (guard, lines) = guard_for(protocol, addr);
    let guard = Arc::new(guard);
    let tracer = guard.tracer_provider().unwrap().tracer("down");
    let counter = guard
        .meter_provider()
        .unwrap()
        .meter("down")
        .u64_counter("down.test.events")
        .build();

    // A tight loop: every span must be produced, none may wait for the collector.
    let produced = within("the span producer", HANG, move || {
        let mut n = 0_u64;
        for _ in 0..SPANS {
            tracer.in_span("while-down", |_| counter.add(1, &[]));
            n += 1;
        }
        n
    });
    assert_eq!(produced, SPANS);
    wait_until("the first export failure", || guard.export_failures() > 0);
    let stats = guard.stats();
    assert_eq!(stats.spans_ended, SPANS, "{stats:?}");
    assert!(
        stats.spans_dropped() > 0,
        "the full queue drops spans instead of blocking the producer: {stats:?}"
    );
    assert_eq!(stats.spans_exported, 0, "{stats:?}");

    // Shutdown returns by its deadline, whatever the collector does.
    let deadline = Duration::from_millis(500);
    let g = guard.clone();
    let result = within("shutdown_with_deadline", deadline * 20, move || {
        g.shutdown_with_deadline(deadline)
    });
    if let Err(e) = &result {
        assert!(
            matches!(
                e,
                setup::ShutdownError::Timeout(_) | setup::ShutdownError::Failed(_)
            ),
            "{e:?}"
        );
    }
    // Failures go on being counted (metrics every 200 ms, the flush at shutdown)...
    assert!(guard.export_failures() >= 1);
    // ...but only one line was ever printed.
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "exactly one warning: {lines:#?}");
    let expected = format!("otelconc: telemetry export to http://{addr} failing ({reason})");
    assert!(
        lines[0].starts_with(&expected),
        "{:?} should start with {expected:?}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("further failures are counted, not printed"),
        "{}",
        lines[0]
    );
}

#[test]
fn refused_http() {
    collector_down("http/protobuf", refused(), "connection refused");
}

#[test]
fn refused_grpc() {
    collector_down("grpc", refused(), "connection refused");
}

#[test]
fn hanging_http() {
    collector_down("http/json", hanging(), "timed out");
}

#[test]
fn hanging_grpc() {
    collector_down("grpc", hanging(), "timed out");
}

#[test]
fn recovery_prints_one_more_line_and_data_flows_again() {
    let (grpc_port, http_port) = otelconc_testkit::rotel::free_ports();
    let addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let (guard, lines) = guard_for("http/protobuf", addr);
    let provider = guard.tracer_provider().unwrap().clone();
    let tracer = provider.tracer("recovery");
    tracer.in_span("before-collector", |_| {});
    let _ = provider.force_flush();
    wait_until("the outage warning", || !lines.lock().unwrap().is_empty());

    let rotel = Rotel::start_on(grpc_port, http_port);
    // While down, one export per probe interval (1 s) reaches the destination; keep
    // flushing until one does.
    wait_until("the recovery line", || {
        tracer.in_span("after-recovery", |_| {});
        let _ = provider.force_flush();
        let recovered = lines.lock().unwrap().len() == 2;
        if !recovered {
            std::thread::sleep(Duration::from_millis(100));
        }
        recovered
    });
    rotel.expect(
        "the span sent after recovery",
        Duration::from_secs(20),
        |spans, _| spans.iter().any(|s| s.name == "after-recovery"),
    );
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("failing (connection refused)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!(
            "otelconc: telemetry export to http://{addr} recovered"
        )),
        "{}",
        lines[1]
    );
    guard
        .shutdown()
        .expect("clean shutdown once the collector is up");
}
