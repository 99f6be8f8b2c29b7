//! [`Telemetry`]: the meter, tracer and span policy a primitive instance uses.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use opentelemetry::global::{self, BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::{
    Meter, MeterProvider, ObservableCounter, ObservableGauge, ObservableUpDownCounter,
};
use opentelemetry::trace::{Link, SpanBuilder, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

use super::instruments::{Counter, Histogram, UpDownCounter};
use super::names::{InstrumentKind, InstrumentSpec, SpanSpec};
use super::observe::{Observation, Observatory, bound, key};
use super::{SECONDS_BOUNDARIES, current_context, sampled_context};

/// The instrumentation scope name every meter and tracer of this crate uses.
pub const SCOPE_NAME: &str = "otelconc";

/// When a primitive builds spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpanPolicy {
    /// Only for work inside a sampled trace (the default): outside one, no span is
    /// built, but work still carries a context that holds a valid span context (sampled
    /// or not) or baggage, so it stays in its trace and sees the baggage. The one
    /// exception is a channel nothing observes (no SDK reads its metrics and its tracer
    /// builds no spans): it carries bare messages and no context (see
    /// [`channel`](crate::channel)).
    #[default]
    Sampled,
    /// For every operation; work outside any trace starts a new root span, which the
    /// tracer provider's sampler then decides on.
    Always,
    /// Never; metrics only. Contexts are still carried, as under [`SpanPolicy::Sampled`]
    /// (so a channel whose metrics no SDK reads carries none).
    Never,
}

/// The meter, tracer and span policy a primitive instance uses.
///
/// Cloning is cheap (two `Arc`s). Every builder in this crate defaults to
/// [`Telemetry::global`]; pass another one to inject providers (tests, or an application
/// that keeps several providers).
///
/// # Examples
/// ```
/// use otelconc::telemetry::{SpanPolicy, Telemetry};
/// let t = Telemetry::global().with_span_policy(SpanPolicy::Never);
/// assert_eq!(t.span_policy(), SpanPolicy::Never);
/// ```
#[derive(Clone)]
pub struct Telemetry {
    meter: Meter,
    tracer: Arc<BoxedTracer>,
    spans: SpanPolicy,
    /// Whether synchronous instruments are bound (see
    /// [`Telemetry::with_bound_instruments`]).
    bind: bool,
    /// The observable instruments of this meter provider, shared by clones.
    observatory: Arc<Observatory>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("spans", &self.spans)
            .field("bound_instruments", &self.bind)
            .finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::global()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Telemetry {
    /// The global meter and tracer providers, as installed at the time of this call.
    ///
    /// Build primitives after the SDK is installed: a primitive built before keeps the
    /// no-op instruments it got. Every handle made here on the same global provider
    /// shares its observable instruments by name (see the
    /// [module docs](super#instance-names)).
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::telemetry::Telemetry::global();
    /// # let _ = t;
    /// ```
    pub fn global() -> Self {
        let meter_provider = global::meter_provider();
        let observatory = Observatory::global(&meter_provider);
        Self {
            meter: meter_provider.meter_with_scope(scope()),
            tracer: Arc::new(global::tracer_provider().tracer_with_scope(scope())),
            spans: SpanPolicy::default(),
            bind: observatory.global_binds.load(Ordering::Acquire),
            observatory,
        }
    }

    /// Makes every later [`Telemetry::global`] handle record through bound instruments,
    /// for as long as the global meter provider installed now stays installed.
    ///
    /// **Call it only for a meter provider built by an `opentelemetry_sdk` with its
    /// `experimental_metrics_bound_instruments` feature on**: an SDK without that
    /// feature accepts the binding and drops every measurement made through it, without
    /// an error. `otelconc-setup` turns that feature on and calls this from its
    /// `install`, so a program that uses it has nothing to do. Anywhere else, not
    /// calling it is always safe: unbound instruments pass their (pre-built) attributes
    /// with each measurement, which costs the SDK an attribute lookup (tens of
    /// nanoseconds) and works with any SDK.
    ///
    /// Handles made before the call keep what they had; installing another global meter
    /// provider afterwards makes `global()` handles unbound again until this is called
    /// for it.
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::Telemetry;
    /// // With the no-op provider there is nothing to lose: no-op bindings are no-ops too.
    /// Telemetry::bind_global_instruments();
    /// assert!(Telemetry::global().bound_instruments());
    /// ```
    pub fn bind_global_instruments() {
        Observatory::global(&global::meter_provider())
            .global_binds
            .store(true, Ordering::Release);
    }

    /// Explicit providers, for tests or applications that do not use the globals.
    ///
    /// Make one handle per provider and clone it into every builder: instances built
    /// from one handle and its clones share their observable instruments by name (see
    /// the [module docs](super#instance-names)); two `new` calls on one provider do not.
    ///
    /// # Examples
    /// ```
    /// use opentelemetry::metrics::noop::NoopMeterProvider;
    /// use opentelemetry::trace::noop::NoopTracerProvider;
    /// let t = otelconc::telemetry::Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
    /// # let _ = t;
    /// ```
    pub fn new<M, T>(meter_provider: &M, tracer_provider: &T) -> Self
    where
        M: MeterProvider + ?Sized,
        T: ObjectSafeTracerProvider + ?Sized,
    {
        Self {
            meter: meter_provider.meter_with_scope(scope()),
            tracer: Arc::new(BoxedTracer::new(tracer_provider.boxed_tracer(scope()))),
            spans: SpanPolicy::default(),
            bind: false,
            observatory: Arc::default(),
        }
    }

    /// The same providers, with synchronous instruments bound once per name and
    /// attribute set: a measurement then skips the SDK's attribute lookup.
    ///
    /// **Use it only when the meter provider was built by an `opentelemetry_sdk` with its
    /// `experimental_metrics_bound_instruments` feature on**: an SDK without that feature
    /// accepts the binding and drops every measurement made through it, without an
    /// error. Without this call (the default) the handle works with any meter provider.
    /// Providers built by `otelconc-setup` always qualify: it turns the feature on for
    /// the whole build. Observable instruments are unaffected.
    ///
    /// # Examples
    /// ```
    /// use opentelemetry::metrics::noop::NoopMeterProvider;
    /// use opentelemetry::trace::noop::NoopTracerProvider;
    /// use otelconc::telemetry::Telemetry;
    /// let t = Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
    /// assert!(!t.bound_instruments());
    /// assert!(t.with_bound_instruments().bound_instruments());
    /// ```
    #[must_use]
    pub fn with_bound_instruments(mut self) -> Self {
        self.bind = true;
        self
    }

    /// Whether this handle records through bound instruments (see
    /// [`Telemetry::with_bound_instruments`]).
    ///
    /// # Examples
    /// ```
    /// use opentelemetry::metrics::noop::NoopMeterProvider;
    /// use opentelemetry::trace::noop::NoopTracerProvider;
    /// let t = otelconc::telemetry::Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
    /// assert!(!t.bound_instruments());
    /// ```
    pub fn bound_instruments(&self) -> bool {
        self.bind
    }

    /// The same providers with another [`SpanPolicy`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::{SpanPolicy, Telemetry};
    /// let t = Telemetry::global().with_span_policy(SpanPolicy::Always);
    /// assert_eq!(t.span_policy(), SpanPolicy::Always);
    /// ```
    #[must_use]
    pub fn with_span_policy(mut self, spans: SpanPolicy) -> Self {
        self.spans = spans;
        self
    }

    /// The span policy.
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::{SpanPolicy, Telemetry};
    /// assert_eq!(Telemetry::global().span_policy(), SpanPolicy::Sampled);
    /// ```
    pub fn span_policy(&self) -> SpanPolicy {
        self.spans
    }

    /// The meter, scoped `otelconc`.
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::telemetry::Telemetry::global();
    /// let _meter = t.meter();
    /// ```
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The tracer, scoped `otelconc`.
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::telemetry::Telemetry::global();
    /// let _tracer = t.tracer();
    /// ```
    pub fn tracer(&self) -> &BoxedTracer {
        &self.tracer
    }

    /// The context new work should parent its span on, per the span policy, or `None`
    /// when no span should be built: the one check before any span work.
    ///
    /// # Examples
    /// ```
    /// let t = otelconc::telemetry::Telemetry::global();
    /// assert!(t.span_parent().is_none()); // not inside a sampled trace
    /// ```
    pub fn span_parent(&self) -> Option<Context> {
        match self.spans {
            SpanPolicy::Sampled => sampled_context(),
            SpanPolicy::Always => Some(current_context()),
            SpanPolicy::Never => None,
        }
    }

    /// Whether the tracer is backed by an SDK (or any tracer that makes spans): when
    /// it is not, a primitive skips looking for a parent span at all.
    ///
    /// Probes with a child of a remote parent under a *telemetry-suppressed* context: the
    /// SDK records nothing there, whatever its sampler, and hands back an empty span
    /// context, while the no-op tracer hands back the parent's own span context. Nothing
    /// is ever exported by the probe.
    pub(crate) fn builds_spans(&self) -> bool {
        use opentelemetry::trace::{
            Span as _, SpanContext, SpanId, TraceFlags, TraceId, TraceState,
        };
        if self.spans == SpanPolicy::Never {
            return false;
        }
        let parent = SpanContext::new(
            TraceId::from(0x6f74_656c_636f_6e63_u128),
            SpanId::from(0x0070_726f_6265_u64),
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        let parent_id = parent.span_id();
        let cx = Context::new()
            .with_remote_span_context(parent)
            .with_telemetry_suppressed();
        let span = self
            .tracer
            .build_with_context(SpanBuilder::from_name("otelconc.probe"), &cx);
        let real = span.span_context().span_id() != parent_id;
        drop(span);
        real
    }

    /// Starts the span `spec` as a child of `parent` and returns `parent` with it active.
    pub(crate) fn start_span(
        &self,
        spec: &SpanSpec,
        parent: &Context,
        attributes: Vec<KeyValue>,
    ) -> Context {
        self.start_linked_span(spec, parent, Vec::new(), attributes)
    }

    /// Starts the span `spec` as a child of `parent` that links to `links` (batches,
    /// fan-in), and returns `parent` with it active.
    pub(crate) fn start_linked_span(
        &self,
        spec: &SpanSpec,
        parent: &Context,
        links: Vec<Link>,
        attributes: Vec<KeyValue>,
    ) -> Context {
        self.start_span_at(spec, parent, links, attributes, None)
    }

    /// [`start_linked_span`](Self::start_linked_span) with the span's start time when the
    /// caller has already read the clock for it (`None`: the tracer reads it).
    ///
    /// Every link must be to a valid span context ([`link_to`](super::link_to) makes only
    /// those): the builder is filled in one go, without the copies and the link filter
    /// of its `with_*` chain.
    pub(crate) fn start_span_at(
        &self,
        spec: &SpanSpec,
        parent: &Context,
        links: Vec<Link>,
        attributes: Vec<KeyValue>,
        start: Option<SystemTime>,
    ) -> Context {
        debug_assert!(links.iter().all(|l| l.span_context.is_valid()));
        let builder = SpanBuilder {
            span_kind: Some(spec.kind.clone()),
            name: Cow::Borrowed(spec.name),
            start_time: start,
            attributes: Some(attributes),
            links: (!links.is_empty()).then_some(links),
            ..SpanBuilder::default()
        };
        let span = self.tracer.build_with_context(builder, parent);
        parent.with_span(span)
    }

    /// A synchronous counter for `spec` with its attributes bound once.
    ///
    /// Built and bound once per name and attribute set for this handle and its clones;
    /// later calls clone the bound handle.
    pub(crate) fn counter(&self, spec: &'static InstrumentSpec, attrs: &[KeyValue]) -> Counter {
        debug_assert_eq!(spec.kind, InstrumentKind::Counter, "{}", spec.name);
        let o = &self.observatory;
        bound(&o.sync_counters, (key(spec, attrs), self.bind), || {
            let c = self
                .meter
                .u64_counter(spec.name)
                .with_unit(spec.unit)
                .with_description(spec.description)
                .build();
            Counter::new(c, attrs, self.bind)
        })
    }

    /// A synchronous up-down counter for `spec` with its attributes bound once.
    pub(crate) fn up_down_counter(
        &self,
        spec: &'static InstrumentSpec,
        attrs: &[KeyValue],
    ) -> UpDownCounter {
        debug_assert_eq!(spec.kind, InstrumentKind::UpDownCounter, "{}", spec.name);
        let o = &self.observatory;
        bound(&o.sync_up_down, (key(spec, attrs), self.bind), || {
            let c = self
                .meter
                .i64_up_down_counter(spec.name)
                .with_unit(spec.unit)
                .with_description(spec.description)
                .build();
            UpDownCounter::new(c, attrs, self.bind)
        })
    }

    /// A histogram for `spec` with its attributes bound once; duration histograms (unit
    /// `s`) get [`SECONDS_BOUNDARIES`].
    pub(crate) fn histogram(&self, spec: &'static InstrumentSpec, attrs: &[KeyValue]) -> Histogram {
        debug_assert_eq!(spec.kind, InstrumentKind::Histogram, "{}", spec.name);
        let o = &self.observatory;
        bound(&o.sync_histograms, (key(spec, attrs), self.bind), || {
            let mut b = self
                .meter
                .f64_histogram(spec.name)
                .with_unit(spec.unit)
                .with_description(spec.description);
            if spec.unit == "s" {
                b = b.with_boundaries(SECONDS_BOUNDARIES.to_vec());
            }
            Histogram::new(b.build(), attrs, self.bind)
        })
    }

    /// This instance's part in the observable up-down counter `spec` with `attrs`: an
    /// additive level (waiters, holders), reported as the sum of what the `observe` of
    /// every live instance of the name returns. `observe` should hold only a `Weak` of
    /// its instance.
    pub(crate) fn observable_up_down_counter(
        &self,
        spec: &'static InstrumentSpec,
        attrs: Vec<KeyValue>,
        observe: impl Fn() -> Option<i64> + Send + Sync + 'static,
    ) -> Observation {
        self.observatory
            .observe::<ObservableUpDownCounter<i64>>(&self.meter, spec, attrs, observe)
    }

    /// Like [`Telemetry::observable_up_down_counter`] with an `f64` value: a level that
    /// need not be whole (tokens, a rate).
    pub(crate) fn observable_up_down_counter_f64(
        &self,
        spec: &'static InstrumentSpec,
        attrs: Vec<KeyValue>,
        observe: impl Fn() -> Option<f64> + Send + Sync + 'static,
    ) -> Observation {
        self.observatory
            .observe::<ObservableUpDownCounter<f64>>(&self.meter, spec, attrs, observe)
    }

    /// This instance's part in the observable `f64` gauge `spec` with `attrs`, for a
    /// value that does not add up (an age): the gauge reports the largest value that
    /// the `observe` of a live instance of the name returns. `observe` should hold only
    /// a `Weak` of its instance.
    pub(crate) fn observable_gauge_f64(
        &self,
        spec: &'static InstrumentSpec,
        attrs: Vec<KeyValue>,
        observe: impl Fn() -> Option<f64> + Send + Sync + 'static,
    ) -> Observation {
        self.observatory
            .observe::<ObservableGauge<f64>>(&self.meter, spec, attrs, observe)
    }

    /// This instance's part in the observable (monotonic) counter `spec` with `attrs`:
    /// `observe` reads the instance's cumulative total, and the counter reports the sum
    /// over the live instances of the name, monotonic while any of them lives.
    pub(crate) fn observable_counter(
        &self,
        spec: &'static InstrumentSpec,
        attrs: Vec<KeyValue>,
        observe: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Observation {
        self.observatory
            .observe::<ObservableCounter<u64>>(&self.meter, spec, attrs, observe)
    }

    /// Like [`Telemetry::observable_counter`] with an `f64` total (seconds of busy
    /// time).
    pub(crate) fn observable_counter_f64(
        &self,
        spec: &'static InstrumentSpec,
        attrs: Vec<KeyValue>,
        observe: impl Fn() -> Option<f64> + Send + Sync + 'static,
    ) -> Observation {
        self.observatory
            .observe::<ObservableCounter<f64>>(&self.meter, spec, attrs, observe)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    use super::*;
    use crate::telemetry::names::ATTR_NAME;

    static COUNT: InstrumentSpec = InstrumentSpec {
        name: "otelconc.test.count",
        kind: InstrumentKind::Counter,
        unit: "{op}",
        description: "test",
        attributes: &[ATTR_NAME],
    };
    static WAIT: InstrumentSpec = InstrumentSpec {
        name: "otelconc.test.wait",
        kind: InstrumentKind::Histogram,
        unit: "s",
        description: "test",
        attributes: &[ATTR_NAME],
    };

    #[test]
    fn instruments_record_with_their_bound_attributes_and_second_buckets() {
        let exporter = InMemoryMetricExporter::default();
        let reader = PeriodicReader::builder(exporter.clone())
            .with_interval(Duration::from_secs(3600))
            .build();
        let mp = SdkMeterProvider::builder().with_reader(reader).build();
        let t = Telemetry::new(&mp, &SdkTracerProvider::builder().build());
        let attrs = [KeyValue::new(ATTR_NAME, "a")];
        let c = t.counter(&COUNT, &attrs);
        let h = t.histogram(&WAIT, &attrs);
        c.add(2);
        c.add(3);
        h.record(0.000_3);
        mp.force_flush().unwrap();
        let all = exporter.get_finished_metrics().unwrap();
        let rm = all.last().unwrap();
        let metrics: Vec<_> = rm.scope_metrics().flat_map(|s| s.metrics()).collect();
        let count = metrics.iter().find(|m| m.name() == COUNT.name).unwrap();
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = count.data() else {
            panic!("sum")
        };
        let p = sum.data_points().next().unwrap();
        assert_eq!(p.value(), 5);
        assert_eq!(p.attributes().cloned().collect::<Vec<_>>(), attrs.to_vec());
        let wait = metrics.iter().find(|m| m.name() == WAIT.name).unwrap();
        assert_eq!(wait.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(hist)) = wait.data() else {
            panic!("hist")
        };
        let p = hist.data_points().next().unwrap();
        assert_eq!(p.bounds().collect::<Vec<_>>(), SECONDS_BOUNDARIES.to_vec());
        assert_eq!(p.count(), 1);
    }

    #[test]
    fn a_failure_sets_status_and_error_type_without_an_event() {
        let exporter = InMemorySpanExporter::default();
        let tp = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let t = Telemetry::new(&SdkMeterProvider::builder().build(), &tp);
        static SPAN: SpanSpec = SpanSpec {
            name: "otelconc.test.work",
            kind: opentelemetry::trace::SpanKind::Internal,
            attributes: &[],
            parent: "test",
            description: "test",
        };
        let cx = t.start_span(&SPAN, &Context::new(), vec![]);
        crate::telemetry::ending::record_end(&cx, crate::telemetry::End::panic("boom"));
        cx.span().end();
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans[0].status, opentelemetry::trace::Status::error("boom"));
        assert!(spans[0].events.events.is_empty());
        assert!(
            spans[0]
                .attributes
                .contains(&KeyValue::new("error.type", "panic"))
        );
    }
}
