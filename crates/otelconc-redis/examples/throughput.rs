//! End-to-end throughput of no-op jobs: one producer (`submit_many` in batches) and
//! `--consumers` workers in this process, against a Redis you started.
//!
//! ```sh
//! redis-server --port 6390 --save '' --appendonly yes &
//! cargo run --release -p otelconc-redis --example throughput -- redis://127.0.0.1:6390 \
//!     [--jobs 200000] [--consumers 2] [--workers 8] [--effects]
//! ```
//!
//! Prints one line: jobs, seconds, jobs/s. `--effects` gives each job an
//! `HINCRBY <queue>:effects <id> 1` applied with its commit. The queue is new each run
//! (its name has the time in it) and is deleted at the end.

use std::time::{Duration, Instant};

use otelconc_redis::{JobContext, Queue, Worker};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().filter(|a| !a.starts_with("--")).cloned() else {
        eprintln!(
            "usage: throughput REDIS_URL [--jobs N] [--consumers N] [--workers N] [--batch N] [--effects]"
        );
        std::process::exit(2);
    };
    let jobs: u64 = arg(&args, "--jobs").map_or(Ok(200_000), |v| v.parse())?;
    let consumers: usize = arg(&args, "--consumers").map_or(Ok(2), |v| v.parse())?;
    let workers: usize = arg(&args, "--workers").map_or(Ok(8), |v| v.parse())?;
    let batch: usize = arg(&args, "--batch").map_or(Ok(256), |v| v.parse())?;
    let effects = args.iter().any(|a| a == "--effects");
    let name = format!(
        "throughput-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let queue = Queue::<u64>::connect(&url, &name).await?;
    let effects_key = format!("{}:effects", queue.stream_key());
    let mut running = Vec::new();
    for _ in 0..consumers {
        let key = effects_key.clone();
        let worker = Worker::builder(queue.clone(), move |_n: u64, cx: JobContext| {
            if effects {
                cx.effect(redis::cmd("HINCRBY").arg(&key).arg(cx.id()).arg(1));
            }
            std::future::ready(Ok::<(), std::convert::Infallible>(()))
        })
        .workers(workers)
        .read_batch(batch)
        .read_block(Duration::from_millis(100))
        // The markers of a benchmark need not outlive it (the TTL costs nothing per job).
        .dedup_ttl(Duration::from_secs(60))
        .start()
        .await?;
        running.push(worker);
    }
    let start = Instant::now();
    let producer = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let chunk: Vec<u64> = (0..1000).collect();
            let mut sent = 0;
            while sent < jobs {
                let n = (jobs - sent).min(1000) as usize;
                if let Err(e) = queue.submit_many(&chunk[..n]).await {
                    eprintln!("submit_many after {sent} jobs: {e}");
                    return Err(e);
                }
                sent += n as u64;
            }
            Ok::<(), otelconc_redis::Error>(())
        })
    };
    loop {
        let done: u64 = running
            .iter()
            .map(|w| {
                let s = w.stats();
                s.completed + s.duplicates + s.dead_lettered
            })
            .sum();
        if done >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    producer.await??;
    for w in running {
        let r = w.shutdown(Duration::from_secs(10)).await;
        assert!(r.adds_up(), "{r:?}");
    }
    // UNLINK frees in the background: a hash of every job's effect is large.
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let _: () = redis::cmd("UNLINK")
        .arg(queue.stream_key())
        .arg(queue.dead_letter_key())
        .arg(&effects_key)
        .query_async(&mut conn)
        .await?;
    println!(
        "{jobs} jobs, {consumers} consumers x {workers} workers: {seconds:.3} s, {:.0} jobs/s",
        jobs as f64 / seconds
    );
    Ok(())
}
