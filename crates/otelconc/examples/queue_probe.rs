//! One-off measurements behind the queue evaluation in `src/channel/queue.rs`:
//! crossfire against async-channel for the CPU a parked receiver burns while idle,
//! delivery latency at low load, and 1p1c time and CPU per message. Numbers depend on
//! the machine; run both back to back and compare.
//!
//! `cargo run --release -p otelconc --example queue_probe [idle|latency|throughput]...`
//! (all three when none is named). Run it under `taskset -c 0` to see one core.

use std::time::{Duration, Instant};

/// Process CPU time (user + system) so far, from `/proc/self/stat` (clock ticks).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((field(11) + field(12)) * 10)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn idle() {
    for name in ["async-channel", "crossfire"] {
        let rt = runtime();
        let before = cpu();
        rt.block_on(async {
            let task = if name == "crossfire" {
                let (tx, rx) = crossfire::mpmc::bounded_async::<u64>(1024);
                let t = tokio::spawn(async move { rx.recv().await.is_ok() });
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(tx);
                t
            } else {
                let (tx, rx) = async_channel::bounded::<u64>(1024);
                let t = tokio::spawn(async move { rx.recv().await.is_ok() });
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(tx);
                t
            };
            assert!(!task.await.unwrap());
        });
        println!(
            "idle {name}: process CPU over 10 s with a parked receiver: {:?}",
            cpu() - before
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency() {
    const N: usize = 3000;
    for name in ["async-channel", "crossfire"] {
        let rt = runtime();
        let mut lat: Vec<Duration> = rt.block_on(async {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            if name == "crossfire" {
                let (tx, rx) = crossfire::mpmc::bounded_async::<Instant>(1024);
                let r = tokio::spawn(async move {
                    let mut v = Vec::with_capacity(N);
                    while let Ok(t) = rx.recv().await {
                        v.push(t.elapsed());
                    }
                    v
                });
                for _ in 0..N {
                    tick.tick().await;
                    tx.send(Instant::now()).await.unwrap();
                }
                drop(tx);
                r.await.unwrap()
            } else {
                let (tx, rx) = async_channel::bounded::<Instant>(1024);
                let r = tokio::spawn(async move {
                    let mut v = Vec::with_capacity(N);
                    while let Ok(t) = rx.recv().await {
                        v.push(t.elapsed());
                    }
                    v
                });
                for _ in 0..N {
                    tick.tick().await;
                    tx.send(Instant::now()).await.unwrap();
                }
                drop(tx);
                r.await.unwrap()
            }
        });
        lat.sort();
        println!(
            "latency {name}: 1 msg/ms, {N} msgs: p50 {:?} p99 {:?} max {:?}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
}

fn throughput() {
    const N: u64 = 2_000_000;
    for name in ["async-channel", "crossfire"] {
        for cap in [1024usize, 16, 1] {
            let rt = runtime();
            let (c0, t0) = (cpu(), Instant::now());
            rt.block_on(async {
                if name == "crossfire" {
                    let (tx, rx) = crossfire::mpmc::bounded_async::<u64>(cap);
                    let p = tokio::spawn(async move {
                        for i in 0..N {
                            tx.send(i).await.unwrap();
                        }
                    });
                    let mut n = 0;
                    while rx.recv().await.is_ok() {
                        n += 1;
                    }
                    p.await.unwrap();
                    assert_eq!(n, N);
                } else {
                    let (tx, rx) = async_channel::bounded::<u64>(cap);
                    let p = tokio::spawn(async move {
                        for i in 0..N {
                            tx.send(i).await.unwrap();
                        }
                    });
                    let mut n = 0;
                    while rx.recv().await.is_ok() {
                        n += 1;
                    }
                    p.await.unwrap();
                    assert_eq!(n, N);
                }
            });
            let (wall, cpu_used) = (t0.elapsed(), cpu() - c0);
            println!(
                "1p1c {name} cap {cap}: {:.1} ns/msg, CPU {:.1} ns/msg",
                wall.as_nanos() as f64 / N as f64,
                cpu_used.as_nanos() as f64 / N as f64
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = args.is_empty();
    let want = |s: &str| all || args.iter().any(|a| a == s);
    if want("throughput") {
        throughput();
    }
    if want("latency") {
        latency();
    }
    if want("idle") {
        idle();
    }
}
