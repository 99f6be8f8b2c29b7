//! The rate layer with a real server and client over loopback, under tokio's paused
//! clock (the limiter reads it through `Clock::tokio`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otelconc::rate::{Clock, Rate, RateLimiter};
use otelconc_tower::{RateLimitLayer, RateLimited};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

fn limiter(rate: Rate, burst: u32) -> RateLimiter {
    RateLimiter::builder("test-quota", rate.burst(burst).expect("a quota"))
        .clock(Clock::tokio())
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_wait_mode_admits_requests_exactly_when_the_limiter_grants_tokens() {
    let served = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/",
        get({
            let served = served.clone();
            move || {
                served.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }
        }),
    );
    let addr = support::serve(app).await;
    // 10 per second with bursts of 5: 20 requests at once are admitted 5 at t = 0, then
    // one every 100 ms.
    let client = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter(Rate::per_second(10), 5)))
        .service(support::client());
    let start = Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let ready = client.ready().await.expect("ready");
                let admitted = start.elapsed();
                let res = ready
                    .call(support::get(addr, "/"))
                    .await
                    .expect("a response");
                assert_eq!(res.status(), 200);
                admitted
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for c in calls {
        admitted.push(c.await.expect("a call task"));
    }
    admitted.sort();
    let expected: Vec<Duration> = (0..20u64)
        .map(|i| Duration::from_millis(i.saturating_sub(4) * 100))
        .collect();
    assert_eq!(admitted, expected);
    assert_eq!(served.load(Ordering::SeqCst), 20);
}

#[tokio::test(start_paused = true)]
async fn a_bounded_wait_refuses_at_once_when_the_token_would_come_too_late() {
    let limiter = limiter(Rate::per_second(10), 1);
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()).max_wait(Duration::from_millis(150)))
        .service_fn(|()| async { Ok::<_, std::convert::Infallible>("ran") });
    limiter.try_acquire().expect("the burst");
    let ahead = limiter.reserve().expect("a reservation due at 100 ms");
    // This request's token would come at 200 ms: more than 150 ms away.
    let start = Instant::now();
    let err = svc
        .ready()
        .await
        .expect("ready: the refusal is the call's")
        .call(())
        .await
        .expect_err("refused");
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    let refused = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(refused.retry_after(), Duration::from_millis(200));
    // The refusal gave its token back: with the reservation ahead cancelled too, the
    // next request waits only for the first refill.
    ahead.cancel();
    let out = svc.ready().await.expect("ready").call(()).await;
    assert_eq!(out.expect("admitted"), "ran");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_service_that_waits_for_a_token_gives_the_token_back() {
    let limiter = limiter(Rate::per_second(10), 1);
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) });
    limiter.try_acquire().expect("the burst");
    assert!(
        futures::poll!(svc.ready()).is_pending(),
        "queued for 100 ms"
    );
    drop(svc);
    // Had the dropped wait kept its token, this one would be due at 200 ms.
    let next = limiter.reserve().expect("a reservation");
    assert_eq!(next.delay(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn the_shed_mode_refuses_in_call_with_the_time_until_the_next_token() {
    let limiter = limiter(Rate::every(Duration::from_millis(2500)), 1);
    let calls = Arc::new(AtomicU64::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()).shed())
        .service_fn({
            let calls = calls.clone();
            move |()| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::convert::Infallible>(()) }
            }
        });
    svc.ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect("the burst");
    tokio::time::advance(Duration::from_millis(500)).await;
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect_err("shed");
    let refused = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(refused.retry_after(), Duration::from_secs(2));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a refused request is not sent"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    svc.ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect("a token again");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A clone starts with no token of its original's; a token taken by `poll_ready` and
/// never used is spent; in wait mode only the first request to find the bucket empty
/// after a plentiful spell counts as refused, and the ones queueing behind it do not.
#[tokio::test(start_paused = true)]
async fn wait_mode_tokens_belong_to_one_handle_and_queueing_is_not_a_refusal() {
    use otelconc::telemetry::names::{ATTR_ERROR_TYPE, ATTR_NAME, ATTR_OUTCOME};
    use otelconc_testkit::{TestTelemetry, attr};

    let tt = TestTelemetry::new();
    let limiter = RateLimiter::builder("edge", Rate::per_second(10).burst(2).expect("a quota"))
        .clock(Clock::tokio())
        .telemetry(tt.telemetry())
        .build();
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) });
    svc.ready().await.expect("a token");
    let mut clone = svc.clone();
    clone.ready().await.expect("its own token, the second");
    assert!(
        limiter.tokens().abs() < 1e-9,
        "two tokens taken, one per handle"
    );
    svc.call(()).await.expect("admitted");
    clone.call(()).await.expect("admitted");

    // Ready, then dropped without a call: the token stays spent.
    advance_to_full(&limiter).await;
    let mut dropped = svc.clone();
    dropped.ready().await.expect("a token");
    drop(dropped);
    assert!((limiter.tokens() - 1.0).abs() < 1e-9);

    // Four requests in a row: one token left, then three waits of 100 ms each.
    let start = Instant::now();
    for _ in 0..4 {
        svc.ready()
            .await
            .expect("ready")
            .call(())
            .await
            .expect("admitted");
    }
    assert_eq!(start.elapsed(), Duration::from_millis(300));

    let m = tt.metrics();
    let name = attr(ATTR_NAME, "edge");
    let refused = m.value(
        "otelconc.rate.acquisitions",
        &[
            name.clone(),
            attr(ATTR_OUTCOME, "refused"),
            attr(ATTR_ERROR_TYPE, "rate_limited"),
        ],
    );
    assert_eq!(
        refused,
        Some(1.0),
        "only the first to find the bucket empty"
    );
    assert_eq!(
        m.value("otelconc.rate.contended", std::slice::from_ref(&name)),
        Some(3.0)
    );
    assert_eq!(
        m.value(
            "otelconc.rate.acquisitions",
            &[name, attr(ATTR_OUTCOME, "ok")]
        ),
        Some(7.0)
    );
}

/// Lets the bucket refill completely.
async fn advance_to_full(limiter: &RateLimiter) {
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!((limiter.tokens() - f64::from(limiter.burst())).abs() < 1e-9);
}
