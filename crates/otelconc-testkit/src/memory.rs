//! In-memory SDK providers for asserting telemetry in tests.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use otelconc::telemetry::Telemetry;

/// Tracer and meter providers that export into memory.
///
/// Spans are exported as each one ends (simple processor); metrics when
/// [`TestTelemetry::metrics`] forces a collection.
pub struct TestTelemetry {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    telemetry: Telemetry,
}

impl fmt::Debug for TestTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestTelemetry")
    }
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// The trace id of [`TestTelemetry::unsampled_parent`].
pub const UNSAMPLED_TRACE_ID: u128 = 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef;
/// The baggage key of [`TestTelemetry::unsampled_parent`].
pub const BAGGAGE_KEY: &str = "tenant";
/// The baggage value of [`TestTelemetry::unsampled_parent`].
pub const BAGGAGE_VALUE: &str = "acme";

/// What the work under test sees of its context, read the way an OpenTelemetry log
/// appender reads it: the current context's trace id (if its span context is valid) and
/// its [`BAGGAGE_KEY`] baggage value.
pub fn seen_context() -> (Option<TraceId>, Option<String>) {
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    let trace = sc.is_valid().then(|| sc.trace_id());
    let baggage = cx
        .baggage()
        .get(BAGGAGE_KEY)
        .map(|v| v.as_str().to_string());
    (trace, baggage)
}

/// Set (to anything) to make [`TestTelemetry::new`] hand out unbound instruments;
/// `scripts/test.sh` sets it for the library's run without features, so the whole
/// suite runs on both paths.
pub const UNBOUND_VAR: &str = "OTELCONC_TEST_UNBOUND";

impl TestTelemetry {
    /// Fresh providers with always-on sampling, and a [`Telemetry`] handle that records
    /// through bound instruments (this SDK is built with
    /// `experimental_metrics_bound_instruments`), as a program using otelconc-setup
    /// does; unbound when [`UNBOUND_VAR`] is set.
    pub fn new() -> Self {
        Self::with_binding(std::env::var_os(UNBOUND_VAR).is_none())
    }

    /// Fresh providers with always-on sampling, and a [`Telemetry`] handle that binds
    /// its synchronous instruments when `bind` says so (whatever [`UNBOUND_VAR`] says).
    pub fn with_binding(bind: bool) -> Self {
        Self::build(bind, Sampler::AlwaysOn)
    }

    /// Fresh providers whose tracer samples the way production services commonly do,
    /// `parentbased_traceidratio` (here with ratio 1.0, so a *new root* is always kept):
    /// a span whose parent was not sampled is dropped, and a span that lost its parent
    /// becomes an exported root. A test hands work over under [`Self::unsampled_parent`]
    /// and checks that the spans the work starts are not exported.
    pub fn parent_based() -> Self {
        Self::build(
            std::env::var_os(UNBOUND_VAR).is_none(),
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(1.0))),
        )
    }

    fn build(bind: bool, sampler: Sampler) -> Self {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(spans.clone())
            .build();
        let reader = PeriodicReader::builder(metrics.clone())
            .with_interval(Duration::from_secs(3600))
            .build();
        let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
        let mut telemetry = Telemetry::new(&meter_provider, &tracer_provider);
        if bind {
            telemetry = telemetry.with_bound_instruments();
        }
        Self {
            spans,
            metrics,
            tracer_provider,
            meter_provider,
            telemetry,
        }
    }

    /// A [`Telemetry`] handle on these providers, for a primitive's builder: clones of
    /// one handle, as an application would pass around, so same-named instances share
    /// their observable instruments.
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone()
    }

    /// The SDK tracer provider.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The SDK meter provider.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// A context holding a new sampled span `name` (kind internal), to `attach()` or pass
    /// as a parent: the "submitter" of the work under test. End it with
    /// `cx.span().end()` to see it among [`TestTelemetry::spans`].
    pub fn root(&self, name: &'static str) -> Context {
        let tracer = self.tracer_provider.tracer("otelconc-test");
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start(&tracer);
        Context::current().with_span(span)
    }

    /// A context holding an upstream span that was **not sampled** (a remote span
    /// context with trace id [`UNSAMPLED_TRACE_ID`] and the sampled flag off) and the
    /// baggage entry [`BAGGAGE_KEY`]` = `[`BAGGAGE_VALUE`]: what a service sees for most
    /// requests under a ratio sampler.
    pub fn unsampled_parent() -> Context {
        let sc = SpanContext::new(
            TraceId::from(UNSAMPLED_TRACE_ID),
            SpanId::from(0x5eed_u64),
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        Context::new()
            .with_remote_span_context(sc)
            .with_baggage([KeyValue::new(BAGGAGE_KEY, BAGGAGE_VALUE)])
    }

    /// A span `name` started by the work under test, in whatever context is current
    /// there (as user code in a job or a stage would): ended at once.
    pub fn start_user_span(&self, name: &'static str) {
        let tracer = self.tracer_provider.tracer("otelconc-test-user");
        let mut span = tracer.start(name);
        span.end();
    }

    /// Every span ended so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().expect("in-memory exporter")
    }

    /// The ended spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// Collects metrics now and returns the latest (cumulative) snapshot.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.reset();
        self.meter_provider.force_flush().expect("metrics flush");
        let mut all = self.metrics.get_finished_metrics().expect("metrics");
        MetricsSnapshot(all.pop())
    }
}

/// A key-value attribute, for the lookup methods of [`MetricsSnapshot`].
pub fn attr(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// One collection of metrics.
pub struct MetricsSnapshot(Option<ResourceMetrics>);

impl fmt::Debug for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

fn matches<'a>(point: impl Iterator<Item = &'a KeyValue>, want: &[KeyValue]) -> bool {
    let have: Vec<&KeyValue> = point.collect();
    want.iter()
        .all(|w| have.iter().any(|h| h.key == w.key && h.value == w.value))
}

impl MetricsSnapshot {
    fn metric(&self, name: &str) -> Option<&Metric> {
        self.0
            .as_ref()?
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)
    }

    /// Names of every metric with at least one data point.
    pub fn names(&self) -> BTreeSet<String> {
        self.0
            .iter()
            .flat_map(|r| r.scope_metrics())
            .flat_map(|s| s.metrics())
            .map(|m| m.name().to_owned())
            .collect()
    }

    /// The unit of metric `name`.
    pub fn unit(&self, name: &str) -> Option<String> {
        self.metric(name).map(|m| m.unit().to_owned())
    }

    /// The value of a counter, up-down counter or gauge (any number type, as `f64`),
    /// summed over the data points whose attributes include all of `attrs`.
    pub fn value(&self, name: &str, attrs: &[KeyValue]) -> Option<f64> {
        fn sum<T: Copy>(d: &MetricData<T>, attrs: &[KeyValue], f: fn(T) -> f64) -> Option<f64> {
            let vals: Vec<f64> = match d {
                MetricData::Sum(s) => s
                    .data_points()
                    .filter(|p| matches(p.attributes(), attrs))
                    .map(|p| f(p.value()))
                    .collect(),
                MetricData::Gauge(g) => g
                    .data_points()
                    .filter(|p| matches(p.attributes(), attrs))
                    .map(|p| f(p.value()))
                    .collect(),
                _ => return None,
            };
            (!vals.is_empty()).then(|| vals.iter().sum())
        }
        // Test values are small, so the integer-to-float conversions are exact.
        match self.metric(name)?.data() {
            AggregatedMetrics::F64(d) => sum(d, attrs, |v| v),
            AggregatedMetrics::U64(d) => sum(d, attrs, |v| v as f64),
            AggregatedMetrics::I64(d) => sum(d, attrs, |v| v as f64),
        }
    }

    /// The count and sum of a histogram over the data points whose attributes include
    /// all of `attrs`; `None` for an integer histogram (every otelconc histogram records
    /// `f64` values).
    pub fn histogram(&self, name: &str, attrs: &[KeyValue]) -> Option<(u64, f64)> {
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = self.metric(name)?.data() else {
            return None;
        };
        let pts: Vec<_> = h
            .data_points()
            .filter(|p| matches(p.attributes(), attrs))
            .collect();
        (!pts.is_empty()).then(|| {
            (
                pts.iter().map(|p| p.count()).sum(),
                pts.iter().map(|p| p.sum()).sum(),
            )
        })
    }

    /// The kind of data metric `name` was exported as: `counter` (a monotonic sum),
    /// `up-down counter` (a non-monotonic sum), `gauge` or `histogram`.
    pub fn data_kind(&self, name: &str) -> Option<&'static str> {
        fn kind<T>(d: &MetricData<T>) -> &'static str {
            match d {
                MetricData::Sum(s) if s.is_monotonic() => "counter",
                MetricData::Sum(_) => "up-down counter",
                MetricData::Gauge(_) => "gauge",
                MetricData::Histogram(_) | MetricData::ExponentialHistogram(_) => "histogram",
            }
        }
        Some(match self.metric(name)?.data() {
            AggregatedMetrics::F64(d) => kind(d),
            AggregatedMetrics::U64(d) => kind(d),
            AggregatedMetrics::I64(d) => kind(d),
        })
    }

    /// The attribute sets of every data point of metric `name`.
    pub fn attribute_sets(&self, name: &str) -> Vec<Vec<KeyValue>> {
        fn sets<T>(d: &MetricData<T>) -> Vec<Vec<KeyValue>> {
            match d {
                MetricData::Sum(s) => s
                    .data_points()
                    .map(|p| p.attributes().cloned().collect())
                    .collect(),
                MetricData::Gauge(g) => g
                    .data_points()
                    .map(|p| p.attributes().cloned().collect())
                    .collect(),
                MetricData::Histogram(h) => h
                    .data_points()
                    .map(|p| p.attributes().cloned().collect())
                    .collect(),
                MetricData::ExponentialHistogram(h) => h
                    .data_points()
                    .map(|p| p.attributes().cloned().collect())
                    .collect(),
            }
        }
        match self.metric(name).map(|m| m.data()) {
            Some(AggregatedMetrics::F64(d)) => sets(d),
            Some(AggregatedMetrics::U64(d)) => sets(d),
            Some(AggregatedMetrics::I64(d)) => sets(d),
            None => Vec::new(),
        }
    }
}

impl TestTelemetry {
    /// Asserts that every metric collected now and every span of otelconc's scope
    /// ([`otelconc::telemetry::SCOPE_NAME`]) ended so far is one the catalogue
    /// ([`otelconc::telemetry::names`]) lists, metrics with the catalogue's unit and kind
    /// (a gauge in the catalogue is exported as a gauge, a counter as a monotonic sum, an
    /// up-down counter as a non-monotonic one). Spans of other scopes (a test's own, a
    /// user's in a job) are not checked.
    pub fn assert_all_cataloged(&self) {
        let snapshot = self.metrics();
        for name in snapshot.names() {
            let spec = otelconc::telemetry::names::instruments()
                .find(|i| i.name == name)
                .unwrap_or_else(|| panic!("metric {name} is not in the catalogue"));
            assert_eq!(
                snapshot.unit(&name).as_deref(),
                Some(spec.unit),
                "unit of {name}"
            );
            use otelconc::telemetry::InstrumentKind as K;
            let want = match spec.kind {
                K::Counter | K::ObservableCounter => "counter",
                K::UpDownCounter | K::ObservableUpDownCounter => "up-down counter",
                K::ObservableGauge => "gauge",
                K::Histogram => "histogram",
                // The catalogue's kind is non-exhaustive: a new one needs its mapping here.
                other => panic!("no exported data kind known for {other:?} ({name})"),
            };
            assert_eq!(snapshot.data_kind(&name), Some(want), "kind of {name}");
        }
        for span in self.spans() {
            if span.instrumentation_scope.name() != otelconc::telemetry::SCOPE_NAME {
                continue;
            }
            assert!(
                otelconc::telemetry::names::spans().any(|s| s.name == span.name),
                "span {} is not in the catalogue",
                span.name
            );
        }
    }
}
