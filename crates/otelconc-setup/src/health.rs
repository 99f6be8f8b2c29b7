//! Exporter wrappers that turn export failures into one warning per outage, and count.
//!
//! The SDK reports failed exports only through its internal logs, which otelconc leaves
//! off: turned on, they print a line per failed batch, forever, while the collector is
//! down. These wrappers sit between the SDK's background threads and the real exporter:
//! the first failure prints one line, later failures only increment a counter, and the
//! first success after an outage prints one line again.
//!
//! While the destination is down, at most one export per [`PROBE_INTERVAL`] reaches it;
//! the others fail at once (counted as failures). Without this, each queued batch would
//! sit through the exporter's retries and timeout, and a flush at shutdown against a
//! refused or silent collector would use its whole deadline.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

/// While down, how often an export is let through to probe the destination.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Where warnings go (stderr unless the builder injected a sink).
pub(crate) type WarningSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Export outcome counters shared by the trace and metric exporters of one setup.
pub(crate) struct Health {
    label: String,
    pub(crate) sink: WarningSink,
    down: AtomicBool,
    /// Time base of `last_attempt_ms`.
    epoch: Instant,
    /// When an export last reached the destination, in ms since `epoch`.
    last_attempt_ms: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) spans_ended: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_failed: AtomicU64,
    pub(crate) metric_exports: AtomicU64,
    /// The cause of the last transport failure, which the OTLP/HTTP exporter reduces to
    /// "network error"; set by [`DiagnosingClient`].
    transport_error: std::sync::Mutex<Option<String>>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("label", &self.label)
            .field("down", &self.down.load(Ordering::Relaxed))
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .finish()
    }
}

impl Health {
    pub(crate) fn new(label: String, sink: WarningSink) -> Self {
        Self {
            label,
            sink,
            down: AtomicBool::new(false),
            epoch: Instant::now(),
            last_attempt_ms: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            spans_ended: AtomicU64::new(0),
            spans_exported: AtomicU64::new(0),
            spans_failed: AtomicU64::new(0),
            metric_exports: AtomicU64::new(0),
            transport_error: std::sync::Mutex::new(None),
        }
    }

    /// Whether the last export failed.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Where the exports go, as the warning lines name it.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// `true` when the export should go to the destination: it is up, or the last
    /// attempt is [`PROBE_INTERVAL`] old. Marks the attempt.
    fn should_attempt(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        if self.down.load(Ordering::Acquire) {
            let last = self.last_attempt_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) < PROBE_INTERVAL.as_millis() as u64 {
                return false;
            }
        }
        self.last_attempt_ms.store(now, Ordering::Relaxed);
        true
    }

    fn skipped(&self) -> OTelSdkResult {
        self.failures.fetch_add(1, Ordering::Relaxed);
        Err(OTelSdkError::InternalFailure(format!(
            "telemetry destination {} is down; export skipped",
            self.label
        )))
    }

    fn record(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    let failures = self.failures.load(Ordering::Relaxed);
                    (self.sink)(&format!(
                        "otelconc: telemetry export to {} recovered ({failures} failed exports so far)",
                        self.label
                    ));
                }
            }
            // Exporting after shutdown is the SDK's bookkeeping, not an outage.
            Err(OTelSdkError::AlreadyShutdown) => {}
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let transport = self.transport_error.lock().ok().and_then(|mut t| t.take());
                if !self.down.swap(true, Ordering::AcqRel) {
                    let cause = transport.unwrap_or_else(|| e.to_string());
                    (self.sink)(&format!(
                        "otelconc: telemetry export to {} failing ({}); further failures are counted, not printed",
                        self.label,
                        reason(&cause)
                    ));
                }
            }
        }
    }
}

/// A short cause for the warning line, from the exporter's (often long) error text.
fn reason(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if lower.contains("connection refused") {
        "connection refused".to_owned()
    } else if lower.contains("timed out") || lower.contains("timeout") || lower.contains("deadline")
    {
        "timed out".to_owned()
    } else {
        let mut short: String = text.chars().take(200).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        short
    }
}

/// A tokio runtime owned by the exporters, shut down without blocking when the last
/// exporter goes (dropping a `Runtime` inside async code would panic).
#[derive(Debug)]
pub(crate) struct OwnedRuntime {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl OwnedRuntime {
    pub(crate) fn new(runtime: tokio::runtime::Runtime) -> Self {
        Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        }
    }

    /// Runs `future` to completion on the runtime. Only called from the SDK's export
    /// threads, which are never inside a runtime.
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs exports on the runtime the gRPC exporter was built in, or in place.
#[derive(Debug, Clone)]
pub(crate) enum Driver {
    /// The exporter needs no runtime (HTTP with the blocking client, files).
    Inline,
    /// The exporter (tonic) needs this tokio runtime's reactor and timers.
    Tokio(Arc<OwnedRuntime>),
}

/// A [`SpanExporter`] that reports outages once and counts outcomes.
#[derive(Debug)]
pub(crate) struct WatchedSpanExporter<E> {
    pub(crate) inner: E,
    pub(crate) health: Arc<Health>,
    pub(crate) driver: Driver,
}

impl<E: SpanExporter> SpanExporter for WatchedSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        if !self.health.should_attempt() {
            self.health.spans_failed.fetch_add(n, Ordering::Relaxed);
            return self.health.skipped();
        }
        let result = match &self.driver {
            Driver::Inline => self.inner.export(batch).await,
            // Called on the SDK's batch thread, never inside a runtime: blocking is fine.
            Driver::Tokio(rt) => rt.block_on(self.inner.export(batch)),
        };
        match &result {
            Ok(()) => self.health.spans_exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.health.spans_failed.fetch_add(n, Ordering::Relaxed),
        };
        self.health.record(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A [`PushMetricExporter`] that reports outages once and counts outcomes.
#[derive(Debug)]
pub(crate) struct WatchedMetricExporter<E> {
    pub(crate) inner: E,
    pub(crate) health: Arc<Health>,
    pub(crate) driver: Driver,
}

impl<E: PushMetricExporter> PushMetricExporter for WatchedMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if !self.health.should_attempt() {
            return self.health.skipped();
        }
        let result = match &self.driver {
            Driver::Inline => self.inner.export(metrics).await,
            Driver::Tokio(rt) => rt.block_on(self.inner.export(metrics)),
        };
        if result.is_ok() {
            self.health.metric_exports.fetch_add(1, Ordering::Relaxed);
        }
        self.health.record(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Counts ended spans in front of the batch processor, so that spans the processor
/// dropped (queue full while the collector is down) can be reported.
#[derive(Debug)]
pub(crate) struct CountingProcessor<P> {
    pub(crate) inner: P,
    pub(crate) health: Arc<Health>,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.health.spans_ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The blocking reqwest client the OTLP/HTTP exporters use, remembering the cause of
/// each transport error (connection refused, timeout, DNS...) for the warning line.
#[derive(Debug)]
pub(crate) struct DiagnosingClient {
    pub(crate) inner: reqwest::blocking::Client,
    pub(crate) health: Arc<Health>,
}

impl DiagnosingClient {
    /// Builds the blocking client on its own thread: reqwest's blocking client starts a
    /// runtime and must not be built inside one (the caller may be in `#[tokio::main]`).
    pub(crate) fn build(timeout: Duration) -> Result<reqwest::blocking::Client, String> {
        std::thread::Builder::new()
            .name("otelconc-http-client".to_owned())
            .spawn(move || {
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "building the HTTP client panicked".to_owned())?
    }
}

impl opentelemetry_http::HttpClient for DiagnosingClient {
    // What `#[async_trait]` expands to; written out to avoid a proc-macro dependency.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        opentelemetry_http::Response<opentelemetry_http::Bytes>,
                        opentelemetry_http::HttpError,
                    >,
                > + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = self.inner.send_bytes(request).await;
            if let Err(e) = &result {
                let mut chain = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    source = s.source();
                }
                if let Ok(mut slot) = self.health.transport_error.lock() {
                    *slot = Some(chain);
                }
            }
            result
        })
    }
}
