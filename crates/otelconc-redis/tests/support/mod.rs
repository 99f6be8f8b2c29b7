//! A private `redis-server` per test: a free loopback port, its own directory, stopped
//! by its pid when dropped. A missing `redis-server` fails the test.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir =
            std::env::temp_dir().join(format!("otelconc-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a private directory");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(port, &dir, &extra);
        let server = Self {
            child,
            port,
            dir,
            extra,
        };
        server.wait_listening();
        server
    }

    /// Kills the server with SIGKILL (no shutdown, no final write) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, in the same directory, with the same
    /// arguments (so it reloads its append-only file), and waits until it listens.
    pub fn restart(&mut self) {
        self.child = spawn(self.port, &self.dir, &self.extra);
        self.wait_listening();
    }

    /// Up to 30 s: a generous bound for a loaded machine, not a threshold.
    fn wait_listening(&self) {
        let port = self.port;
        for _ in 0..3000 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on port {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test.sh installs it)")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` every 20 ms until it is true (the test's own timeout bounds it).
pub async fn until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while !check().await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `builder` reading with a short block, waits until `queue` is empty (every
/// entry committed or dead-lettered), shuts the worker down and returns its report.
pub async fn run_until_empty<J>(
    builder: otelconc_redis::WorkerBuilder<J>,
    queue: &otelconc_redis::Queue<J>,
) -> otelconc_redis::WorkerReport
where
    J: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let worker = builder
        .read_block(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    until(|| async { queue.is_empty().await.unwrap() }).await;
    worker.shutdown(Duration::from_secs(5)).await
}
