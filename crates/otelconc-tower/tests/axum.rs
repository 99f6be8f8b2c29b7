//! The refusals as HTTP responses from a real axum server, read by a real client.

mod support;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use otelconc::rate::{Clock, Rate, RateLimiter};
use otelconc::semaphore::Semaphore;
use otelconc_tower::{ConcurrencyLimitLayer, RateLimitLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

async fn fetch(
    client: &mut support::HyperClient,
    addr: std::net::SocketAddr,
) -> (u16, Option<String>, String) {
    let res = client
        .ready()
        .await
        .expect("ready")
        .call(support::get(addr, "/"))
        .await
        .expect("a response");
    let retry_after = res
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").to_owned());
    (res.status().as_u16(), retry_after, support::text(res).await)
}

#[tokio::test(start_paused = true)]
async fn a_shed_rate_limit_answers_429_with_retry_after_in_whole_seconds_rounded_up() {
    // One token every 2.5 s.
    let limiter = RateLimiter::builder(
        "public-api",
        Rate::every(Duration::from_millis(2500))
            .burst(1)
            .expect("a quota"),
    )
    .clock(Clock::tokio())
    .build();
    let app = Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(otelconc_tower::axum::handle_error))
            .layer(RateLimitLayer::new(limiter).shed()),
    );
    let addr = support::serve(app).await;
    let mut client = support::client();
    assert_eq!(fetch(&mut client, addr).await, (200, None, "hello".into()));
    let (status, retry_after, body) = fetch(&mut client, addr).await;
    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("3"), "2.5 s rounded up");
    assert!(body.contains("rate limited"), "{body}");
    tokio::time::advance(Duration::from_millis(1600)).await;
    let (status, retry_after, _) = fetch(&mut client, addr).await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (429, Some("1")),
        "0.9 s left"
    );
    tokio::time::advance(Duration::from_millis(900)).await;
    assert_eq!(fetch(&mut client, addr).await.0, 200);
}

#[tokio::test]
async fn a_shed_concurrency_limit_answers_503_with_its_hint() {
    let sem = Semaphore::new("busy", 1).expect("permits");
    let app = Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(otelconc_tower::axum::handle_error))
            .layer(
                ConcurrencyLimitLayer::new(sem.clone())
                    .shed()
                    .retry_after(Duration::from_millis(1500)),
            ),
    );
    let addr = support::serve(app).await;
    let mut client = support::client();
    let held = sem.try_acquire().expect("the only permit");
    let (status, retry_after, _) = fetch(&mut client, addr).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("2")));
    drop(held);
    assert_eq!(fetch(&mut client, addr).await.0, 200);
}
