//! The refusals as axum responses (feature `axum`): [`RateLimited`] is
//! `429 Too Many Requests` with `Retry-After`, [`ConcurrencyLimited`] is
//! `503 Service Unavailable` (with `Retry-After` when the layer has a hint), and
//! [`handle_error`] turns the boxed error of a layered service into the right one, for
//! axum's `HandleErrorLayer` (axum routes must not fail, so a layer's errors have to be
//! turned into responses there).
//!
//! # Examples
//! ```
//! use axum::{Router, error_handling::HandleErrorLayer, routing::get};
//! use otelconc::rate::{Rate, RateLimiter};
//! use otelconc_tower::RateLimitLayer;
//! use tower::ServiceBuilder;
//! # fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::new("public-api", Rate::per_second(100).burst(20)?);
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(otelconc_tower::axum::handle_error))
//!         .layer(RateLimitLayer::new(limiter).shed()),
//! );
//! # Ok(app)
//! # }
//! # app().unwrap();
//! ```

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otelconc::semaphore::ExceedsTotal;

use crate::BoxError;
use crate::concurrency::ConcurrencyLimited;
use crate::rate::RateLimited;

/// `Retry-After` in whole seconds, rounded up (a client waiting that long finds a
/// token; one waiting the rounded-down time may not).
fn retry_after(d: Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(secs)
}

impl IntoResponse for RateLimited {
    /// `429 Too Many Requests`, `Retry-After` in seconds rounded up, the message as the
    /// body.
    fn into_response(self) -> Response {
        let mut res = (StatusCode::TOO_MANY_REQUESTS, self.to_string()).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, retry_after(self.retry_after()));
        res
    }
}

impl IntoResponse for ConcurrencyLimited {
    /// `503 Service Unavailable`, with `Retry-After` (seconds, rounded up) when the
    /// layer was given a hint.
    fn into_response(self) -> Response {
        let mut res = (StatusCode::SERVICE_UNAVAILABLE, self.to_string()).into_response();
        if let Some(d) = self.retry_after() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, retry_after(d));
        }
        res
    }
}

/// The response for an error of a layered service, for `HandleErrorLayer::new`:
/// [`RateLimited`] → 429 with `Retry-After`, [`ConcurrencyLimited`] → 503, a weighted
/// request above the semaphore's total ([`ExceedsTotal`]) → 503 without
/// `Retry-After` (it will never fit), anything else → 500 with the error's message.
///
/// # Examples
/// ```
/// use axum::response::IntoResponse;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err: otelconc_tower::BoxError = "boom".into();
/// let res = otelconc_tower::axum::handle_error(err).await;
/// assert_eq!(res.status(), 500);
/// # }
/// ```
pub async fn handle_error(err: BoxError) -> Response {
    if let Some(e) = err.downcast_ref::<RateLimited>() {
        return e.into_response();
    }
    if let Some(e) = err.downcast_ref::<ConcurrencyLimited>() {
        return e.into_response();
    }
    if let Some(e) = err.downcast_ref::<ExceedsTotal>() {
        return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
    }
    (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::retry_after;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::ZERO), "0");
        assert_eq!(retry_after(Duration::from_nanos(1)), "1");
        assert_eq!(retry_after(Duration::from_secs(2)), "2");
        assert_eq!(retry_after(Duration::from_millis(2500)), "3");
    }
}
