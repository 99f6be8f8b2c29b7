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
