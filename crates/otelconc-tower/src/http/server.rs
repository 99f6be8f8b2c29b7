//! [`server_layer`]: the SERVER span layer of `opentelemetry-instrumentation-tower`,
//! with `error.type` on 5xx responses.

use opentelemetry::KeyValue;
#[cfg(feature = "axum")]
use opentelemetry_instrumentation_tower::http::extractors::AxumMatchedPathExtractor as RouteExtractor;
use opentelemetry_instrumentation_tower::http::extractors::NoOpExtractor;
#[cfg(not(feature = "axum"))]
use opentelemetry_instrumentation_tower::http::extractors::NoRouteExtractor as RouteExtractor;
use opentelemetry_instrumentation_tower::http::extractors::ResponseAttributeExtractor;
use opentelemetry_instrumentation_tower::http::server::{Layer, LayerBuilder};

/// The layer [`server_layer`] builds.
pub type ServerLayer = Layer<RouteExtractor, NoOpExtractor, ServerErrorType>;

/// Sets `error.type` to the status code on 5xx responses, on the SERVER span and the
/// `http.server.request.duration` metric, as the HTTP semantic conventions ask (a 4xx is
/// the client's error, not the server's).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrorType;

impl<B> ResponseAttributeExtractor<B> for ServerErrorType {
    fn extract_attributes(&self, res: &http::Response<B>) -> Vec<KeyValue> {
        let status = res.status();
        if status.is_server_error() {
            vec![KeyValue::new("error.type", status.as_str().to_owned())]
        } else {
            Vec::new()
        }
    }
}

/// A SERVER span and the HTTP server metrics for every request, continuing the trace
/// whose context the request carries: `opentelemetry-instrumentation-tower`'s layer
/// (opentelemetry-rust-contrib, on the same OpenTelemetry 0.33), configured with
/// [`ServerErrorType`].
///
/// That crate does what this one would otherwise write: it extracts `traceparent`,
/// `tracestate` and `baggage` with the global propagator, starts a SERVER span named
/// `{method} {route}` (`http.route` from axum's matched path with the `axum` feature,
/// `{method}` alone without it) with `http.request.method`, `url.scheme`, `url.path`,
/// `http.route` and `http.response.status_code`, sets status Error on 5xx, makes the
/// span current for the handler, and records `http.server.request.duration` and
/// `http.server.active_requests`. What it does differently from otelconc:
/// - it reads the **global** tracer and meter providers when the layer is built (it has
///   no public way to inject providers), so build it after the SDK is installed;
/// - it extracts with the global propagator directly, without the extra `traceparent`
///   shape check of [`otelconc::telemetry::extract`];
/// - it builds a span for every request (the sampler decides), where otelconc's own
///   spans follow a [`SpanPolicy`](otelconc::telemetry::SpanPolicy);
/// - it does not set `server.address`/`server.port` (they would come from the `Host`
///   header, which the client controls).
///
/// With axum, apply it with `Router::layer` after the routes, so the matched path is
/// known.
///
/// # Errors
/// Whatever the instrumentation crate's builder returns (it has no failing path in
/// version 0.19).
///
/// # Examples
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::get};
/// # fn app() -> Result<Router, Box<dyn std::error::Error>> {
/// let app = Router::new()
///     .route("/users/{id}", get(|| async { "alice" }))
///     .layer(otelconc_tower::http::server_layer()?);
/// # Ok(app)
/// # }
/// # app().unwrap();
/// # }
/// ```
pub fn server_layer() -> Result<ServerLayer, opentelemetry_instrumentation_tower::Error> {
    LayerBuilder::builder()
        .with_route_extractor(RouteExtractor)
        // The body type only names which `ResponseAttributeExtractor` impl to check;
        // ServerErrorType has one for every body.
        .with_response_extractor::<_, ()>(ServerErrorType)
        .build()
}
