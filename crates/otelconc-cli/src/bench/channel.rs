//! Suite `channel`: u64 messages through a bounded channel of capacity 1024, one
//! producer and one consumer (`1p1c`) or four of each (`4p4c`), raw and instrumented.

use std::hint::black_box;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider};
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_sdk::trace::SdkTracer;
use otelconc::telemetry::Telemetry;

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "`u64` messages through a bounded channel of capacity 1024, one producer and one \
        consumer (`1p1c`) or four of each (`4p4c`), 2,000,000 messages per case \
        (`--quick`: a tenth). The traced and seed-style variants send a twentieth of the \
        messages and scale their time up, since each of their messages costs \
        microseconds.",
    variants: &[
        (
            "async-channel",
            "raw `async-channel`, which the channel is built on (baseline)",
        ),
        (
            "crossfire",
            "raw `crossfire` 3.1 (`mpmc::bounded_async`): the fastest cancel-safe peer \
            measured; not what the channel is built on (see `crates/otelconc/src/channel/queue.rs`)",
        ),
        (
            "kanal",
            "raw `kanal` 0.1 (`bounded_async`): not cancel-safe (its docs: a receive dropped at \
            hand-off can lose its message), a speed reference only",
        ),
        (
            "tokio-mpsc",
            "`tokio::sync::mpsc` (one consumer only, so `1p1c` only)",
        ),
        ("otelconc-nosdk", "`otelconc::channel`, no SDK installed"),
        ("otelconc-metrics", "`otelconc::channel`, SDK metrics"),
        (
            "otelconc-traced",
            "every send inside a sampled trace, received with `recv_traced`: one SDK span \
            per message",
        ),
        (
            "otelconc-traced-recv",
            "every send inside a sampled trace, received with plain `recv`: the context \
            travels, no span is built",
        ),
        (
            "carried+bare-span",
            "every send inside a sampled trace, received with plain `recv`, then one bare \
            SDK span per message (no attributes, no link, the tracer called directly): the \
            least a traced message can cost when its context is carried to the consumer \
            and one span is built there",
        ),
        (
            "seed-style",
            "the seed's instrumentation: two spans and four dynamic-attribute records per \
            message",
        ),
    ],
    notes: "A traced message costs one SDK span (most of it the SDK's own work, its \
        attributes and the link the messaging rule requires) plus two clock reads: one \
        at the send, and one at the receive that is both the span's start and the end \
        of the queue wait (the SDK reads the third, the span's end), against the seed's \
        two spans and \
        four dynamic-attribute records; carrying the context alone \
        (`otelconc-traced-recv`) costs a fraction of either. `carried+bare-span` is the \
        floor under `otelconc-traced`: the same carried context, and a span the SDK \
        builds without a heap allocation (no attributes, no link, its tracer called \
        directly). Counted with a counting allocator, the consumer span costs five \
        allocations that the floor does not: its attribute and link vectors (the link \
        is the messaging rule's), the box a `BoxedTracer` (the tracer type of a \
        `Telemetry` handle, as of the global API) puts every span in, and the box and \
        `Arc` an OpenTelemetry `Context` holds a span in; the attribute and \
        link vectors are freed on the span processor's thread. On the shared 2-core machine \
        of the earlier runs a clock read cost 20 to 100 ns and a locked add about 10 ns, \
        each a good part of a whole channel operation: that is why the channel samples \
        its timings and counts on cells each handle owns. There the no-SDK and \
        SDK-metrics ratios moved by about 0.1 from run to run (no SDK 0.93-1.08x, SDK \
        metrics 0.98-1.19x); on a quieter machine raw `async-channel` ran at 65-80 ns per \
        message and the no-SDK ratio stayed within 1.00-1.08x.",
};

const CAPACITY: usize = 1024;

/// Runs `p` producers sending `ops` messages in all and `c` consumers receiving until
/// the channel closes; returns the time from the first send to the last receive.
macro_rules! mpmc {
    ($rt:expr, $ops:expr, $p:expr, $c:expr, ($tx:ident, $rx:ident) = $make:expr,
     send($stx:ident, $i:ident) $send:block, recv($srx:ident) $recv:block) => {
        mpmc!($rt, $ops, $p, $c, ($tx, $rx) = $make, ctx(_unused = ()),
            send($stx, $i) $send, recv($srx) $recv)
    };
    ($rt:expr, $ops:expr, $p:expr, $c:expr, ($tx:ident, $rx:ident) = $make:expr,
     ctx($ctx:ident = $ctxe:expr),
     send($stx:ident, $i:ident) $send:block, recv($srx:ident) $recv:block) => {{
        let ctx_all = $ctxe;
        let ops: u64 = $ops;
        let (p, c): (u64, u64) = ($p, $c);
        $rt.block_on(async {
            let ($tx, $rx) = $make;
            let start = Instant::now();
            let mut tasks = Vec::new();
            for k in 0..p {
                let $stx = $tx.clone();
                #[allow(clippy::let_unit_value)]
                let $ctx = ctx_all.clone();
                let n = ops / p + u64::from(k < ops % p);
                tasks.push(tokio::spawn(async move {
                    for $i in 0..n {
                        $send
                    }
                    0u64
                }));
            }
            drop($tx);
            for _ in 0..c {
                let $srx = $rx.clone();
                #[allow(clippy::let_unit_value)]
                let $ctx = ctx_all.clone();
                tasks.push(tokio::spawn(async move {
                    let _ = &$ctx;
                    let mut sum = 0u64;
                    while let Some(v) = $recv {
                        sum = sum.wrapping_add(v);
                    }
                    sum
                }));
            }
            drop($rx);
            let mut total = 0u64;
            for t in tasks {
                total = total.wrapping_add(t.await.unwrap_or(0));
            }
            let took = start.elapsed();
            black_box(total);
            took
        })
    }};
}

fn raw(rt: &tokio::runtime::Runtime, ops: u64, p: u64, c: u64) -> Duration {
    mpmc!(rt, ops, p, c, (tx, rx) = async_channel::bounded::<u64>(CAPACITY),
        send(tx, i) { let _ = tx.send(i).await; },
        recv(rx) { rx.recv().await.ok() })
}

fn crossfire(rt: &tokio::runtime::Runtime, ops: u64, p: u64, c: u64) -> Duration {
    mpmc!(rt, ops, p, c, (tx, rx) = crossfire::mpmc::bounded_async::<u64>(CAPACITY),
        send(tx, i) { let _ = tx.send(i).await; },
        recv(rx) { rx.recv().await.ok() })
}

fn kanal(rt: &tokio::runtime::Runtime, ops: u64, p: u64, c: u64) -> Duration {
    mpmc!(rt, ops, p, c, (tx, rx) = kanal::bounded_async::<u64>(CAPACITY),
        send(tx, i) { let _ = tx.send(i).await; },
        recv(rx) { rx.recv().await.ok() })
}

fn tokio_mpsc(rt: &tokio::runtime::Runtime, ops: u64) -> Duration {
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..ops {
                let _ = tx.send(i).await;
            }
        });
        let consumer = tokio::spawn(async move {
            let mut sum = 0u64;
            while let Some(v) = rx.recv().await {
                sum = sum.wrapping_add(v);
            }
            sum
        });
        let _ = producer.await;
        let sum = consumer.await.unwrap_or(0);
        let took = start.elapsed();
        black_box(sum);
        took
    })
}

fn otelconc(rt: &tokio::runtime::Runtime, ops: u64, p: u64, c: u64, t: &Telemetry) -> Duration {
    mpmc!(rt, ops, p, c,
        (tx, rx) = otelconc::channel::builder("bench").telemetry(t.clone()).bounded::<u64>(CAPACITY),
        send(tx, i) { let _ = tx.send(i).await; },
        recv(rx) { rx.recv().await.ok() })
}

/// What the consumer of a traced variant does with each message.
#[derive(Clone)]
enum Consume {
    /// `recv_traced`: the message's CONSUMER span.
    Traced,
    /// Plain `recv`: the context travels, no span is built.
    Plain,
    /// Plain `recv`, then one bare SDK span under the sampled root: the floor of a
    /// traced message (see the `carried+bare-span` variant's doc).
    BareSpan(SdkTracer),
}

/// Every send inside the sampled trace `root`; each message consumed as `consume` says.
fn traced(
    rt: &tokio::runtime::Runtime,
    ops: u64,
    p: u64,
    c: u64,
    t: &Telemetry,
    root: &opentelemetry::Context,
    consume: &Consume,
) -> Duration {
    mpmc!(rt, ops, p, c,
    (tx, rx) = otelconc::channel::builder("bench").telemetry(t.clone()).bounded::<u64>(CAPACITY),
    ctx(cx = (root.clone(), consume.clone())),
    send(tx, i) { let _ = tx.send(i).with_context(cx.0.clone()).await; },
    recv(rx) {
        match &cx.1 {
            Consume::Traced => rx.recv_traced().await.ok().map(|m| m.into_inner()),
            Consume::Plain => rx.recv().await.ok(),
            Consume::BareSpan(tracer) => {
                let r = rx.recv().await.ok();
                if r.is_some() {
                    tracer.start_with_context("bench.span", &cx.0).end();
                }
                r
            }
        }
    })
}

/// What the seed does per operation: a span, plus a counter and a histogram recorded
/// with attribute lists built on the spot.
#[derive(Clone)]
struct Seed {
    tracer: SdkTracer,
    counter: Counter<u64>,
    histogram: Histogram<f64>,
}

impl Seed {
    fn op(&self, op: &'static str, start: Instant) {
        let mut span = self.tracer.start(op);
        span.set_attribute(KeyValue::new("channel.name", "bench"));
        self.counter.add(
            1,
            &[
                KeyValue::new("channel.name", "bench"),
                KeyValue::new("operation", op),
            ],
        );
        self.histogram.record(
            start.elapsed().as_secs_f64(),
            &[
                KeyValue::new("channel.name", "bench"),
                KeyValue::new("operation", op),
            ],
        );
        span.end();
    }
}

fn seed(
    rt: &tokio::runtime::Runtime,
    ops: u64,
    p: u64,
    c: u64,
    s: &Seed,
    root: &opentelemetry::Context,
) -> Duration {
    mpmc!(rt, ops, p, c, (tx, rx) = async_channel::bounded::<u64>(CAPACITY),
    ctx(s = (s.clone(), root.clone())),
    send(tx, i) {
        let (s, root) = &s;
        let t0 = Instant::now();
        let _ = tx.send(i).await;
        let _g = root.clone().attach();
        s.op("channel.send", t0);
    },
    recv(rx) {
        let t0 = Instant::now();
        let r = rx.recv().await.ok();
        if r.is_some() {
            s.0.op("channel.receive", t0);
        }
        r
    })
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    let meter = env.telemetry.sdk_meter_provider().meter("otelconc-bench");
    let seed_ops = Seed {
        tracer: env.telemetry.sdk_tracer_provider().tracer("otelconc-bench"),
        counter: meter.u64_counter("bench.channel.messages").build(),
        histogram: meter
            .f64_histogram("bench.channel.duration")
            .with_unit("s")
            .build(),
    };
    let root = env.telemetry.sampled_root();
    let mut cases = Vec::new();
    for (name, p, c, full) in [("1p1c", 1, 1, 2_000_000), ("4p4c", 4, 4, 2_000_000)] {
        let nosdk = env.telemetry.nosdk();
        let metrics = env.telemetry.metrics();
        let root2 = root.clone();
        let seed_s = seed_ops.clone();
        let mut variants = vec![Variant::new("async-channel", move |rt, ops| {
            raw(rt, ops, p, c)
        })];
        variants.push(Variant::new("crossfire", move |rt, ops| {
            crossfire(rt, ops, p, c)
        }));
        variants.push(Variant::new("kanal", move |rt, ops| kanal(rt, ops, p, c)));
        if p == 1 && c == 1 {
            variants.push(Variant::new("tokio-mpsc", tokio_mpsc));
        }
        variants.push(Variant::new("otelconc-nosdk", move |rt, ops| {
            otelconc(rt, ops, p, c, &nosdk)
        }));
        variants.push(Variant::new("otelconc-metrics", move |rt, ops| {
            otelconc(rt, ops, p, c, &metrics)
        }));
        // Traced variants do a small fraction of the work: each message costs microseconds.
        // Each has a handle of its own, as every variant does.
        for (variant, consume) in [
            ("otelconc-traced", Consume::Traced),
            ("otelconc-traced-recv", Consume::Plain),
            (
                "carried+bare-span",
                Consume::BareSpan(seed_ops.tracer.clone()),
            ),
        ] {
            let (t, root) = (env.telemetry.traced(), root.clone());
            variants.push(Variant::new(variant, move |rt, ops| {
                traced(rt, (ops / 20).max(1), p, c, &t, &root, &consume) * 20
            }));
        }
        variants.push(Variant::new("seed-style", move |rt, ops| {
            seed(rt, (ops / 20).max(1), p, c, &seed_s, &root2) * 20
        }));
        cases.push(Case {
            name,
            ops: env.ops(full),
            variants,
        });
    }
    cases
}
