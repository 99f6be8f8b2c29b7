//! SDK providers whose exporters discard what they get: the SDK's whole recording and
//! batching cost, without a network in the measurement.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::metrics::noop::NoopMeterProvider;
use opentelemetry::trace::noop::NoopTracerProvider;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use otelconc::telemetry::Telemetry;

#[derive(Debug)]
struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

#[derive(Debug)]
struct DiscardMetrics;

impl PushMetricExporter for DiscardMetrics {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The providers every suite's variants share (clones share them too).
#[derive(Clone)]
pub(crate) struct BenchTelemetry {
    meter_provider: SdkMeterProvider,
    tracer_provider: SdkTracerProvider,
}

impl BenchTelemetry {
    /// An SDK meter provider collecting every second and an always-on tracer provider
    /// with a batch processor, both into discarding exporters.
    pub(crate) fn new() -> Self {
        let reader = PeriodicReader::builder(DiscardMetrics)
            .with_interval(Duration::from_secs(1))
            .build();
        let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_batch_exporter(DiscardSpans)
            .build();
        Self {
            meter_provider,
            tracer_provider,
        }
    }

    /// No SDK: the no-op providers the global API hands out when nothing is installed.
    pub(crate) fn nosdk(&self) -> Telemetry {
        Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new())
    }

    /// The SDK meter provider, no tracer provider; bound instruments, as a program
    /// that installs its providers with otelconc-setup gets them (this build's SDK has
    /// `experimental_metrics_bound_instruments`, see Cargo.toml).
    pub(crate) fn metrics(&self) -> Telemetry {
        Telemetry::new(&self.meter_provider, &NoopTracerProvider::new()).with_bound_instruments()
    }

    /// The SDK meter and tracer providers, bound instruments as in [`Self::metrics`].
    pub(crate) fn traced(&self) -> Telemetry {
        Telemetry::new(&self.meter_provider, &self.tracer_provider).with_bound_instruments()
    }

    /// The SDK meter provider itself, for seed-style variants that build their own
    /// instruments.
    pub(crate) fn sdk_meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// The SDK tracer provider itself, for seed-style variants.
    pub(crate) fn sdk_tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// A context holding a new sampled root span: attach it so the work that follows is
    /// "inside a sampled trace". The span is never ended, so it costs one start.
    pub(crate) fn sampled_root(&self) -> Context {
        let tracer = self.tracer_provider.tracer("otelconc-bench");
        Context::current().with_span(tracer.start("bench.root"))
    }

    pub(crate) fn shutdown(&self) {
        // Exporters discard; a failed shutdown here loses nothing worth reporting.
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}
