//! The trace joins across a real HTTP hop: a CLIENT span from `HttpClientLayer`, the
//! SERVER span of `server_layer` as its child, asserted from exported spans.
//!
//! The server layer reads the global tracer provider, so this binary installs the test
//! providers as the globals, once, in its only test.

mod support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry::Value;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use otelconc_testkit::{SpanData, TestTelemetry};
use otelconc_tower::http::{HttpClientLayer, server_layer};
use tower::{Service, ServiceBuilder, ServiceExt};

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Waits (by yielding, never by the clock) until `n` SERVER spans are exported: the
/// server ends its span as its response future is dropped, which can be just after the
/// client has the response.
async fn server_spans(t: &TestTelemetry, n: usize) -> Vec<SpanData> {
    for _ in 0..100_000 {
        let spans: Vec<_> = t
            .spans()
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .collect();
        if spans.len() >= n {
            return spans;
        }
        tokio::task::yield_now().await;
    }
    panic!("the server spans were never exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_span_has_the_server_span_as_its_child_in_one_trace() {
    let t = TestTelemetry::new();
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    opentelemetry::global::set_tracer_provider(t.tracer_provider().clone());

    let app = Router::new()
        .route("/users/{id}", get(|| async { "alice" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "injected") }),
        )
        .layer(server_layer().expect("the server layer"));
    let addr = support::serve(app).await;
    let mut client = ServiceBuilder::new()
        .layer(HttpClientLayer::new().telemetry(t.telemetry()))
        .service(support::client());

    let root = t.root("caller");
    let root_sc = root.span().span_context().clone();
    let (ok, failed) = async {
        let ok = client
            .ready()
            .await
            .expect("ready")
            .call(support::get(addr, "/users/42"));
        let ok = ok.await.expect("a response");
        let failed = client
            .ready()
            .await
            .expect("ready")
            .call(support::get(addr, "/fail"));
        let failed = failed.await.expect("a response");
        (ok, failed)
    }
    .with_context(root.clone())
    .await;
    assert_eq!((ok.status().as_u16(), failed.status().as_u16()), (200, 500));
    // Outside any sampled trace no CLIENT span is built (the default span policy).
    let outside = client
        .ready()
        .await
        .expect("ready")
        .call(support::get(addr, "/users/7"));
    assert_eq!(outside.await.expect("a response").status(), 200);
    root.span().end();

    let servers = server_spans(&t, 3).await;
    let clients: Vec<_> = t
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 2, "one CLIENT span per request in the trace");
    for client_span in &clients {
        assert_eq!(client_span.name, "GET");
        assert_eq!(client_span.span_context.trace_id(), root_sc.trace_id());
        assert_eq!(client_span.parent_span_id, root_sc.span_id());
        let server = servers
            .iter()
            .find(|s| s.parent_span_id == client_span.span_context.span_id())
            .expect("a SERVER span child of the CLIENT span");
        assert_eq!(server.span_context.trace_id(), root_sc.trace_id());
        assert!(server.parent_span_is_remote);
        assert_eq!(
            attr(client_span, "http.request.method"),
            Some(&Value::from("GET"))
        );
        assert_eq!(
            attr(client_span, "server.address"),
            Some(&Value::from("127.0.0.1"))
        );
        assert_eq!(
            attr(client_span, "server.port"),
            Some(&Value::I64(i64::from(addr.port())))
        );
        assert_eq!(
            attr(server, "http.request.method"),
            Some(&Value::from("GET"))
        );
    }
    let by_route = |route: &str| {
        servers
            .iter()
            .find(|s| attr(s, "http.route") == Some(&Value::from(route.to_owned())))
            .unwrap_or_else(|| panic!("a SERVER span of {route}"))
    };
    let user = by_route("/users/{id}");
    assert_eq!(user.name, "GET /users/{id}");
    let user_client = clients
        .iter()
        .find(|c| c.span_context.span_id() == user.parent_span_id)
        .expect("its CLIENT span");
    assert_eq!(
        attr(user_client, "url.full"),
        Some(&Value::from(format!("http://{addr}/users/42")))
    );
    assert_eq!(
        attr(user_client, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(attr(user_client, "error.type"), None);
    assert_eq!(user_client.status, Status::Unset);

    let fail = by_route("/fail");
    let fail_client = clients
        .iter()
        .find(|c| c.span_context.span_id() == fail.parent_span_id)
        .expect("its CLIENT span");
    assert_eq!(
        attr(fail_client, "http.response.status_code"),
        Some(&Value::I64(500))
    );
    assert_eq!(attr(fail_client, "error.type"), Some(&Value::from("500")));
    assert!(matches!(fail_client.status, Status::Error { .. }));
    assert_eq!(attr(fail, "error.type"), Some(&Value::from("500")));
    assert!(matches!(fail.status, Status::Error { .. }));

    // The request made outside the trace still reached the server, in a trace of its
    // own (the server's sampler decided), with no CLIENT span.
    let outside_server = servers
        .iter()
        .find(|s| s.span_context.trace_id() != root_sc.trace_id())
        .expect("the SERVER span of the request outside the trace");
    assert!(
        !clients
            .iter()
            .any(|c| c.span_context.span_id() == outside_server.parent_span_id)
    );
}

/// What the CLIENT span says of requests that are not a plain GET that succeeds: a
/// method outside the standard ones, the port a scheme implies, a refusal of a limit
/// layer below and another transport error, a response future dropped before its
/// response. No globals: the spans come from a handle with `SpanPolicy::Always`.
#[tokio::test(start_paused = true)]
async fn client_spans_name_odd_methods_refusals_and_errors() {
    use otelconc::rate::{Clock, Rate, RateLimiter};
    use otelconc::telemetry::SpanPolicy;
    use otelconc_tower::rate::RateLimitLayer;

    let t = TestTelemetry::new();
    let layer =
        HttpClientLayer::new().telemetry(t.telemetry().with_span_policy(SpanPolicy::Always));
    let ok = tower::service_fn(|_req: http::Request<String>| async {
        Ok::<_, std::io::Error>(http::Response::new(String::new()))
    });
    let mut client = ServiceBuilder::new().layer(layer.clone()).service(ok);
    let purge = http::Request::builder()
        .method(http::Method::from_bytes(b"PURGE").unwrap())
        .uri("https://cache.internal/item?sig=abc&x=1")
        .body(String::new())
        .unwrap();
    client.ready().await.unwrap().call(purge).await.unwrap();

    // Refused by a shed-mode rate limit below, after its one token is spent. On the
    // paused clock: on the real one, a stall of a second between the two requests would
    // refill the token and neither would be refused.
    let limiter = RateLimiter::builder("edge", Rate::per_second(1).burst(1).unwrap())
        .clock(Clock::tokio())
        .build();
    let mut limited = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(RateLimitLayer::new(limiter).shed())
        .service(tower::service_fn(|_req: http::Request<String>| async {
            Ok::<_, std::io::Error>(http::Response::new(String::new()))
        }));
    for _ in 0..2 {
        let req = http::Request::get("http://geo:8080/limited")
            .body(String::new())
            .unwrap();
        let _ = limited.ready().await.unwrap().call(req).await;
    }

    // A transport error of a concrete type, and a boxed one that is none of the layers'.
    let mut io_failing = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_req: http::Request<String>| async {
            Err::<http::Response<String>, _>(std::io::Error::other("reset"))
        }));
    let req = http::Request::get("http://geo/io")
        .body(String::new())
        .unwrap();
    assert!(io_failing.ready().await.unwrap().call(req).await.is_err());
    let mut boxed_failing = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_req: http::Request<String>| async {
            Err::<http::Response<String>, otelconc_tower::BoxError>("dns".into())
        }));
    let req = http::Request::get("http://geo/boxed")
        .body(String::new())
        .unwrap();
    assert!(
        boxed_failing
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .is_err()
    );

    // A 4xx is the client's error: on the CLIENT span it sets error.type and Error.
    let mut not_found = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_req: http::Request<String>| async {
            let mut res = http::Response::new(String::new());
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok::<_, std::io::Error>(res)
        }));
    let req = http::Request::get("http://geo/missing")
        .body(String::new())
        .unwrap();
    let res = not_found.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 404);

    // A request in origin form (no scheme or authority in its URI) names its server in
    // the Host header: address and port come from there.
    for (host, path) in [
        ("geo.internal:8080", "/origin-form"),
        ("[::1]", "/origin-v6"),
    ] {
        let req = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(String::new())
            .unwrap();
        not_found.ready().await.unwrap().call(req).await.unwrap();
    }

    // Dropped before the response comes: the span still ends.
    let mut hanging = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_req: http::Request<String>| {
            std::future::pending::<Result<http::Response<String>, std::io::Error>>()
        }));
    let req = http::Request::get("http://geo/hang")
        .body(String::new())
        .unwrap();
    let fut = hanging.ready().await.unwrap().call(req);
    drop(fut);

    let spans = t.spans();
    let by_path = |path: &str| {
        spans
            .iter()
            .filter(|s| match attr(s, "url.full") {
                Some(Value::String(u)) => u.as_str().contains(path),
                _ => false,
            })
            .collect::<Vec<_>>()
    };
    let purge = by_path("/item");
    assert_eq!(purge.len(), 1);
    let purge = purge[0];
    assert_eq!(purge.span_kind, SpanKind::Client);
    assert_eq!(
        purge.name, "HTTP",
        "the semantic conventions' name for _OTHER"
    );
    assert_eq!(
        attr(purge, "http.request.method"),
        Some(&Value::from("_OTHER"))
    );
    assert_eq!(
        attr(purge, "http.request.method_original"),
        Some(&Value::from("PURGE"))
    );
    assert_eq!(
        attr(purge, "server.address"),
        Some(&Value::from("cache.internal"))
    );
    assert_eq!(attr(purge, "server.port"), Some(&Value::I64(443)));
    assert_eq!(
        attr(purge, "url.full"),
        Some(&Value::from("https://cache.internal/item?sig=REDACTED&x=1"))
    );

    let limited = by_path("/limited");
    assert_eq!(limited.len(), 2);
    let refused: Vec<_> = limited
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "one of the two was refused");
    let refusal = attr(refused[0], "error.type").map(|v| v.as_str().into_owned());
    assert!(
        refusal
            .as_deref()
            .is_some_and(|t| t.ends_with("RateLimited")),
        "the refusal is named: {refusal:?}"
    );

    let io = by_path("/io");
    assert_eq!(
        attr(io[0], "error.type"),
        Some(&Value::from(std::any::type_name::<std::io::Error>()))
    );
    assert!(matches!(io[0].status, Status::Error { .. }));
    let boxed = by_path("/boxed");
    assert_eq!(attr(boxed[0], "error.type"), Some(&Value::from("_OTHER")));

    let missing = by_path("/missing");
    assert_eq!(attr(missing[0], "error.type"), Some(&Value::from("404")));
    assert_eq!(
        attr(missing[0], "http.response.status_code"),
        Some(&Value::I64(404))
    );
    assert!(matches!(missing[0].status, Status::Error { .. }));

    let origin = by_path("/origin-form");
    assert_eq!(
        attr(origin[0], "server.address"),
        Some(&Value::from("geo.internal"))
    );
    assert_eq!(attr(origin[0], "server.port"), Some(&Value::I64(8080)));
    let v6 = by_path("/origin-v6");
    assert_eq!(attr(v6[0], "server.address"), Some(&Value::from("[::1]")));
    assert_eq!(attr(v6[0], "server.port"), None, "no port in the header");

    let hang = by_path("/hang");
    assert_eq!(hang.len(), 1, "a dropped response future ends its span");
    assert_eq!(attr(hang[0], "http.response.status_code"), None);
}
