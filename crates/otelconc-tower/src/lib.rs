//! otelconc's rate limiter and semaphore as tower layers, axum responses for their
//! refusals, and HTTP spans that join one trace across the hop.
//!
//! Use this crate if you want an [`otelconc::rate::RateLimiter`] or
//! [`otelconc::semaphore::Semaphore`] where Rust services put limits: in a
//! `tower::ServiceBuilder`, on an axum `Router`, in front of a tonic server or under a
//! tower-based HTTP client. The limits keep their semantics (FIFO waits, cancellation
//! that gives back, runtime resizing) and their telemetry (calls and tokens or permits
//! by outcome, waits, wait spans) with no glue; the layers export no metric of their
//! own.
//!
//! | module | what it is |
//! |---|---|
//! | [`rate`] | [`RateLimitLayer`]: one token per request; wait (optionally bounded) or shed with [`RateLimited`] and its `retry_after` |
//! | [`concurrency`] | [`ConcurrencyLimitLayer`]: permits held while a request is in flight, optionally weighted per request; wait (optionally bounded) or shed with [`ConcurrencyLimited`] |
//! | `http` (feature `http`) | a CLIENT span layer that injects the W3C context into requests, and the SERVER span layer that continues it |
//! | `axum` (feature `axum`) | the refusals as responses: `429` + `Retry-After`, `503`; a `HandleErrorLayer`-ready function |
//!
//! # Why a separate crate
//! `otelconc` depends on the `opentelemetry` API crate and tokio only. The layers here
//! need `tower-service` and `tower-layer`, and the HTTP pieces `http`, axum and the
//! server instrumentation crate; keeping them in an integration crate (as
//! opentelemetry-rust keeps `opentelemetry-http` and its instrumentation crates apart
//! from the API) keeps them out of the dependency tree of users who do not want them.
//!
//! # Errors
//! The services' error type is [`BoxError`], tower's convention, so they stack with
//! tower's own layers (`HandleErrorLayer`, `Timeout`, `LoadShed`). The refusals are
//! concrete types to downcast to: [`RateLimited`], [`ConcurrencyLimited`], and
//! [`otelconc::semaphore::ExceedsTotal`] for a weighted request that could never fit.
//!
//! # Examples
//! A client stack: at most 8 requests in flight, 50 per second, each sent in a CLIENT
//! span whose context travels in the request's headers (feature `http`):
//! ```
//! # #[cfg(feature = "http")] {
//! use otelconc::rate::{Rate, RateLimiter};
//! use otelconc::semaphore::Semaphore;
//! use otelconc_tower::{ConcurrencyLimitLayer, RateLimitLayer, http::HttpClientLayer};
//! use tower::ServiceBuilder;
//! # fn client() -> Result<(), Box<dyn std::error::Error>> {
//! # let hyper_client = tower::service_fn(|_req: http::Request<String>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! # });
//! let client = ServiceBuilder::new()
//!     .layer(ConcurrencyLimitLayer::new(Semaphore::new("geo-api", 8)?))
//!     .layer(RateLimitLayer::new(RateLimiter::new("geo-api", Rate::per_second(50).burst(10)?)))
//!     .layer(HttpClientLayer::new())
//!     .service(hyper_client);
//! # let _ = client;
//! # Ok(())
//! # }
//! # client().unwrap();
//! # }
//! ```
//!
//! [`RateLimitLayer`]: rate::RateLimitLayer
//! [`RateLimited`]: rate::RateLimited
//! [`ConcurrencyLimitLayer`]: concurrency::ConcurrencyLimitLayer
//! [`ConcurrencyLimited`]: concurrency::ConcurrencyLimited
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod concurrency;
#[cfg(feature = "http")]
pub mod http;
pub mod rate;

pub use concurrency::{ConcurrencyLimitLayer, ConcurrencyLimited};
pub use rate::{RateLimitLayer, RateLimited};

/// The error type of the services here, as in tower: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
