//! Suite `tower`: otelconc-tower's rate and concurrency layers against tower's own
//! `RateLimit` and `ConcurrencyLimit`, each in front of a no-op service, one
//! `ready().await` + `call().await` per operation.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use otelconc::rate::{Rate, RateLimiter};
use otelconc::semaphore::Semaphore;
use otelconc::telemetry::Telemetry;
use otelconc_tower::{ConcurrencyLimitLayer, RateLimitLayer};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

use super::{Case, Env, SuiteDoc, Variant};

/// What `docs/costs.md` says about this suite.
pub(crate) static DOC: SuiteDoc = SuiteDoc {
    about: "otelconc-tower's layers against tower's own, each in front of a no-op \
        service: one `ready().await` and one `call(()).await` per operation, 2,000,000 \
        operations per case (`--quick`: a tenth), from one task. The rate case never \
        empties the bucket (a billion tokens per second); the concurrency case has 64 \
        permits and one request in flight, so neither waits: this is the per-request \
        cost of the layer itself.",
    variants: &[
        (
            "tower-ratelimit",
            "`tower::limit::RateLimit` (baseline of the rate case)",
        ),
        (
            "tower-concurrencylimit",
            "`tower::limit::ConcurrencyLimit` (baseline of the concurrency case)",
        ),
        (
            "otelconc-nosdk",
            "`RateLimitLayer` / `ConcurrencyLimitLayer` (wait mode), no SDK installed",
        ),
        (
            "otelconc-metrics",
            "`RateLimitLayer` / `ConcurrencyLimitLayer` (wait mode), SDK metrics",
        ),
    ],
    notes: "tower's `RateLimit` counts requests in a fixed window held by the service \
        itself (no shared state, one `Instant::now()` per call); otelconc's layer takes a \
        token from a limiter every clone shares (one read of the CPU's counter, a CAS and \
        a striped counter add), which came out at 0.71x in five runs on a shared 2-core \
        machine (17.9 ns against 25.1 ns per request; the same layer code measured \
        0.86-0.91x in the build before: a cost this small moves between builds). tower's `ConcurrencyLimit` and \
        otelconc's both take an owned permit of a semaphore in `poll_ready` and move it \
        into the response future; otelconc's came out at 1.12-1.16x (five runs: \
        16.1-16.7 ns against 14.3-14.4 ns), from 1.44x before its ready path was trimmed \
        and the semaphore's owned take and free-permit read were inlined. Before that \
        inlining, counted in instructions (callgrind, `--quick`), a request cost 281 \
        against tower's 207; 48 of the extra 74 were the semaphore's: otelconc's owned try-acquire (it counts \
        the grant on a per-thread stripe) and the read of the free permits before it (so \
        that a request about to queue is not counted as refused) are 70 instructions in \
        two calls against tokio's 22. The layer's share was the response future's drop \
        (17: it can also hold a weighted wait or a refusal) and the `BoxError` checks \
        that tower's convention asks of a layer that can refuse (tower's is \
        infallible). Boxing the slow-path state had taken it from 2.1x to 1.45x; moving \
        the slow paths into cold functions, taking the permit in shed mode without the \
        read, and building the response future in place took it to 1.23x, and inlining \
        the semaphore's calls to 1.12-1.16x (a variant that \
        built the future in a temporary and copied it ran fewer instructions but slower: \
        one store-forwarding stall per request).",
};

const FULL: u64 = 2_000_000;
const PERMITS: u32 = 64;

/// The service behind every layer: answers at once.
#[derive(Clone, Copy)]
struct Noop;

impl Service<()> for Noop {
    type Response = ();
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        ready(Ok(()))
    }
}

/// `ops` ready + call rounds on `svc`, in one task.
fn rounds<S>(rt: &Runtime, ops: u64, mut svc: S) -> Duration
where
    S: Service<()>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async move {
        let start = Instant::now();
        for _ in 0..ops {
            let ready = svc.ready().await.expect("a no-op service is always ready");
            black_box(ready.call(()).await.expect("a no-op service never fails"));
        }
        start.elapsed()
    })
}

/// A variant that wraps a fresh no-op service in `layer` for every run (tower's
/// `RateLimit` is not `Clone`: its window lives in the service).
fn variant<L>(name: &'static str, layer: L) -> Variant
where
    L: Layer<Noop> + 'static,
    L::Service: Service<()>,
    <L::Service as Service<()>>::Error: std::fmt::Debug,
{
    Variant::new(name, move |rt, ops| {
        // tower's `RateLimit` makes its timer when it is built: inside the runtime.
        let svc = {
            let _in_rt = rt.enter();
            layer.layer(Noop)
        };
        rounds(rt, ops, svc)
    })
}

fn rate_layer(t: Telemetry) -> RateLimitLayer {
    let quota = Rate::per_second(1e9)
        .burst(1_000_000_000)
        .expect("a valid quota");
    RateLimitLayer::new(
        RateLimiter::builder("bench-tower-rate", quota)
            .telemetry(t)
            .build(),
    )
}

fn concurrency_layer(t: Telemetry) -> ConcurrencyLimitLayer {
    let sem = Semaphore::builder("bench-tower-concurrency", PERMITS)
        .telemetry(t)
        .build()
        .expect("non-zero permits");
    ConcurrencyLimitLayer::new(sem)
}

fn rate(env: &Env) -> Case {
    let tower_rate = tower::limit::RateLimitLayer::new(u64::MAX, Duration::from_secs(1));
    Case {
        name: "ratelimit-ready-call",
        ops: env.ops(FULL),
        variants: vec![
            variant("tower-ratelimit", tower_rate),
            variant("otelconc-nosdk", rate_layer(env.telemetry.nosdk())),
            variant("otelconc-metrics", rate_layer(env.telemetry.metrics())),
        ],
    }
}

fn concurrency(env: &Env) -> Case {
    let tower_limit = tower::limit::ConcurrencyLimitLayer::new(PERMITS as usize);
    Case {
        name: "concurrencylimit-ready-call",
        ops: env.ops(FULL),
        variants: vec![
            variant("tower-concurrencylimit", tower_limit),
            variant("otelconc-nosdk", concurrency_layer(env.telemetry.nosdk())),
            variant(
                "otelconc-metrics",
                concurrency_layer(env.telemetry.metrics()),
            ),
        ],
    }
}

pub(crate) fn cases(env: &Env) -> Vec<Case> {
    vec![rate(env), concurrency(env)]
}
