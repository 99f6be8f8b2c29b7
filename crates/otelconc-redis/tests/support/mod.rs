//! A private `redis-server` per test: a free loopback port, its own directory, stopped
//! by its pid when dropped. A missing `redis-server` fails the test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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

    /// Picks a free loopback port and starts a server there. The port is free when it
    /// is picked, not when the server binds it: a server of a test running alongside
    /// may take it first, and then this one exits and the other answers on its port.
    /// So a port counts only once this very server answers on it; else another is
    /// picked.
    pub fn start_with(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free loopback port");
            // Two servers of this process never share a directory, even on one port.
            static STARTED: AtomicUsize = AtomicUsize::new(0);
            let n = STARTED.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("otelconc-redis-{}-{port}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a private directory");
            let child = spawn(port, &dir, &extra);
            let mut server = Self {
                child,
                port,
                dir,
                extra: extra.clone(),
            };
            if server.wait_listening() {
                return server;
            }
            // Dropped: killed, and its directory removed.
        }
        panic!("redis-server found no free port in 10 tries");
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
        assert!(
            self.wait_listening(),
            "port {} was taken while redis-server was down",
            self.port
        );
    }

    /// Waits until this server's own process answers on its port: true; false if
    /// another process answers there, or this one exited (the port was taken). Up to
    /// 30 s: a generous bound for a loaded machine, not a threshold.
    fn wait_listening(&mut self) -> bool {
        let port = self.port;
        for _ in 0..3000 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port))
                && let Some(pid) = process_id(stream)
            {
                if pid == self.child.id() {
                    return true;
                }
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
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

/// The `process_id` that the server on `stream` reports (`INFO server`), or `None`
/// when it gives no clear answer (still starting, say).
fn process_id(stream: TcpStream) -> Option<u32> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .ok()?;
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let len: usize = header.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut info = vec![0; len];
    reader.read_exact(&mut info).ok()?;
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))?
        .trim()
        .parse()
        .ok()
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
