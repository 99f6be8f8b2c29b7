//! Suite `telemetry`: what one counter add, one histogram record and one span cost
//! under the SDK, done the seed's way and done the way otelconc does it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Tracer, TracerProvider};

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "What one metric record and one span cost under the SDK, done the seed's way and \
        the way otelconc does it, on the calling thread: 2,000,000 counter adds, \
        2,000,000 histogram records and 300,000 spans (`--quick`: a tenth). It has no \
        uninstrumented peer: it prices the parts the other suites' variants are made of.",
    variants: &[
        (
            "fresh-attrs",
            "a record with its attribute list built on the spot, as the seed does \
            (baseline)",
        ),
        (
            "prebuilt-attrs",
            "a record with an attribute list built once",
        ),
        (
            "bound",
            "a record through an instrument bound to its attributes once, as otelconc does",
        ),
        (
            "in-sampled-trace",
            "a span started and ended inside a sampled trace (baseline)",
        ),
        (
            "outside-trace-naive",
            "code that always starts a span, outside any trace: a root span the always-on \
            sampler records and exports",
        ),
        (
            "outside-trace-otelconc",
            "what a primitive pays outside a sampled trace: the check, no span",
        ),
    ],
    notes: "",
};

fn timed(ops: u64, mut f: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..ops {
        f(i);
    }
    start.elapsed()
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    let meter = env.telemetry.sdk_meter_provider().meter("otelconc-bench");
    let counter = meter.u64_counter("bench.counter").build();
    let histogram = meter
        .f64_histogram("bench.histogram")
        .with_unit("s")
        .build();
    let fixed: std::sync::Arc<[KeyValue]> = vec![
        KeyValue::new("otelconc.name", "bench"),
        KeyValue::new("otelconc.outcome", "ok"),
    ]
    .into();
    let tracer = env.telemetry.sdk_tracer_provider().tracer("otelconc-bench");
    let traced = env.telemetry.traced();
    let root = env.telemetry.sampled_root();

    let (c1, c2, c3) = (counter.clone(), counter.clone(), counter);
    let (h1, h2, h3) = (histogram.clone(), histogram.clone(), histogram);
    let (a2, a3, a5, a6) = (fixed.clone(), fixed.clone(), fixed.clone(), fixed);
    let bound_c = c3.bind(&a3);
    let bound_h = h3.bind(&a6);
    let (t1, t2) = (tracer.clone(), tracer);
    vec![
        Case {
            name: "counter-add",
            ops: env.ops(2_000_000),
            variants: vec![
                Variant::new("fresh-attrs", move |_, ops| {
                    timed(ops, |_| {
                        c1.add(
                            1,
                            &[
                                KeyValue::new("otelconc.name", "bench"),
                                KeyValue::new("otelconc.outcome", "ok"),
                            ],
                        )
                    })
                }),
                Variant::new("prebuilt-attrs", move |_, ops| {
                    timed(ops, |_| c2.add(1, &a2))
                }),
                Variant::new("bound", move |_, ops| timed(ops, |_| bound_c.add(1))),
            ],
        },
        Case {
            name: "histogram-record",
            ops: env.ops(2_000_000),
            variants: vec![
                Variant::new("fresh-attrs", move |_, ops| {
                    timed(ops, |i| {
                        h1.record(
                            i as f64 * 1e-9,
                            &[
                                KeyValue::new("otelconc.name", "bench"),
                                KeyValue::new("otelconc.outcome", "ok"),
                            ],
                        )
                    })
                }),
                Variant::new("prebuilt-attrs", move |_, ops| {
                    timed(ops, |i| h2.record(i as f64 * 1e-9, &a5))
                }),
                Variant::new("bound", move |_, ops| {
                    timed(ops, |i| bound_h.record(i as f64 * 1e-9))
                }),
            ],
        },
        Case {
            name: "span-start-end",
            ops: env.ops(300_000),
            variants: vec![
                Variant::new("in-sampled-trace", move |_, ops| {
                    let _g = root.clone().attach();
                    timed(ops, |_| t1.start("bench.span").end())
                }),
                Variant::new("outside-trace-naive", move |_, ops| {
                    // What code that always starts a span pays outside any trace: a root
                    // span that the always-on sampler records and exports.
                    timed(ops, |_| t2.start("bench.span").end())
                }),
                Variant::new("outside-trace-otelconc", move |_, ops| {
                    // What a primitive pays outside a sampled trace: the check, no span.
                    timed(ops, |_| {
                        black_box(traced.span_parent());
                    })
                }),
            ],
        },
    ]
}
