//! `otelconc queue worker`: one consumer process of the demo's queue.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use otelconc_redis::{JobContext, Worker, WorkerReport};

use super::{BadFlag, Common, DemoJob, EFFECTS_KEY, run_key};
use crate::demo::signals::Stop;

/// Arguments of `otelconc queue worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    common: Common,
    /// Jobs run at once (the worker pool's workers).
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: usize,
    /// Probability that a delivery fails (the handler returns an error), 0 to 1; a job
    /// failing `--max-deliveries` times goes to the dead-letter stream.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    failure_rate: f64,
    /// Simulated work per job, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    job_ms: u64,
    /// Seconds an entry may stay idle (no heartbeat) before another consumer reclaims
    /// it: how soon the jobs of a crashed worker run again.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    visibility_timeout: f64,
    /// Deliveries of a job before it is dead-lettered.
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_deliveries: u64,
    /// How long a stop (Ctrl-C, SIGTERM) lets running jobs finish before they are
    /// released to other consumers, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    drain_deadline: f64,
}

fn seconds(flag: &str, v: f64) -> Result<Duration, BadFlag> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| *d >= Duration::from_millis(1))
        .ok_or_else(|| {
            BadFlag(format!(
                "{flag} must be a number of seconds, at least 0.001, got {v}"
            ))
        })
}

impl WorkerArgs {
    fn check(&self) -> Result<(Duration, Duration), BadFlag> {
        if !(1..=1_024).contains(&self.workers) {
            return Err(BadFlag(format!(
                "--workers must be 1 to 1024, got {}",
                self.workers
            )));
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(BadFlag(format!(
                "--failure-rate must be between 0 and 1, got {}",
                self.failure_rate
            )));
        }
        if self.max_deliveries == 0 {
            return Err(BadFlag("--max-deliveries must be at least 1".to_owned()));
        }
        super::check_url(&self.common.redis)?;
        Ok((
            seconds("--visibility-timeout", self.visibility_timeout)?,
            seconds("--drain-deadline", self.drain_deadline)?,
        ))
    }
}

/// The demo job: works `job_ms`, fails at `failure_rate`, else adds its effect and the
/// run's counters to the commit.
async fn handle(
    job: DemoJob,
    cx: JobContext,
    job_ms: u64,
    failure_rate: f64,
) -> Result<(), String> {
    if job_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job_ms)).await;
    }
    if failure_rate > 0.0 && rand::random::<f64>() < failure_rate {
        return Err(format!(
            "injected failure (job {}, delivery {})",
            job.id,
            cx.attempt()
        ));
    }
    cx.effect(redis::cmd("HINCRBY").arg(EFFECTS_KEY).arg(&job.id).arg(1));
    let run = run_key(&job.run);
    cx.effect(redis::cmd("HINCRBY").arg(&run).arg("completed").arg(1));
    if cx.attempt() > 1 {
        cx.effect(
            redis::cmd("HINCRBY")
                .arg(&run)
                .arg("redelivered")
                .arg(cx.attempt() - 1),
        );
    }
    Ok(())
}

pub(crate) fn run(args: WorkerArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (visibility, drain) = args.check()?;
    let rt = super::runtime()?;
    let (telemetry, exit_wait) =
        super::telemetry(&rt, &args.common, "otelconc-queue-worker", "worker", false)?;
    let (job_ms, failure_rate) = (args.job_ms, args.failure_rate);
    let outcome: Result<WorkerReport, Box<dyn std::error::Error>> = rt.block_on(async {
        let queue = super::connect(&args.common)
            .await?
            .with_telemetry(super::handle(&telemetry));
        let stream = queue.stream_key().to_owned();
        let worker = Worker::builder(queue, move |job: DemoJob, cx: JobContext| {
            handle(job, cx, job_ms, failure_rate)
        })
        .workers(args.workers)
        .visibility_timeout(visibility)
        .max_deliveries(args.max_deliveries)
        .start()
        .await
        .map_err(|e| BadFlag(format!("cannot start the worker: {e}")))?;
        println!(
            "otelconc queue worker: consuming {stream} as consumer {} with {} workers; \
             Ctrl-C or SIGTERM to stop",
            worker.consumer(),
            args.workers
        );
        let stop = Stop::default();
        stop.watch();
        stop.stop_intake.cancelled().await;
        let report = tokio::select! {
            r = worker.shutdown(drain) => r,
            () = stop.abort.cancelled() => {
                // A second signal: leave at once; what this worker held is reclaimed
                // by the others after the visibility timeout.
                eprintln!("otelconc: aborted; jobs in flight stay pending for other workers");
                std::process::exit(130);
            }
        };
        stop.abort.cancel();
        Ok(report)
    });
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            let _ = exit_wait.shut_down(&telemetry);
            return Err(e);
        }
    };
    print!("{}", render(&report));
    super::finish_telemetry(&telemetry, exit_wait, false);
    drop(rt);
    if !report.adds_up() {
        eprintln!("otelconc: error: the worker's report does not add up");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn render(r: &WorkerReport) -> String {
    let rows = [
        ("received", r.received),
        ("  reclaimed", r.reclaimed),
        ("completed", r.completed),
        ("duplicates", r.duplicates),
        ("retried", r.retried),
        ("dead-lettered", r.dead_lettered),
        ("  decode errors", r.decode_errors),
        ("released", r.released),
        ("leases lost", r.leases_lost),
    ];
    let mut out = String::from("otelconc queue worker: stopped\n");
    for (k, v) in rows {
        out.push_str(&format!("  {k:<16} {v}\n"));
    }
    out
}
