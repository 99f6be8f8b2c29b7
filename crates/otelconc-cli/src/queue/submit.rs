//! `otelconc queue submit`: submits demo jobs and waits until each one is completed or
//! dead-lettered.
//!
//! Completion is read from Redis, not from the workers: the job's commit increments the
//! run's `completed` counter (and `redelivered` by its deliveries after the first) in the
//! same script that acks it, so the counter is exact whatever crashed and ran twice; a
//! dead-lettered job of this run is an entry of the queue's dead-letter stream whose
//! `job` field names the run, and its deliveries after the first count as redelivered.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use futures::{StreamExt as _, TryStreamExt as _};
use redis::aio::MultiplexedConnection;

use super::{BadFlag, Common, DemoJob, run_key};

/// How often the wait reads the run's counters.
const POLL: Duration = Duration::from_millis(20);
/// Jobs per `submit_many` unless `--batch` says otherwise.
const DEFAULT_BATCH: usize = 100;
/// The run's counters outlive it by this long, for a look with `redis-cli`.
const RUN_KEY_TTL_SECS: u64 = 24 * 3600;

/// Arguments of `otelconc queue submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    common: Common,
    /// Jobs to submit.
    #[arg(long, value_name = "N")]
    jobs: u64,
    /// Print only one JSON line:
    /// {"submitted":N,"completed":C,"dead_lettered":D,"redelivered":R,"seconds":S,"jobs_per_s":X}
    /// (what would go to stdout otherwise goes to stderr).
    #[arg(long)]
    json: bool,
    /// Jobs per batch: each batch is one `Queue::submit_many` (its `XADD`s pipelined,
    /// 1,000 per round trip, under one `send` span, so the jobs of a batch share one trace;
    /// `--batch 1` gives each job a trace of its own).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Batches in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Give up waiting after this many seconds (exit code 1); by default wait until
    /// every job is completed or dead-lettered.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
}

/// The summary line of `--json`, in this field order.
#[derive(Debug, serde::Serialize)]
struct Summary {
    submitted: u64,
    completed: u64,
    dead_lettered: u64,
    redelivered: u64,
    seconds: f64,
    jobs_per_s: f64,
}

impl SubmitArgs {
    fn check(&self) -> Result<Option<Duration>, BadFlag> {
        if self.jobs == 0 {
            return Err(BadFlag("--jobs must be at least 1".to_owned()));
        }
        if !(1..=10_000).contains(&self.batch) {
            return Err(BadFlag(format!(
                "--batch must be 1 to 10000, got {}",
                self.batch
            )));
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return Err(BadFlag(format!(
                "--concurrency must be 1 to 10000, got {}",
                self.concurrency
            )));
        }
        super::check_url(&self.common.redis)?;
        self.timeout
            .map(|t| {
                Duration::try_from_secs_f64(t)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        BadFlag(format!(
                            "--timeout must be a positive number of seconds, got {t}"
                        ))
                    })
            })
            .transpose()
    }
}

/// Where the run stands, read from Redis.
#[derive(Debug, Default)]
struct Progress {
    completed: u64,
    redelivered: u64,
    /// Job ids of this run found in the dead-letter stream.
    dead: HashSet<String>,
    /// Their deliveries after the first.
    dead_redelivered: u64,
    /// The last dead-letter entry read (the next read starts after it).
    dead_cursor: Option<String>,
}

impl Progress {
    fn done(&self) -> u64 {
        self.completed + self.dead.len() as u64
    }
}

/// The Redis server's clock in milliseconds (dead-letter ids are on it).
async fn server_ms(conn: &mut MultiplexedConnection) -> redis::RedisResult<u64> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1_000 + micros / 1_000)
}

/// Reads the run's counters and the dead letters added since the last read.
async fn refresh(
    conn: &mut MultiplexedConnection,
    run: &str,
    dead_key: &str,
    start_ms: u64,
    p: &mut Progress,
) -> redis::RedisResult<()> {
    let (completed, redelivered): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(run_key(run))
        .arg("completed")
        .arg("redelivered")
        .query_async(conn)
        .await?;
    p.completed = completed.unwrap_or(0);
    p.redelivered = redelivered.unwrap_or(0);
    loop {
        let from = match &p.dead_cursor {
            Some(id) => format!("({id}"),
            None => format!("{start_ms}-0"),
        };
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(dead_key)
            .arg(from)
            .arg("+")
            .arg("COUNT")
            .arg(1_000)
            .query_async(conn)
            .await?;
        let Some(last) = reply.ids.last() else {
            return Ok(());
        };
        p.dead_cursor = Some(last.id.clone());
        for e in &reply.ids {
            let job: Option<DemoJob> = e
                .get::<Vec<u8>>("job")
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(job) = job.filter(|j| j.run == run)
                && p.dead.insert(job.id)
            {
                let deliveries: u64 = e.get("otelconc.deliveries").unwrap_or(1);
                p.dead_redelivered += deliveries.saturating_sub(1);
            }
        }
    }
}

pub(crate) fn run(args: SubmitArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let timeout = args.check()?;
    let rt = super::runtime()?;
    let (telemetry, exit_wait) = super::telemetry(
        &rt,
        &args.common,
        "otelconc-queue-submit",
        "submit",
        args.json,
    )?;
    let handle = super::handle(&telemetry);
    let outcome: Result<(Summary, bool), Box<dyn std::error::Error>> = rt.block_on(async {
        let queue = super::connect(&args.common).await?.with_telemetry(handle);
        let mut conn = redis::Client::open(args.common.redis.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let run = format!("{:016x}", rand::random::<u64>());
        let start_ms = server_ms(&mut conn).await?;
        let n = args.jobs;
        let start = Instant::now();
        let batch = args.batch as u64;
        futures::stream::iter((0..n).step_by(args.batch))
            .map(|first| {
                // Ids unique per job: the run and the job's sequence number.
                let jobs: Vec<DemoJob> = (first..(first + batch).min(n))
                    .map(|i| DemoJob {
                        id: format!("{run}-{i}"),
                        run: run.clone(),
                    })
                    .collect();
                queue.submit_many(&jobs)
            })
            .buffer_unordered(args.concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await
            .map_err(|e| BadFlag(format!("submitting to {}: {e}", args.common.redis)))?;
        let submitted_in = start.elapsed();
        super::say(
            args.json,
            &format!(
                "otelconc queue submit: {n} jobs to {} in {:.3} s (run {run}); waiting for them",
                queue.stream_key(),
                submitted_in.as_secs_f64()
            ),
        );
        let mut p = Progress::default();
        let mut finished = true;
        loop {
            refresh(&mut conn, &run, queue.dead_letter_key(), start_ms, &mut p).await?;
            if p.done() >= n {
                break;
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                finished = false;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let seconds = start.elapsed().as_secs_f64();
        let _: redis::RedisResult<()> = redis::cmd("EXPIRE")
            .arg(run_key(&run))
            .arg(RUN_KEY_TTL_SECS)
            .query_async(&mut conn)
            .await;
        let done = p.done();
        Ok((
            Summary {
                submitted: n,
                completed: p.completed,
                dead_lettered: p.dead.len() as u64,
                redelivered: p.redelivered + p.dead_redelivered,
                seconds,
                jobs_per_s: done as f64 / seconds,
            },
            finished,
        ))
    });
    let (summary, finished) = match outcome {
        Ok(s) => s,
        Err(e) => {
            let _ = exit_wait.shut_down(&telemetry);
            return Err(e);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("otelconc queue submit: done");
        println!("  submitted       {}", summary.submitted);
        println!("  completed       {}", summary.completed);
        println!("  dead-lettered   {}", summary.dead_lettered);
        println!("  redelivered     {}", summary.redelivered);
        println!("  seconds         {:.3}", summary.seconds);
        println!("  jobs/s          {:.0}", summary.jobs_per_s);
        println!(
            "  effects: redis-cli -u {} HGETALL {}",
            args.common.redis,
            super::EFFECTS_KEY
        );
    }
    super::finish_telemetry(&telemetry, exit_wait, args.json);
    drop(rt);
    if !finished {
        eprintln!(
            "otelconc: error: {} of {} jobs still unfinished after the --timeout",
            summary.submitted - summary.completed - summary.dead_lettered,
            summary.submitted
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
