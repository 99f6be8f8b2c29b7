//! The handle that keeps telemetry running and flushes it at the end.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::config::Protocol;
use super::error::ShutdownError;
use super::health::Health;

/// How long [`TelemetryGuard::shutdown`] (and dropping the guard) waits at most.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Where the installed providers send telemetry, to tell the user.
///
/// # Examples
///
/// ```
/// use otelconc_setup::Destination;
/// assert_eq!(Destination::Disabled.to_string(), "nowhere (OTEL_SDK_DISABLED=true)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// OTLP to a collector.
    Otlp {
        /// The URL traces go to.
        traces_endpoint: String,
        /// The URL metrics go to.
        metrics_endpoint: String,
        /// The transport.
        protocol: Protocol,
    },
    /// Local OTLP/JSON files, one export request per line.
    Files {
        /// The directory holding both files.
        dir: PathBuf,
        /// `<dir>/traces.jsonl`.
        traces: PathBuf,
        /// `<dir>/metrics.jsonl`.
        metrics: PathBuf,
    },
    /// Nothing is exported (`OTEL_SDK_DISABLED=true`).
    Disabled,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Otlp {
                traces_endpoint,
                metrics_endpoint,
                protocol,
            } => write!(
                f,
                "OTLP ({protocol}): traces to {traces_endpoint}, metrics to {metrics_endpoint}"
            ),
            Destination::Files {
                traces, metrics, ..
            } => write!(
                f,
                "OTLP/JSON files {} and {}",
                traces.display(),
                metrics.display()
            ),
            Destination::Disabled => f.write_str("nowhere (OTEL_SDK_DISABLED=true)"),
        }
    }
}

/// What the exporters did so far.
///
/// # Examples
///
/// ```
/// let stats = otelconc_setup::ExportStats::default();
/// assert_eq!(stats.spans_dropped(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Export calls (traces or metrics) that failed.
    pub failed_exports: u64,
    /// Sampled spans that ended and were handed to the batch processor.
    pub spans_ended: u64,
    /// Spans the destination accepted.
    pub spans_exported: u64,
    /// Spans in batches whose export failed.
    pub spans_failed: u64,
    /// Metric exports the destination accepted.
    pub metric_exports: u64,
}

impl ExportStats {
    /// Spans that ended but were neither exported nor failed: dropped by the batch
    /// processor because its queue was full, or still queued.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = otelconc_setup::ExportStats::default();
    /// assert_eq!(stats.spans_dropped(), 0);
    /// ```
    pub fn spans_dropped(&self) -> u64 {
        self.spans_ended
            .saturating_sub(self.spans_exported)
            .saturating_sub(self.spans_failed)
    }
}

/// Keeps the installed providers; flushes and shuts them down on
/// [`shutdown`](TelemetryGuard::shutdown) or drop.
///
/// Shutting down is idempotent (later calls return `Ok(())` at once) and safe from
/// several threads. It blocks the calling thread for at most the deadline, however
/// long the collector takes: from async code, call it from `spawn_blocking` or accept
/// that one worker thread waits.
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    /// Set by the first shutdown: later ones return at once.
    pub(crate) shut_down: AtomicBool,
    pub(crate) tracer_provider: Option<SdkTracerProvider>,
    pub(crate) meter_provider: Option<SdkMeterProvider>,
    pub(crate) destination: Destination,
    pub(crate) health: Arc<Health>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("destination", &self.destination)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Where telemetry goes.
    ///
    /// # Examples
    ///
    /// ```
    /// use otelconc_setup::Destination;
    /// let dir = std::env::temp_dir().join("otelconc-doc-destination");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// assert!(matches!(guard.destination(), Destination::Files { .. }));
    /// println!("telemetry: {}", guard.destination());
    /// ```
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The number of failed export calls (traces and metrics) so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("otelconc-doc-failures");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// assert_eq!(guard.export_failures(), 0);
    /// ```
    pub fn export_failures(&self) -> u64 {
        self.health.failures.load(Ordering::Relaxed)
    }

    /// Counters of what the exporters did so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("otelconc-doc-stats");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// assert_eq!(guard.stats().spans_exported, 0);
    /// ```
    pub fn stats(&self) -> ExportStats {
        let h = &self.health;
        ExportStats {
            failed_exports: h.failures.load(Ordering::Relaxed),
            spans_ended: h.spans_ended.load(Ordering::Relaxed),
            spans_exported: h.spans_exported.load(Ordering::Relaxed),
            spans_failed: h.spans_failed.load(Ordering::Relaxed),
            metric_exports: h.metric_exports.load(Ordering::Relaxed),
        }
    }

    /// The tracer provider (`None` when disabled), for a `Telemetry` handle or a
    /// tracing layer without going through the global.
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider;
    /// let dir = std::env::temp_dir().join("otelconc-doc-tp");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// let _tracer = guard.tracer_provider().unwrap().tracer("my-app");
    /// ```
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// The meter provider (`None` when disabled).
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// let dir = std::env::temp_dir().join("otelconc-doc-mp");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// let _meter = guard.meter_provider().unwrap().meter("my-app");
    /// ```
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter_provider.as_ref()
    }

    /// Flushes traces, then metrics, and shuts both providers down, waiting at most
    /// [`DEFAULT_SHUTDOWN_DEADLINE`].
    ///
    /// # Errors
    ///
    /// See [`shutdown_with_deadline`](TelemetryGuard::shutdown_with_deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("otelconc-doc-shutdown");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// guard.shutdown().unwrap();
    /// guard.shutdown().unwrap(); // a no-op
    /// ```
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        self.shutdown_with_deadline(DEFAULT_SHUTDOWN_DEADLINE)
    }

    /// Flushes traces, then metrics, and shuts both providers down, returning by
    /// `deadline` whatever the collector does.
    ///
    /// The first call does the work; later (or concurrent) calls return `Ok(())` at
    /// once. When the deadline passes, the flush goes on in the background until the
    /// exporter's own timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`) ends it.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::Timeout`] when the flush did not finish by the deadline;
    /// [`ShutdownError::Failed`] when an exporter reported an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let dir = std::env::temp_dir().join("otelconc-doc-deadline");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// guard.shutdown_with_deadline(Duration::from_secs(1)).unwrap();
    /// ```
    pub fn shutdown_with_deadline(&self, deadline: Duration) -> Result<(), ShutdownError> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Provider handles are shared: these clones shut down what the guard holds.
        let (Some(tracer), Some(meter)) =
            (self.tracer_provider.clone(), self.meter_provider.clone())
        else {
            return Ok(()); // disabled: nothing was installed
        };
        let start = Instant::now();
        let (tx, rx) = mpsc::channel();
        let work = move || {
            let traces = tracer.shutdown_with_timeout(deadline);
            let left = deadline.saturating_sub(start.elapsed());
            // The SDK's meter provider ignores its timeout argument (it waits up to 5 s
            // per reader): that is why all of this runs on its own thread.
            let metrics = meter.shutdown_with_timeout(left);
            let _ = tx.send((traces, metrics));
        };
        if let Err(e) = std::thread::Builder::new()
            .name("otelconc-telemetry-shutdown".to_owned())
            .spawn(work)
        {
            return Err(ShutdownError::Failed(format!(
                "could not start the shutdown thread: {e}"
            )));
        }
        match rx.recv_timeout(deadline) {
            Ok((traces, metrics)) => match merge(traces, deadline).and(merge(metrics, deadline)) {
                // The SDK's text ("Failed to shutdown") does not say why; the exports do.
                Err(ShutdownError::Failed(_)) if self.health.is_down() => {
                    Err(ShutdownError::Failed(format!(
                        "the final flush to {} failed ({} failed exports in all); unexported data is lost",
                        self.health.label(),
                        self.export_failures()
                    )))
                }
                other => other,
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ShutdownError::Timeout(deadline)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ShutdownError::Failed(
                "the shutdown thread panicked".to_owned(),
            )),
        }
    }
}

fn merge(result: OTelSdkResult, deadline: Duration) -> Result<(), ShutdownError> {
    match result {
        Ok(()) | Err(OTelSdkError::AlreadyShutdown) => Ok(()),
        Err(OTelSdkError::Timeout(_)) => Err(ShutdownError::Timeout(deadline)),
        Err(OTelSdkError::InternalFailure(m)) => Err(ShutdownError::Failed(m)),
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            (self.health.sink)(&format!("otelconc: {e}"));
        }
    }
}
