//! A real OTLP collector for end-to-end tests: [`rotel`](https://pypi.org/project/rotel/)
//! (pip package `rotel==0.0.1a15`), started on free loopback ports and printing what it
//! receives.
//!
//! The binary is `$OTELCONC_ROTEL`, else `<workspace>/.venv/lib/python3*/site-packages/rotel/rotel-agent`
//! (what `scripts/install-rotel.sh` installs). A missing collector panics: an
//! end-to-end test never silently skips.
//!
//! rotel runs with `--exporter blackhole --debug-log traces --debug-log metrics
//! --debug-log-verbosity detailed`, so it prints every request it accepted in the
//! Collector's debug-exporter layout, which [`Rotel::spans`] and [`Rotel::metrics`]
//! parse:
//!
//! ```text
//! ResourceSpans #0
//! Resource attributes:
//!      -> service.name: Str(svc)
//! ScopeSpans #0
//! Span #0
//!     Trace ID       : 5b8efff798038103d269b633813fc60c
//!     Parent ID      : eee19b7ec3c1b173
//!     ID             : eee19b7ec3c1b174
//!     Name           : my-span
//! Attributes:
//!      -> n: Int(5)
//! ResourceMetrics #0
//! Resource attributes:
//!      -> service.name: Str(svc)
//! Metric #0
//! Descriptor:
//!      -> Name: my.counter
//! ```

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable naming the rotel binary explicitly.
pub const OTELCONC_ROTEL: &str = "OTELCONC_ROTEL";

/// How long [`Rotel::start`] waits for both ports to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The rotel binary: `$OTELCONC_ROTEL`, else the project's `.venv`.
///
/// # Panics
///
/// When neither exists, with a message saying to run `scripts/install-rotel.sh`.
pub fn rotel_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(OTELCONC_ROTEL) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{OTELCONC_ROTEL}={} is not a file; unset it or run scripts/install-rotel.sh",
            path.display()
        );
        return path;
    }
    let lib = workspace_root().join(".venv").join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "the rotel collector is not installed (looked for {}/python3*/site-packages/rotel/rotel-agent \
             and ${OTELCONC_ROTEL}); run scripts/install-rotel.sh, which creates .venv with the pinned \
             rotel package. End-to-end tests need a real collector and do not skip.",
            lib.display()
        ),
    }
}

/// A resource or span attribute as rotel prints it: `key` and the value with `Str(..)`
/// unwrapped (other kinds stay as printed, e.g. `Int(5)`).
pub type Attr = (String, String);

/// A span rotel printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotelSpan {
    /// The span name.
    pub name: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id, empty for a root.
    pub parent_span_id: String,
    /// The attributes of the resource the span came with.
    pub resource: Vec<Attr>,
    /// The span's own attributes.
    pub attributes: Vec<Attr>,
    /// The span kind as rotel prints it (`SPAN_KIND_INTERNAL`, ...).
    pub kind: String,
    /// The status code as rotel prints it (`STATUS_CODE_UNSET`, `STATUS_CODE_ERROR`, ...).
    pub status_code: String,
    /// The status message (description).
    pub status_message: String,
    /// The names of the span's events.
    pub events: Vec<String>,
}

impl RotelSpan {
    /// The resource's `service.name`.
    pub fn service_name(&self) -> Option<&str> {
        attr(&self.resource, "service.name")
    }
}

/// A metric rotel printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotelMetric {
    /// The metric name.
    pub name: String,
    /// The unit.
    pub unit: String,
    /// The data type as printed (`Sum`, `Gauge`, `Histogram`, ...).
    pub data_type: String,
    /// The attributes of the resource the metric came with.
    pub resource: Vec<Attr>,
    /// The attributes of each data point, in the order printed.
    pub points: Vec<Vec<Attr>>,
}

impl RotelMetric {
    /// The resource's `service.name`.
    pub fn service_name(&self) -> Option<&str> {
        attr(&self.resource, "service.name")
    }
}

/// Looks `key` up in a list of printed attributes.
pub fn attr<'a>(attrs: &'a [Attr], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A running rotel, killed on drop.
pub struct Rotel {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Rotel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotel")
            .field("pid", &self.child.id())
            .field("grpc", &self.grpc)
            .field("http", &self.http)
            .finish()
    }
}

/// Two distinct free loopback ports (bound, read, closed).
pub fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let ports = (
        a.local_addr().expect("local addr").port(),
        b.local_addr().expect("local addr").port(),
    );
    drop((a, b));
    ports
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

impl Rotel {
    /// Starts rotel on free loopback ports and waits until both receivers accept
    /// connections. Retries with new ports if another process took one meanwhile.
    ///
    /// # Panics
    ///
    /// When rotel is not installed, or does not come up (with its captured output).
    pub fn start() -> Rotel {
        let binary = rotel_binary();
        let mut last_output = String::new();
        for _attempt in 0..5 {
            match Self::try_start(&binary, free_ports()) {
                Ok(rotel) => return rotel,
                Err(output) => last_output = output,
            }
        }
        panic!(
            "rotel ({}) did not start after 5 attempts; last output:\n{last_output}",
            binary.display()
        );
    }

    /// Starts rotel on the given loopback ports (e.g. ports an exporter already
    /// failed to reach, to test recovery).
    ///
    /// # Panics
    ///
    /// When rotel is not installed or does not come up on those ports.
    pub fn start_on(grpc_port: u16, http_port: u16) -> Rotel {
        let binary = rotel_binary();
        Self::try_start(&binary, (grpc_port, http_port))
            .unwrap_or_else(|output| panic!("rotel did not start: {output}"))
    }

    fn try_start(binary: &Path, (grpc_port, http_port): (u16, u16)) -> Result<Rotel, String> {
        let grpc: SocketAddr = ([127, 0, 0, 1], grpc_port).into();
        let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
        let mut child = Command::new(binary)
            .args([
                "start",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
                "--otlp-grpc-endpoint",
                &grpc.to_string(),
                "--otlp-http-endpoint",
                &http.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture(err, output.clone()));
        }
        let mut rotel = Rotel {
            child,
            grpc,
            http,
            output,
            readers,
        };
        let start = Instant::now();
        loop {
            let exited = matches!(rotel.child.try_wait(), Ok(Some(_)));
            // Both ports answer and rotel still runs: it (not some other process that
            // took a port meanwhile) is listening, since it exits when it cannot bind.
            if !exited && accepts(grpc) && accepts(http) {
                std::thread::sleep(Duration::from_millis(50));
                if matches!(rotel.child.try_wait(), Ok(None)) {
                    return Ok(rotel);
                }
                continue;
            }
            if exited || start.elapsed() > START_TIMEOUT {
                let why = if exited {
                    "exited"
                } else {
                    "did not open its ports"
                };
                rotel.stop();
                return Err(format!(
                    "rotel {why} (grpc {grpc}, http {http}):\n{}",
                    rotel.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The OTLP/HTTP base endpoint, `http://127.0.0.1:PORT` (signals at `/v1/traces`,
    /// `/v1/metrics`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The endpoint for `OTEL_EXPORTER_OTLP_PROTOCOL` value `protocol`.
    pub fn endpoint_for(&self, protocol: &str) -> String {
        if protocol == "grpc" {
            self.grpc_endpoint()
        } else {
            self.http_endpoint()
        }
    }

    /// The OTLP/HTTP receiver's socket address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Everything rotel printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Polls the output until `predicate` holds; `false` after `timeout`.
    pub fn wait_for_output(&self, predicate: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if predicate(&self.output()) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until rotel printed spans and metrics satisfying `predicate`.
    ///
    /// # Panics
    ///
    /// After `timeout`, with `what` and the captured output.
    pub fn expect(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&[RotelSpan], &[RotelMetric]) -> bool,
    ) {
        let ok = self.wait_for_output(
            |out| predicate(&parse_spans(out), &parse_metrics(out)),
            timeout,
        );
        assert!(
            ok,
            "rotel did not print {what} within {timeout:?}; output:\n{}",
            self.output()
        );
    }

    /// The spans printed so far.
    pub fn spans(&self) -> Vec<RotelSpan> {
        parse_spans(&self.output())
    }

    /// The metrics printed so far.
    pub fn metrics(&self) -> Vec<RotelMetric> {
        parse_metrics(&self.output())
    }

    /// The names of the metrics printed so far, sorted, without duplicates.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.metrics().into_iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        names
    }

    /// `POST`s `body` to the OTLP/HTTP receiver at `path` with
    /// `Content-Type: application/json`; returns the status code and body.
    ///
    /// # Panics
    ///
    /// On a connection or protocol error.
    pub fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        post_json(self.http, path, body)
    }

    /// Posts every line of the JSON-lines file `file` to `path` (`/v1/traces` or
    /// `/v1/metrics`), as the Collector's OTLP/HTTP receiver takes them; returns the
    /// number of lines.
    ///
    /// # Panics
    ///
    /// When the file cannot be read, is empty, or rotel answers a line with anything but
    /// 200.
    pub fn replay_jsonl(&self, file: &Path, path: &str) -> usize {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (status, body) = self.post_json(path, line);
            assert_eq!(
                status,
                200,
                "rotel rejected line {} of {} (POST {path}): {body}\nline: {line}\nrotel output:\n{}",
                i + 1,
                file.display(),
                self.output()
            );
            n += 1;
        }
        assert!(n > 0, "{} has no lines to replay", file.display());
        n
    }

    /// Replays `<dir>/traces.jsonl` into `/v1/traces` and `<dir>/metrics.jsonl` into
    /// `/v1/metrics` (see [`Rotel::replay_jsonl`]); returns the line counts.
    ///
    /// # Panics
    ///
    /// As [`Rotel::replay_jsonl`], for either file.
    pub fn replay_telemetry_dir(&self, dir: &Path) -> (usize, usize) {
        (
            self.replay_jsonl(&dir.join("traces.jsonl"), "/v1/traces"),
            self.replay_jsonl(&dir.join("metrics.jsonl"), "/v1/metrics"),
        )
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        self.stop();
    }
}

fn capture(stream: impl Read + Send + 'static, output: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Ok(mut out) = output.lock() {
                        out.push_str(&strip_ansi(&line));
                    }
                }
            }
        }
    })
}

/// Removes terminal color escapes (`ESC [ ... m`) from rotel's log lines.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A minimal HTTP/1.1 JSON `POST` (no client crate needed for one request shape).
///
/// # Panics
///
/// On a connection or protocol error.
pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set read timeout");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .unwrap_or_else(|e| panic!("sending to {addr}{path}: {e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("reading the answer of {addr}{path}: {e}"));
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in answer of {addr}{path}: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `     -> key: Str(value)` as `(key, value)`.
fn parse_attr(line: &str) -> Option<Attr> {
    let rest = line.trim_start().strip_prefix("-> ")?;
    let (k, v) = rest.split_once(": ")?;
    let v = v.trim_end();
    let v = v
        .strip_prefix("Str(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(v);
    Some((k.to_owned(), v.to_owned()))
}

/// `    Field name     : value` as `(name, value)`.
fn parse_field(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(" : ")?;
    Some((k.trim(), v.trim()))
}

#[derive(PartialEq)]
enum Section {
    Other,
    Resource,
    DataPoint,
    SpanAttributes,
    SpanEvent,
}

/// Parses the spans out of rotel's output.
pub fn parse_spans(output: &str) -> Vec<RotelSpan> {
    let mut spans: Vec<RotelSpan> = Vec::new();
    let mut resource: Vec<Attr> = Vec::new();
    let mut section = Section::Other;
    let mut in_span = false;
    for line in output.lines() {
        if line.starts_with("ResourceSpans #") {
            resource.clear();
            in_span = false;
            section = Section::Other;
        } else if line.starts_with("ResourceMetrics #") {
            in_span = false;
            section = Section::Other;
        } else if line.starts_with("Resource attributes:") {
            section = Section::Resource;
        } else if line.starts_with("Span #") {
            spans.push(RotelSpan {
                resource: resource.clone(),
                ..RotelSpan::default()
            });
            in_span = true;
            section = Section::Other;
        } else if line.starts_with("Attributes:") && in_span {
            section = Section::SpanAttributes;
        } else if line.starts_with("SpanEvent #") && in_span {
            section = Section::SpanEvent;
        } else if let Some(a) = parse_attr(line) {
            match section {
                Section::Resource => resource.push(a),
                Section::SpanAttributes => {
                    if let Some(s) = spans.last_mut() {
                        s.attributes.push(a);
                    }
                }
                Section::SpanEvent => {
                    if a.0 == "Name"
                        && let Some(s) = spans.last_mut()
                    {
                        s.events.push(a.1);
                    }
                }
                Section::Other | Section::DataPoint => {}
            }
        } else {
            if !line.starts_with("     ->") {
                section = Section::Other;
            }
            if in_span && let (Some((k, v)), Some(s)) = (parse_field(line), spans.last_mut()) {
                match k {
                    "Trace ID" => s.trace_id = v.to_owned(),
                    "Parent ID" => s.parent_span_id = v.to_owned(),
                    "ID" => s.span_id = v.to_owned(),
                    "Name" => s.name = v.to_owned(),
                    "Kind" => s.kind = v.to_owned(),
                    "Status code" => s.status_code = v.to_owned(),
                    "Status message" => s.status_message = v.to_owned(),
                    _ => {}
                }
            }
        }
    }
    spans
}

/// Parses the metrics out of rotel's output.
pub fn parse_metrics(output: &str) -> Vec<RotelMetric> {
    let mut metrics: Vec<RotelMetric> = Vec::new();
    let mut resource: Vec<Attr> = Vec::new();
    let mut in_resource_metrics = false;
    let mut section = Section::Other;
    let mut in_descriptor = false;
    for line in output.lines() {
        if line.starts_with("ResourceMetrics #") {
            resource.clear();
            in_resource_metrics = true;
            in_descriptor = false;
            section = Section::Other;
        } else if line.starts_with("ResourceSpans #") {
            in_resource_metrics = false;
            in_descriptor = false;
        } else if !in_resource_metrics {
            continue;
        } else if line.starts_with("Resource attributes:") {
            section = Section::Resource;
        } else if line.starts_with("Metric #") {
            metrics.push(RotelMetric {
                resource: resource.clone(),
                ..RotelMetric::default()
            });
            section = Section::Other;
        } else if line.starts_with("Descriptor:") {
            in_descriptor = true;
        } else if line.contains("DataPoints #") {
            if let Some(m) = metrics.last_mut() {
                m.points.push(Vec::new());
            }
            section = Section::DataPoint;
            in_descriptor = false;
        } else if line.starts_with("Data point attributes:") {
            // The point's attributes follow.
        } else if let Some((k, v)) = parse_attr(line) {
            if section == Section::Resource {
                resource.push((k, v));
            } else if section == Section::DataPoint {
                if let Some(p) = metrics.last_mut().and_then(|m| m.points.last_mut()) {
                    p.push((k, v));
                }
            } else if in_descriptor && let Some(m) = metrics.last_mut() {
                match k.as_str() {
                    "Name" => m.name = v,
                    "Unit" => m.unit = v,
                    "DataType" => m.data_type = v,
                    _ => {}
                }
            }
        } else {
            section = Section::Other;
            in_descriptor = false;
        }
    }
    metrics
}

/// Every environment variable the `otelconc` program reads for its telemetry: a test
/// that runs the program removes them all first, so the caller's environment cannot
/// leak in.
pub const PROGRAM_ENV: &[&str] = &[
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
\u{1b}[2m2026-11-26T12:16:34Z\u{1b}[0m INFO Starting Rotel.
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc-x)
     -> deployment.environment: Str(test)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope sc 
Span #0
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Parent ID      : eee19b7ec3c1b173
    ID             : eee19b7ec3c1b174
    Name           : my-span
    Kind           : SPAN_KIND_SERVER
Start time: 1544712660000000000
End time: 1544712661000000000
    Status code    : STATUS_CODE_UNSET
    Status message : 
Attributes:
     -> n: Int(5)
SpanEvent #0
     -> Name: exception
     -> Timestamp: 1544712660500000000
     -> Attributes:
          -> exception.message: Str(boom)
ResourceMetrics #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc-y)
ScopeMetrics #0
ScopeMetrics SchemaURL: 
InstrumentationScope sc 
Metric #0
Descriptor:
     -> Name: my.counter
     -> Description: 
     -> Unit: 1
     -> DataType: Sum
     -> IsMonotonic: true
NumberDataPoints #0
Data point attributes:
     -> otelconc.name: Str(orders)
     -> otelconc.outcome: Str(ok)
StartTimestamp: 1544712660000000000
Value: 3
NumberDataPoints #1
StartTimestamp: 1544712660000000000
Value: 4
";

    #[test]
    fn parses_spans_and_metrics() {
        let out = strip_ansi(SAMPLE);
        let spans = parse_spans(&out);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "my-span");
        assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.span_id, "eee19b7ec3c1b174");
        assert_eq!(s.parent_span_id, "eee19b7ec3c1b173");
        assert_eq!(s.service_name(), Some("svc-x"));
        assert_eq!(attr(&s.resource, "deployment.environment"), Some("test"));
        assert_eq!(s.attributes, vec![("n".to_owned(), "Int(5)".to_owned())]);
        assert_eq!(s.kind, "SPAN_KIND_SERVER");
        assert_eq!(s.status_code, "STATUS_CODE_UNSET");
        assert_eq!(s.events, vec!["exception".to_owned()]);
        let metrics = parse_metrics(&out);
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].name, "my.counter");
        assert_eq!(metrics[0].unit, "1");
        assert_eq!(metrics[0].data_type, "Sum");
        assert_eq!(metrics[0].service_name(), Some("svc-y"));
        assert_eq!(
            metrics[0].points,
            vec![
                vec![
                    ("otelconc.name".to_owned(), "orders".to_owned()),
                    ("otelconc.outcome".to_owned(), "ok".to_owned())
                ],
                vec![]
            ]
        );
    }
}
