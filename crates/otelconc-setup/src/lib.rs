//! Install OpenTelemetry SDK tracer and meter providers from the standard `OTEL_*`
//! environment: OTLP export, or local OTLP/JSON files when no endpoint is set.
//!
//! This crate is for programs: a library (otelconc included) depends on the
//! `opentelemetry` API crate only and leaves the SDK to the program, which is what this
//! crate brings, with the OTLP exporters, the file exporter and their HTTP and gRPC
//! clients. Use it in a program that wants otelconc's telemetry, and its own, exported:
//! one call, [`init`], or [`builder`] when code sets some values. It returns a
//! [`TelemetryGuard`]; keep it alive for the life of the program and call
//! [`TelemetryGuard::shutdown`] (or drop it) at the end to flush.
//!
//! ```
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // From the environment alone, this is `otelconc_setup::init()?`. This example
//!     // ignores the environment and writes local OTLP/JSON files into `dir`.
//!     let dir = std::env::temp_dir().join("otelconc-setup-doc-crate");
//!     let telemetry = otelconc_setup::builder()
//!         .env_lookup(|_| None)
//!         .files_dir(&dir)
//!         .default_service_name("my-service")
//!         .install()?;
//!     eprintln!("telemetry: {}", telemetry.destination());
//!
//!     // ... the program: otelconc primitives built from now on export through it ...
//!     let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//!     rt.block_on(async {
//!         let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 8);
//!         tx.send(1).await.unwrap();
//!         assert_eq!(rx.recv().await.unwrap(), 1);
//!     });
//!
//!     telemetry.shutdown()?;
//!     assert!(dir.join("metrics.jsonl").exists());
//!     Ok(())
//! }
//! ```
//!
//! # Bound instruments
//!
//! This crate turns on `opentelemetry_sdk`'s `experimental_metrics_bound_instruments`
//! feature, which Cargo then turns on for every use of the SDK in the build, and
//! [`SetupBuilder::install`] tells otelconc
//! ([`Telemetry::bind_global_instruments`](otelconc::telemetry::Telemetry::bind_global_instruments))
//! that the global meter provider it installs records through bound instruments: otelconc's
//! counters and histograms then skip the SDK's attribute lookup, with nothing for the
//! program to do. With [`SetupBuilder::build`] (no globals), the guard's
//! [`meter_provider`](TelemetryGuard::meter_provider) qualifies for
//! [`Telemetry::with_bound_instruments`](otelconc::telemetry::Telemetry::with_bound_instruments)
//! just as well. The rule for a program that installs its own SDK instead is in otelconc's
//! crate docs: without the SDK feature a binding silently drops what it records, so
//! otelconc binds only when told to.
//!
//! # Configuration
//!
//! Values set on the builder override the environment; the environment overrides the
//! defaults. An empty variable counts as unset; the names in `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_TRACES_SAMPLER` and `OTEL_SDK_DISABLED` are read case-insensitively, as the
//! specification asks of enum values. An invalid value is a
//! [`SetupError::InvalidValue`] naming the variable, the value and what is accepted.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; HTTP appends `/v1/traces`, `/v1/metrics` | none: local files |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT` | per-signal URL, used as is | the base URL; with only the other signal's set, the protocol's local default (`http://localhost:4318`, gRPC `:4317`) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc`, `http/protobuf`, `http/json` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | `key=value,...`, percent-encoded | none |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | export timeout, ms | 10000 |
//! | `OTEL_SERVICE_NAME` | `service.name` | the program's default, else `unknown_service:<exe>` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...`, percent-encoded | none |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | see [`Sampler`] | `parentbased_always_on` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | ms between metric exports | 60000 |
//! | `OTEL_SDK_DISABLED` | `true`: install nothing | `false` |
//! | `OTELCONC_TELEMETRY_DIR` | directory of the local files | `./otelconc-telemetry` |
//!
//! Not handled here, but read from the process environment by the SDK and exporter
//! crates themselves: the batch processor's `OTEL_BSP_*`, the per-signal
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_{HEADERS,COMPRESSION}` and
//! `OTEL_EXPORTER_OTLP_COMPRESSION`. The exporters also read
//! `OTEL_EXPORTER_OTLP_HEADERS` (when the signal's own variable is unset) from the
//! process environment themselves, after the headers configured here (a key set in both
//! takes the process environment's value), even when [`SetupBuilder::env_lookup`]
//! supplies the configuration. The per-signal `_PROTOCOL` and `_TIMEOUT` forms are not
//! supported: the generic ones apply to both signals.
//!
//! # Where telemetry goes
//!
//! With an endpoint, OTLP over the configured protocol. Without one, the embedded
//! default: `traces.jsonl` and `metrics.jsonl`, one OTLP/JSON export request per line,
//! exactly as the OpenTelemetry Collector's file exporter writes them, so any OTLP/HTTP
//! receiver ingests them later (`POST` each line with `Content-Type: application/json`).
//! [`TelemetryGuard::destination`] says which, to print it.
//!
//! # When the collector is down
//!
//! Spans are queued to the SDK's batch processor (2048 spans by default) and exported
//! by its own thread; when the queue is full new spans are dropped, so the application
//! never waits for the collector. Metrics are collected and exported by the periodic
//! reader's thread. The first failed export prints one warning (to stderr, or the
//! builder's [`warning_sink`](SetupBuilder::warning_sink)); later failures are only
//! counted ([`TelemetryGuard::export_failures`], [`TelemetryGuard::stats`]); the first
//! success after an outage prints one line. While the destination is down, at most one
//! export per second goes to it (the others fail at once and are counted), so queued
//! batches do not each wait out the exporter's retries and timeout; once the collector
//! is back, the first export a second or more after the last failed one reaches it.
//! [`TelemetryGuard::shutdown_with_deadline`]
//! returns by its deadline however the collector behaves. The SDK's own internal logs
//! are not used.
//!
//! # gRPC and tokio
//!
//! The gRPC exporter (tonic) needs a tokio runtime. The setup builds its own small one
//! (one worker thread, `otelconc-otlp`) and runs every gRPC export there, so `install`
//! works from `main` with or without a runtime, and the application's runtime never
//! runs exporter work. The HTTP exporters use a blocking client on the SDK's threads.
//!
//! # Cost
//!
//! Setup cost is paid once. On the application's threads a span costs what the SDK's
//! batch processor costs (see `otelconc bench telemetry`) plus one relaxed atomic add to
//! count ended spans: in one release-build run on this 2-core machine, a tight loop of
//! empty spans took ~290 ns each through a bare batch processor with a discarding
//! exporter, and the same (~250-400 ns, within noise) through this setup with the
//! exports skipped. Exporting costs CPU on the export threads instead: the file
//! exporter spends ~4 µs per span encoding OTLP/JSON, which on two cores slowed that
//! loop to ~500 ns per span, and beyond ~200k spans/s sustained its queue drops spans.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod config;
mod error;
mod files;
mod guard;
mod health;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanExporter};

pub use config::{
    ALL_VARIABLES, Config, DEFAULT_METRIC_EXPORT_INTERVAL, DEFAULT_TELEMETRY_DIR, DEFAULT_TIMEOUT,
    Export, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_METRIC_EXPORT_INTERVAL, OTEL_RESOURCE_ATTRIBUTES,
    OTEL_SDK_DISABLED, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
    OTELCONC_TELEMETRY_DIR, Protocol, Sampler, UnknownValue,
};
pub use error::{SetupError, ShutdownError};
pub use files::{METRICS_FILE, TRACES_FILE};
pub use guard::{DEFAULT_SHUTDOWN_DEADLINE, Destination, ExportStats, TelemetryGuard};

use config::Overrides;
use health::{
    CountingProcessor, Driver, Health, WarningSink, WatchedMetricExporter, WatchedSpanExporter,
};

/// Installs providers configured from the environment alone: `builder().install()`.
///
/// # Errors
///
/// See [`SetupBuilder::install`].
///
/// # Examples
///
/// ```no_run
/// let telemetry = otelconc_setup::init()?;
/// eprintln!("telemetry: {}", telemetry.destination());
/// # Ok::<(), otelconc_setup::SetupError>(())
/// ```
pub fn init() -> Result<TelemetryGuard, SetupError> {
    builder().install()
}

/// A builder for values set in code (each overrides its environment variable).
///
/// # Examples
///
/// ```
/// use otelconc_setup::Protocol;
/// let config = otelconc_setup::builder()
///     .env_lookup(|_| None)
///     .endpoint("http://collector:4318")
///     .service_name("checkout")
///     .config()
///     .unwrap();
/// assert_eq!(config.service_name, "checkout");
/// ```
pub fn builder() -> SetupBuilder {
    SetupBuilder::default()
}

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
type AddReader = Box<dyn FnOnce(MeterProviderBuilder) -> MeterProviderBuilder + Send>;

/// Configures and installs the SDK providers; obtain it from [`builder`].
#[must_use = "a builder does nothing until install() or build()"]
pub struct SetupBuilder {
    overrides: Overrides,
    lookup: Lookup,
    warning_sink: Option<WarningSink>,
    readers: Vec<AddReader>,
}

impl Default for SetupBuilder {
    fn default() -> Self {
        Self {
            overrides: Overrides::default(),
            lookup: Arc::new(|name| std::env::var(name).ok()),
            warning_sink: None,
            readers: Vec::new(),
        }
    }
}

impl fmt::Debug for SetupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupBuilder")
            .field("overrides", &self.overrides)
            .field("extra_readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

impl SetupBuilder {
    /// Sets `service.name` (overrides `OTEL_SERVICE_NAME`).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = otelconc_setup::builder().env_lookup(|_| None).service_name("api").config().unwrap();
    /// assert_eq!(c.service_name, "api");
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.overrides.service_name = Some(name.into());
        self
    }

    /// The `service.name` to use when neither code nor the environment sets one.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = otelconc_setup::builder().default_service_name("otelconc");
    /// let env = |v: &str| (v == "OTEL_SERVICE_NAME").then(|| "mine".to_owned());
    /// assert_eq!(b.env_lookup(env).config().unwrap().service_name, "mine");
    /// ```
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        self.overrides.default_service_name = Some(name.into());
        self
    }

    /// Sets the collector base URL (overrides `OTEL_EXPORTER_OTLP_ENDPOINT` and the
    /// per-signal variables); HTTP protocols append `/v1/traces` and `/v1/metrics`.
    ///
    /// # Examples
    ///
    /// ```
    /// use otelconc_setup::Export;
    /// let c = otelconc_setup::builder().env_lookup(|_| None)
    ///     .endpoint("http://127.0.0.1:4318").config().unwrap();
    /// let Export::Otlp { traces_endpoint, .. } = c.export else { panic!() };
    /// assert_eq!(traces_endpoint, "http://127.0.0.1:4318/v1/traces");
    /// ```
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.overrides.endpoint = Some(url.into());
        self
    }

    /// Sets the OTLP transport (overrides `OTEL_EXPORTER_OTLP_PROTOCOL`).
    ///
    /// # Examples
    ///
    /// ```
    /// use otelconc_setup::{Export, Protocol};
    /// let c = otelconc_setup::builder().env_lookup(|_| None)
    ///     .endpoint("http://127.0.0.1:4317").protocol(Protocol::Grpc).config().unwrap();
    /// let Export::Otlp { traces_endpoint, .. } = c.export else { panic!() };
    /// assert_eq!(traces_endpoint, "http://127.0.0.1:4317");
    /// ```
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.overrides.protocol = Some(protocol);
        self
    }

    /// Sets the export timeout (overrides `OTEL_EXPORTER_OTLP_TIMEOUT`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = otelconc_setup::builder().timeout(Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.overrides.timeout = Some(timeout);
        self
    }

    /// Sets the trace sampler (overrides `OTEL_TRACES_SAMPLER` and its argument). A
    /// ratio outside `[0, 1]` is refused by [`config`](Self::config) and
    /// [`install`](Self::install), as `OTEL_TRACES_SAMPLER_ARG`'s is.
    ///
    /// # Examples
    ///
    /// ```
    /// use otelconc_setup::Sampler;
    /// let c = otelconc_setup::builder().env_lookup(|_| None)
    ///     .sampler(Sampler::TraceIdRatio(0.1)).config().unwrap();
    /// assert_eq!(c.sampler, Sampler::TraceIdRatio(0.1));
    /// ```
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.overrides.sampler = Some(sampler);
        self
    }

    /// Sets the time between metric exports (overrides `OTEL_METRIC_EXPORT_INTERVAL`).
    /// Zero is refused by [`config`](Self::config) and [`install`](Self::install), as the
    /// variable's `0` is.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = otelconc_setup::builder().env_lookup(|_| None)
    ///     .metric_export_interval(Duration::from_secs(5)).config().unwrap();
    /// assert_eq!(c.metric_export_interval, Duration::from_secs(5));
    /// ```
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        self.overrides.metric_export_interval = Some(interval);
        self
    }

    /// Sets the directory of the local files used when no endpoint is configured
    /// (overrides `OTELCONC_TELEMETRY_DIR`). An endpoint, from code or environment,
    /// still wins over files.
    ///
    /// # Examples
    ///
    /// ```
    /// use otelconc_setup::Export;
    /// let c = otelconc_setup::builder().env_lookup(|_| None).files_dir("out").config().unwrap();
    /// assert_eq!(c.export, Export::Files { dir: "out".into() });
    /// ```
    pub fn files_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.overrides.files_dir = Some(dir.into());
        self
    }

    /// Adds a resource attribute (overrides the same key from
    /// `OTEL_RESOURCE_ATTRIBUTES`; `service.name` here acts as [`service_name`](Self::service_name)).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = otelconc_setup::builder().env_lookup(|_| None)
    ///     .resource_attribute("deployment.environment.name", "staging").config().unwrap();
    /// assert!(c.resource_attributes.contains(&("deployment.environment.name".into(), "staging".into())));
    /// ```
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides
            .resource_attributes
            .push((key.into(), value.into()));
        self
    }

    /// Adds a periodic reader alongside the exporter's, e.g. one whose exporter keeps
    /// the last collection in memory so the program can print its own summary from the
    /// same metrics (it receives a final collection when the guard shuts down).
    /// Ignored when disabled.
    ///
    /// (The SDK's `MetricReader` trait is public only behind an experimental feature,
    /// hence the concrete `PeriodicReader` over any [`PushMetricExporter`].)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};
    /// let memory = InMemoryMetricExporter::default();
    /// let reader = PeriodicReader::builder(memory.clone()).with_interval(Duration::from_secs(3600)).build();
    /// let dir = std::env::temp_dir().join("otelconc-doc-reader");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir)
    ///     .with_metric_reader(reader).build().unwrap();
    /// use opentelemetry::metrics::MeterProvider;
    /// guard.meter_provider().unwrap().meter("doc").u64_counter("doc.events").build().add(3, &[]);
    /// guard.shutdown().unwrap();
    /// assert!(!memory.get_finished_metrics().unwrap().is_empty());
    /// ```
    pub fn with_metric_reader<E: PushMetricExporter>(mut self, reader: PeriodicReader<E>) -> Self {
        self.readers.push(Box::new(move |b| b.with_reader(reader)));
        self
    }

    /// Reads configuration through `lookup` instead of the process environment (tests,
    /// or programs with their own configuration source).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let env = HashMap::from([("OTEL_SERVICE_NAME".to_owned(), "from-map".to_owned())]);
    /// let c = otelconc_setup::builder().env_lookup(move |k| env.get(k).cloned()).config().unwrap();
    /// assert_eq!(c.service_name, "from-map");
    /// ```
    pub fn env_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.lookup = Arc::new(lookup);
        self
    }

    /// Sends the export-failure warnings to `sink` instead of stderr.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = otelconc_setup::builder().warning_sink(|line| eprintln!("[telemetry] {line}"));
    /// # let _ = b;
    /// ```
    pub fn warning_sink(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.warning_sink = Some(Arc::new(sink));
        self
    }

    /// Resolves the configuration without installing anything.
    ///
    /// # Errors
    ///
    /// [`SetupError::InvalidValue`] for a variable (or code value) that is not accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = otelconc_setup::builder().env_lookup(|_| None).config().unwrap();
    /// assert_eq!(c.export, otelconc_setup::Export::Files { dir: "otelconc-telemetry".into() });
    /// ```
    pub fn config(&self) -> Result<Config, SetupError> {
        config::resolve(&self.overrides, &*self.lookup)
    }

    /// Builds the providers and sets them as the global tracer and meter providers
    /// (and W3C trace context plus W3C baggage as the global propagator, which
    /// [`otelconc::telemetry::inject`] and [`extract`](otelconc::telemetry::extract)
    /// use), with otelconc's
    /// [`Telemetry::global`](otelconc::telemetry::Telemetry::global) handles recording
    /// through bound instruments from then on (see the [crate docs](crate#bound-instruments)).
    ///
    /// # Errors
    ///
    /// [`SetupError::InvalidValue`] for an invalid setting, [`SetupError::Io`] when the
    /// files directory cannot be created, [`SetupError::Exporter`] when an OTLP
    /// exporter cannot be built.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("otelconc-doc-install");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).install().unwrap();
    /// opentelemetry::global::meter("doc").u64_counter("doc.count").build().add(1, &[]);
    /// guard.shutdown().unwrap();
    /// assert!(dir.join("metrics.jsonl").exists());
    /// ```
    pub fn install(self) -> Result<TelemetryGuard, SetupError> {
        let guard = self.build()?;
        if let Some(tp) = &guard.tracer_provider {
            opentelemetry::global::set_tracer_provider(tp.clone());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry::propagation::TextMapCompositePropagator::new(vec![
                    Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
                    Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
                ]),
            );
        }
        if let Some(mp) = &guard.meter_provider {
            opentelemetry::global::set_meter_provider(mp.clone());
            // True of every SDK meter provider in this build: see the crate docs.
            otelconc::telemetry::Telemetry::bind_global_instruments();
        }
        Ok(guard)
    }

    /// Builds the providers without touching the globals (use the guard's
    /// [`tracer_provider`](TelemetryGuard::tracer_provider) and
    /// [`meter_provider`](TelemetryGuard::meter_provider)).
    ///
    /// # Errors
    ///
    /// As [`install`](Self::install).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("otelconc-doc-build");
    /// let guard = otelconc_setup::builder().env_lookup(|_| None).files_dir(&dir).build().unwrap();
    /// assert!(guard.tracer_provider().is_some());
    /// ```
    pub fn build(self) -> Result<TelemetryGuard, SetupError> {
        let config = self.config()?;
        let sink: WarningSink = self
            .warning_sink
            .unwrap_or_else(|| Arc::new(|line: &str| eprintln!("{line}")));
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_service_name(config.service_name.clone())
            .with_attributes(
                config
                    .resource_attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let readers = self.readers;
        match &config.export {
            Export::Disabled => Ok(TelemetryGuard {
                shut_down: AtomicBool::new(false),
                tracer_provider: None,
                meter_provider: None,
                destination: Destination::Disabled,
                health: Arc::new(Health::new("nowhere".to_owned(), sink)),
            }),
            Export::Files { dir } => {
                let (traces, metrics) = files::prepare_dir(dir)?;
                let health = Arc::new(Health::new(dir.display().to_string(), sink));
                let spans = files::FileSpanExporter::open(traces.clone())?;
                let metric = files::FileMetricExporter::open(metrics.clone())?;
                let destination = Destination::Files {
                    dir: dir.clone(),
                    traces,
                    metrics,
                };
                Ok(assemble(
                    spans,
                    metric,
                    Driver::Inline,
                    &config,
                    resource,
                    readers,
                    health,
                    destination,
                ))
            }
            Export::Otlp {
                traces_endpoint,
                metrics_endpoint,
                protocol,
                headers,
                timeout,
            } => {
                let label = health_label(traces_endpoint, metrics_endpoint);
                let health = Arc::new(Health::new(label, sink));
                let destination = Destination::Otlp {
                    traces_endpoint: traces_endpoint.clone(),
                    metrics_endpoint: metrics_endpoint.clone(),
                    protocol: *protocol,
                };
                let exporter_error =
                    |e: opentelemetry_otlp::ExporterBuildError| SetupError::Exporter(e.to_string());
                match protocol {
                    Protocol::Grpc => {
                        let runtime = tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(1)
                            .thread_name("otelconc-otlp")
                            .enable_all()
                            .build()
                            .map_err(|e| {
                                SetupError::Exporter(format!("starting the gRPC runtime: {e}"))
                            })?;
                        let metadata = grpc_metadata(headers)?;
                        // tonic spawns its connection task on the current runtime.
                        let (spans, metric) = {
                            let _enter = runtime.enter();
                            let spans = opentelemetry_otlp::SpanExporter::builder()
                                .with_tonic()
                                .with_endpoint(traces_endpoint.clone())
                                .with_timeout(*timeout)
                                .with_metadata(metadata.clone())
                                .build()
                                .map_err(exporter_error)?;
                            let metric = opentelemetry_otlp::MetricExporter::builder()
                                .with_tonic()
                                .with_endpoint(metrics_endpoint.clone())
                                .with_timeout(*timeout)
                                .with_metadata(metadata)
                                .build()
                                .map_err(exporter_error)?;
                            (spans, metric)
                        };
                        let driver = Driver::Tokio(Arc::new(health::OwnedRuntime::new(runtime)));
                        Ok(assemble(
                            spans,
                            metric,
                            driver,
                            &config,
                            resource,
                            readers,
                            health,
                            destination,
                        ))
                    }
                    Protocol::HttpProtobuf | Protocol::HttpJson => {
                        let wire = if *protocol == Protocol::HttpJson {
                            opentelemetry_otlp::Protocol::HttpJson
                        } else {
                            opentelemetry_otlp::Protocol::HttpBinary
                        };
                        let headers: HashMap<String, String> = headers.iter().cloned().collect();
                        let client = health::DiagnosingClient::build(*timeout)
                            .map_err(|e| SetupError::Exporter(format!("the HTTP client: {e}")))?;
                        let http_client =
                            |client: &reqwest::blocking::Client| health::DiagnosingClient {
                                inner: client.clone(),
                                health: health.clone(),
                            };
                        let spans = opentelemetry_otlp::SpanExporter::builder()
                            .with_http()
                            .with_http_client(http_client(&client))
                            .with_protocol(wire)
                            .with_endpoint(traces_endpoint.clone())
                            .with_timeout(*timeout)
                            .with_headers(headers.clone())
                            .build()
                            .map_err(exporter_error)?;
                        let metric = opentelemetry_otlp::MetricExporter::builder()
                            .with_http()
                            .with_http_client(http_client(&client))
                            .with_protocol(wire)
                            .with_endpoint(metrics_endpoint.clone())
                            .with_timeout(*timeout)
                            .with_headers(headers)
                            .build()
                            .map_err(exporter_error)?;
                        Ok(assemble(
                            spans,
                            metric,
                            Driver::Inline,
                            &config,
                            resource,
                            readers,
                            health,
                            destination,
                        ))
                    }
                }
            }
        }
    }
}

fn grpc_metadata(
    headers: &[(String, String)],
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, SetupError> {
    // `config::resolve` has refused headers HTTP does not allow; this only converts.
    let map = config::header_map(headers).ok_or_else(|| SetupError::InvalidValue {
        variable: OTEL_EXPORTER_OTLP_HEADERS,
        value: headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        accepted: "header names and values valid in HTTP/2 (gRPC metadata)".to_owned(),
    })?;
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

/// The scheme://host:port both endpoints share, else both URLs.
fn health_label(traces: &str, metrics: &str) -> String {
    fn origin(url: &str) -> &str {
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        match url[after_scheme..].find('/') {
            Some(i) => &url[..after_scheme + i],
            None => url,
        }
    }
    if origin(traces) == origin(metrics) {
        origin(traces).to_owned()
    } else {
        format!("{traces} and {metrics}")
    }
}

#[allow(clippy::too_many_arguments)]
fn assemble<S, M>(
    spans: S,
    metric: M,
    driver: Driver,
    config: &Config,
    resource: Resource,
    readers: Vec<AddReader>,
    health: Arc<Health>,
    destination: Destination,
) -> TelemetryGuard
where
    S: SpanExporter + 'static,
    M: PushMetricExporter,
{
    let spans = WatchedSpanExporter {
        inner: spans,
        health: health.clone(),
        driver: driver.clone(),
    };
    let metric = WatchedMetricExporter {
        inner: metric,
        health: health.clone(),
        driver,
    };
    let processor = CountingProcessor {
        inner: BatchSpanProcessor::builder(spans).build(),
        health: health.clone(),
    };
    let tracer = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(config.sampler.to_sdk())
        .with_resource(resource.clone())
        .build();
    let reader = PeriodicReader::builder(metric)
        .with_interval(config.metric_export_interval)
        .build();
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader);
    for add in readers {
        builder = add(builder);
    }
    let meter = builder.build();
    TelemetryGuard {
        shut_down: AtomicBool::new(false),
        tracer_provider: Some(tracer),
        meter_provider: Some(meter),
        destination,
        health,
    }
}

/// The README's Rust blocks (the quick start), compiled and run as doctests so they
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
