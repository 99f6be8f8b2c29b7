//! [`HttpClientLayer`]: a CLIENT span per request, its context in the request's headers.

use std::any::{Any, type_name};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_http::HeaderInjector;
use otelconc::telemetry::{SpanPolicy, Telemetry};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::concurrency::ConcurrencyLimited;
use crate::rate::RateLimited;

/// The query keys whose values `url.full` never shows (the HTTP semantic conventions'
/// list of keys that carry credentials).
const SENSITIVE_QUERY_KEYS: &[&str] = &["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Wraps an HTTP client service (hyper-util's, reqwest's through a tower adapter, any
/// `Service<http::Request<B>>`) so that each request gets a CLIENT span and carries the
/// W3C context (`traceparent`, `tracestate`, `baggage`) in its headers.
///
/// Put it right above the HTTP client, below the limit layers: the waits for a token or
/// a permit happen in their `poll_ready`, in the caller's own span (where their
/// `otelconc.*.wait` spans land), and a request they refuse is never sent, so it gets no
/// CLIENT span. Placed above them it works too (the waits still come before the span,
/// which starts in `call`), and a refusal then ends the span with an `error.type` that
/// names it.
///
/// # Spans
/// Named `{method}` (the client does not know the server's route; `HTTP` for a method
/// outside the standard ones, as the conventions say), kind CLIENT, a child
/// of the current context ([`otelconc::telemetry::current_context`], which also reads the
/// current `tracing` span with otelconc's `tracing` feature), with the HTTP semantic
/// conventions' attributes: `http.request.method` (`_OTHER` and
/// `http.request.method_original` for a method outside the standard ones),
/// `server.address` and `server.port` (from the URI, or from the `Host` header when the
/// URI is in origin form, `/path`), `url.full` (user and password replaced with
/// `REDACTED`, as are the values of the query keys the conventions name), and, when the
/// response headers arrive, `http.response.status_code`. A 4xx or 5xx response sets
/// `error.type` to the status code and the span's status to Error; a transport error sets
/// `error.type` to the error's type name ([`RateLimited`] and [`ConcurrencyLimited`]
/// refusals of the layers below are named, other boxed errors are `_OTHER`). The span
/// ends when the response headers arrive, or when the response future is dropped.
///
/// Spans follow the [`Telemetry`] handle's [`SpanPolicy`], as otelconc's primitives do:
/// by default a span is built only inside a sampled trace; outside one, the request still
/// carries the current context (an unsampled parent's trace id and flags, and baggage),
/// so the server stays in the caller's trace without spans. `SpanPolicy::Always` builds
/// one for every request (a new root outside any trace, which the sampler decides on).
///
/// # Why not a crate
/// opentelemetry-rust-contrib's `opentelemetry-instrumentation-tower` (used for the
/// server side, see [`server_layer`](super::server_layer)) has no client layer;
/// `tower-http`'s trace layer makes `tracing` spans without OpenTelemetry context
/// injection; `axum-tracing-opentelemetry` is server-only and goes through `tracing`.
/// What this layer adds on top of `opentelemetry-http`'s `HeaderInjector` and otelconc's
/// [`inject`](otelconc::telemetry::inject) is the span itself.
///
/// # Examples
/// ```
/// use otelconc_tower::http::HttpClientLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut client = ServiceBuilder::new()
///     .layer(HttpClientLayer::new())
///     .service_fn(|req: http::Request<String>| async move {
///         // hyper_util's client in a real program; an echo of the headers here.
///         Ok::<_, std::convert::Infallible>(http::Response::new(format!("{:?}", req.headers())))
///     });
/// let req = http::Request::get("http://geo.internal:8080/v1/ip/1.2.3.4").body(String::new())?;
/// let res = client.ready().await?.call(req).await?;
/// assert_eq!(res.status(), 200);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct HttpClientLayer {
    telemetry: Telemetry,
}

impl HttpClientLayer {
    /// Spans from the global tracer provider ([`Telemetry::global`], read now).
    ///
    /// # Examples
    /// See [`HttpClientLayer`].
    pub fn new() -> Self {
        Self {
            telemetry: Telemetry::global(),
        }
    }

    /// Spans from `telemetry`'s tracer, under its span policy.
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::{SpanPolicy, Telemetry};
    /// use otelconc_tower::http::HttpClientLayer;
    /// let layer = HttpClientLayer::new().telemetry(Telemetry::global().with_span_policy(SpanPolicy::Always));
    /// # let _ = layer;
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClient {
            inner,
            telemetry: self.telemetry.clone(),
        }
    }
}

/// The service an [`HttpClientLayer`] makes.
#[derive(Debug, Clone)]
pub struct HttpClient<S> {
    inner: S,
    telemetry: Telemetry,
}

impl<S> HttpClient<S> {
    /// The wrapped service.
    ///
    /// # Examples
    /// ```
    /// use otelconc_tower::http::HttpClientLayer;
    /// use tower::Layer;
    /// assert_eq!(*HttpClientLayer::new().layer(7_u8).get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn span_parent(&self) -> Option<OtelContext> {
        match self.telemetry.span_policy() {
            SpanPolicy::Never => None,
            SpanPolicy::Always => Some(otelconc::telemetry::current_context()),
            _ => otelconc::telemetry::sampled_context(),
        }
    }
}

impl<S, B, RB> Service<http::Request<B>> for HttpClient<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: fmt::Display + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let cx = match self.span_parent() {
            Some(parent) => {
                let tracer = self.telemetry.tracer();
                let (name, attrs) = request_attributes(&req);
                let span = tracer
                    .span_builder(name)
                    .with_kind(SpanKind::Client)
                    .with_attributes(attrs)
                    .start_with_context(tracer, &parent);
                Some(parent.with_span(span))
            }
            None => None,
        };
        let carried = cx
            .clone()
            .unwrap_or_else(otelconc::telemetry::current_context);
        otelconc::telemetry::inject(&carried, &mut HeaderInjector(req.headers_mut()));
        let future = match &cx {
            Some(cx) => {
                let _attached = cx.clone().attach();
                self.inner.call(req)
            }
            None => self.inner.call(req),
        };
        ResponseFuture { future, cx }
    }
}

pin_project! {
    /// The response future of an [`HttpClient`]: the inner future, inside the CLIENT
    /// span, which it ends with the response's status.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        cx: Option<OtelContext>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traced", &self.cx.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
    E: fmt::Display + 'static,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(otel) = this.cx.as_ref() else {
            return this.future.poll(cx);
        };
        let out = {
            let _attached = otel.clone().attach();
            ready!(this.future.poll(cx))
        };
        let span = otel.span();
        match &out {
            Ok(res) => {
                let status = res.status();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.is_client_error() || status.is_server_error() {
                    span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
                    span.set_status(Status::error(""));
                }
            }
            Err(e) => {
                span.set_attribute(KeyValue::new("error.type", error_type(e)));
                span.set_status(Status::error(e.to_string()));
            }
        }
        span.end();
        *this.cx = None;
        Poll::Ready(out)
    }
}

/// The span name and the request attributes of the HTTP semantic conventions.
fn request_attributes<B>(req: &http::Request<B>) -> (Cow<'static, str>, Vec<KeyValue>) {
    let mut attrs = Vec::with_capacity(5);
    let method = req.method();
    let name: Cow<'static, str> = match known_method(method) {
        Some(m) => {
            attrs.push(KeyValue::new("http.request.method", m));
            Cow::Borrowed(m)
        }
        None => {
            attrs.push(KeyValue::new("http.request.method", "_OTHER"));
            attrs.push(KeyValue::new(
                "http.request.method_original",
                method.as_str().to_owned(),
            ));
            Cow::Borrowed("HTTP")
        }
    };
    let uri = req.uri();
    // A URI in origin form (`/path`) names its server in the `Host` header instead.
    let host_header = || {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
    };
    let server = match uri.host() {
        Some(host) => Some((host.to_owned(), uri.port_u16())),
        None => host_header().map(|a| (a.host().to_owned(), a.port_u16())),
    };
    if let Some((host, port)) = server {
        attrs.push(KeyValue::new("server.address", host));
        let port = port.or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let Some(port) = port {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    attrs.push(KeyValue::new("url.full", redacted_url(uri)));
    (name, attrs)
}

fn known_method(m: &http::Method) -> Option<&'static str> {
    Some(match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::CONNECT => "CONNECT",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::PATCH => "PATCH",
        _ => return None,
    })
}

/// `uri` as `url.full`: credentials in the authority and the values of sensitive query
/// keys replaced with `REDACTED`.
fn redacted_url(uri: &http::Uri) -> String {
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(auth) = uri.authority() {
        match auth.as_str().rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("REDACTED:REDACTED@");
                out.push_str(host);
            }
            None => out.push_str(auth.as_str()),
        }
    }
    out.push_str(uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if SENSITIVE_QUERY_KEYS.contains(&k) => {
                    out.push_str(k);
                    out.push_str("=REDACTED");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// `error.type` for a transport error: the error's type name, looking inside a
/// [`BoxError`] for the refusals of this crate's layers.
fn error_type<E: 'static>(e: &E) -> String {
    let Some(boxed) = (e as &dyn Any).downcast_ref::<BoxError>() else {
        return type_name::<E>().to_owned();
    };
    if boxed.is::<RateLimited>() {
        type_name::<RateLimited>().to_owned()
    } else if boxed.is::<ConcurrencyLimited>() {
        type_name::<ConcurrencyLimited>().to_owned()
    } else if boxed.is::<otelconc::semaphore::ExceedsTotal>() {
        type_name::<otelconc::semaphore::ExceedsTotal>().to_owned()
    } else {
        "_OTHER".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn url_full_hides_credentials_and_signed_query_values() {
        let uri: http::Uri = "https://user:pw@example.com:8443/p?a=1&sig=abc&b=2"
            .parse()
            .expect("a uri");
        assert_eq!(
            redacted_url(&uri),
            "https://REDACTED:REDACTED@example.com:8443/p?a=1&sig=REDACTED&b=2"
        );
        let plain: http::Uri = "http://127.0.0.1:80/x".parse().expect("a uri");
        assert_eq!(redacted_url(&plain), "http://127.0.0.1:80/x");
    }
}
