//! The downstream services the enrich stage looks events up in: an axum server on a
//! free loopback port, a route per service, and the client stack that calls it.
//!
//! ```text
//! lookup ─▶ ConcurrencyLimit "downstream-connections" ─▶ RateLimit "downstream-quota"
//!        ─▶ HTTP CLIENT span (traceparent, baggage) ─▶ hyper client ─▶ 127.0.0.1:port
//!        ─▶ SERVER span "GET /{service}/{seq}" ─▶ handler (latency and faults from the plan)
//! ```
//!
//! The handlers take the latency the fault plan draws for (event, service) and answer
//! `503 Service Unavailable` when the plan says the lookup fails, so a failing lookup is
//! a real 5xx on the wire, on both spans and in the HTTP metrics.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use otelconc::rate::RateLimiter;
use otelconc::semaphore::Semaphore;
use otelconc_tower::http::HttpClientLayer;
use otelconc_tower::{BoxError, ConcurrencyLimitLayer, RateLimitLayer};
use tokio::task::JoinHandle;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

use super::faults::Faults;

/// The services, in the order of their `which` in the fault plan.
pub(crate) const SERVICES: [&str; 3] = ["users", "geo", "fraud"];

/// The client stack every lookup goes through (cloned per lookup: the clones share the
/// semaphore, the limiter and the connection pool).
pub(crate) type Downstream =
    BoxCloneSyncService<http::Request<String>, http::Response<String>, BoxError>;

/// The running server; aborted when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the downstream server on a free loopback port, with SERVER spans from the
/// global tracer provider (installed before the run starts).
pub(crate) async fn start(faults: Faults) -> Result<Server, Box<dyn std::error::Error>> {
    let app = SERVICES
        .iter()
        .enumerate()
        .fold(Router::new(), |app, (which, service)| {
            app.route(
                &format!("/{service}/{{seq}}"),
                get(move |state: State<Faults>, path: Path<u64>| lookup(state, path, which as u64)),
            )
        })
        .with_state(faults)
        .layer(otelconc_tower::http::server_layer()?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // The server only stops by being aborted; an accept loop error ends it early,
        // and the lookups then fail with connection errors, which the summary shows.
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server { addr, task })
}

/// One lookup: the plan's latency, then the answer or a 503.
async fn lookup(
    State(faults): State<Faults>,
    Path(seq): Path<u64>,
    which: u64,
) -> (StatusCode, String) {
    let latency = faults.latency(seq, which, 0.002, 0.7);
    tokio::time::sleep(Duration::from_secs_f64(latency)).await;
    if faults.lookup_fails(seq, which) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "injected fault: downstream unavailable".to_owned(),
        )
    } else {
        (
            StatusCode::OK,
            seq.wrapping_mul(31).wrapping_add(which).to_string(),
        )
    }
}

/// The client stack: a connection permit (held until the response is read), a quota
/// token, a CLIENT span whose context travels in the headers, then hyper's pooled
/// HTTP/1 client. The body is read inside the stack, so the permit covers it.
pub(crate) fn client(connections: Semaphore, quota: RateLimiter) -> Downstream {
    let hyper: Client<HttpConnector, String> = Client::builder(TokioExecutor::new()).build_http();
    let read_body = tower::service_fn(move |req: http::Request<String>| {
        let mut hyper = hyper.clone();
        async move {
            let res = hyper.ready().await?.call(req).await?;
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok::<_, BoxError>(http::Response::from_parts(parts, text))
        }
    });
    let stack = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(connections))
        .layer(RateLimitLayer::new(quota))
        .layer(HttpClientLayer::new())
        .service(read_body);
    BoxCloneSyncService::new(stack)
}

/// GETs `/{service}/{seq}` and returns the score it answers; a non-2xx status or a
/// transport error is the lookup's failure.
pub(crate) async fn lookup_score(
    mut client: Downstream,
    addr: SocketAddr,
    which: usize,
    seq: u64,
) -> Result<u64, String> {
    let service = SERVICES[which];
    let req = http::Request::get(format!("http://{addr}/{service}/{seq}"))
        .body(String::new())
        .map_err(|e| format!("{service} lookup: bad request: {e}"))?;
    let res = client
        .ready()
        .await
        .map_err(|e| format!("{service} lookup failed: {e}"))?
        .call(req)
        .await
        .map_err(|e| format!("{service} lookup failed: {e}"))?;
    if !res.status().is_success() {
        return Err(format!(
            "{service} lookup failed: {} from downstream",
            res.status().as_u16()
        ));
    }
    res.body()
        .trim()
        .parse()
        .map_err(|e| format!("{service} lookup: bad answer {:?}: {e}", res.body()))
}
