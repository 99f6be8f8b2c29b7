//! A collector that is down (connection refused, or accepting and never answering)
//! never blocks the application: spans keep being produced, the failure is reported
//! once, and shutdown returns by its deadline.
//!
//! The outer bounds below (`HANG`) only detect a hang; they are not performance claims.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use otelconc_setup::{self as setup, TelemetryGuard};
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

fn guard_for(protocol: &str, addr: SocketAddr, timeout_ms: u64) -> (TelemetryGuard, Lines) {
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", timeout_ms.to_string()),
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

/// Produces `n` spans (each with a counter add) in a tight loop on another thread.
fn produce(guard: &TelemetryGuard, n: u64) -> u64 {
    let tracer = guard.tracer_provider().unwrap().tracer("down");
    let counter = guard
        .meter_provider()
        .unwrap()
        .meter("down")
        .u64_counter("down.test.events")
        .build();
    within("the span producer", HANG, move || {
        let mut produced = 0_u64;
        for _ in 0..n {
            tracer.in_span("while-down", |_| counter.add(1, &[]));
            produced += 1;
        }
        produced
    })
}

/// A collector that accepts and never answers, with an export timeout far longer than
/// the test: the first export is stuck for the whole test. Every span is still
/// produced (the full batch queue drops instead of waiting), and shutdown returns by
/// its deadline with `Timeout`.
fn producer_never_waits_for_a_stuck_export(protocol: &str) {
    let (guard, lines) = guard_for(protocol, hanging(), 10 * HANG.as_millis() as u64);
    let guard = Arc::new(guard);
    assert_eq!(produce(&guard, SPANS), SPANS);
    let stats = guard.stats();
    assert_eq!(
        stats.failed_exports, 0,
        "the first export is still stuck, so every span was produced meanwhile: {stats:?}"
    );
    assert_eq!(stats.spans_ended, SPANS);
    assert_eq!(stats.spans_exported, 0);
    assert!(lines.lock().unwrap().is_empty(), "nothing failed yet");

    let deadline = Duration::from_millis(500);
    let g = guard.clone();
    let result = within("shutdown_with_deadline", deadline * 20, move || {
        g.shutdown_with_deadline(deadline)
    });
    assert_eq!(result, Err(setup::ShutdownError::Timeout(deadline)));
    // A second call is a no-op even while the first flush is still stuck.
    assert_eq!(guard.shutdown(), Ok(()));
}

#[test]
fn stuck_http_export_never_blocks_the_producer() {
    producer_never_waits_for_a_stuck_export("http/protobuf");
}

#[test]
fn stuck_grpc_export_never_blocks_the_producer() {
    producer_never_waits_for_a_stuck_export("grpc");
}

/// A down collector with a short export timeout: many exports fail, one line is
/// printed, naming the destination and the cause; shutdown returns by its deadline.
fn one_warning_per_outage(protocol: &str, addr: SocketAddr, reason: &str) {
    let (guard, lines) = guard_for(protocol, addr, 300);
    let guard = Arc::new(guard);
    assert_eq!(produce(&guard, SPANS), SPANS);
    // Spans and metrics (every 200 ms) keep failing; wait for several failures.
    wait_until("three failed exports", || guard.export_failures() >= 3);
    let stats = guard.stats();
    assert_eq!(stats.spans_ended, SPANS, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");

    let deadline = Duration::from_millis(500);
    let g = guard.clone();
    let result = within("shutdown_with_deadline", deadline * 20, move || {
        g.shutdown_with_deadline(deadline)
    });
    assert!(
        result.is_err(),
        "the final flush cannot succeed: {result:?}"
    );

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
    one_warning_per_outage("http/protobuf", refused(), "connection refused");
}

#[test]
fn refused_grpc() {
    one_warning_per_outage("grpc", refused(), "connection refused");
}

#[test]
fn hanging_http() {
    one_warning_per_outage("http/json", hanging(), "timed out");
}

#[test]
fn hanging_grpc() {
    one_warning_per_outage("grpc", hanging(), "timed out");
}

#[test]
fn recovery_prints_one_more_line_and_data_flows_again() {
    let (grpc_port, http_port) = otelconc_testkit::rotel::free_ports();
    let addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let (guard, lines) = guard_for("http/protobuf", addr, 300);
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
