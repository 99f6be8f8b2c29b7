//! The rate limiter, one test binary: behaviour (exact admission counts on tokio's
//! paused clock, waits, rate changes, cancellation, reservations, bad input), telemetry
//! (metrics and wait spans, as an exporter receives them) and properties (random
//! operation sequences, threads on the real clock).

use std::time::Duration;

use otelconc::rate::{Clock, Rate, RateLimiter};
use tokio::time::Instant;

mod behaviour;
mod props;
mod telemetry;

fn limiter(rate: f64, burst: u32) -> RateLimiter {
    RateLimiter::builder(
        "test",
        Rate::per_second(rate).burst(burst).expect("valid quota"),
    )
    .clock(Clock::tokio())
    .build()
}

/// Spawns one `acquire` and returns how long it took from now.
fn timed_acquire(l: &RateLimiter) -> tokio::task::JoinHandle<Duration> {
    let l = l.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        l.acquire().await.expect("one token");
        start.elapsed()
    })
}

fn drain(l: &RateLimiter) -> u64 {
    let mut n = 0;
    while l.try_acquire().is_ok() {
        n += 1;
    }
    n
}
