//! Shared by the tests: a real axum server on a free loopback port, and a real hyper
//! client to call it.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use axum::Router;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The client every test uses: hyper-util's pooled HTTP/1 client, with `String` bodies.
pub type HyperClient = Client<HttpConnector, String>;

/// Serves `app` on a free port of 127.0.0.1 in a task of the current runtime.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the server runs");
    });
    addr
}

/// A pooled client (no timers: it runs under `tokio::time::pause()` too).
pub fn client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A GET of `path` on `addr`.
pub fn get(addr: SocketAddr, path: &str) -> http::Request<String> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(String::new())
        .expect("a request")
}

/// The body of a response, as text.
pub async fn text(res: http::Response<hyper::body::Incoming>) -> String {
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}
