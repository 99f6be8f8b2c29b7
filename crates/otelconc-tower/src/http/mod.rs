//! Trace context over HTTP (feature `http`): a CLIENT span per outgoing request with
//! its context injected into the headers ([`HttpClientLayer`]), and a SERVER span per
//! incoming request that continues it ([`server_layer`]).
//!
//! The context travels as W3C `traceparent`, `tracestate` and `baggage`, through
//! otelconc's [`inject`](otelconc::telemetry::inject) and `opentelemetry-http`'s
//! `HeaderInjector` on the client, and the global propagator on the server, so a
//! program installs the W3C propagators (`otelconc-setup` does).
//!
//! # Examples
//! The server, three lines with axum (feature `axum`):
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! # fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let app = Router::new()
//!     .route("/geo/{ip}", get(|| async { "NZ" }))
//!     .layer(otelconc_tower::http::server_layer()?);
//! # Ok(app)
//! # }
//! # app().unwrap();
//! # }
//! ```
//! The client: any `Service<http::Request<B>>` (here a stand-in for hyper-util's client):
//! ```
//! use otelconc_tower::http::HttpClientLayer;
//! use tower::ServiceBuilder;
//! # let hyper_client = tower::service_fn(|_req: http::Request<String>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! # });
//! let client = ServiceBuilder::new().layer(HttpClientLayer::new()).service(hyper_client);
//! # let _ = client;
//! ```

mod client;
mod server;

pub use client::{HttpClient, HttpClientLayer, ResponseFuture};
/// The server instrumentation crate, to configure a server layer beyond
/// [`server_layer`] (custom route or attribute extractors, query redaction).
pub use opentelemetry_instrumentation_tower;
pub use server::{ServerErrorType, ServerLayer, server_layer};
