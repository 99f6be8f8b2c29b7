//! `otelconc queue`: the demo's job on the Redis queue of `otelconc-redis`, across
//! processes.
//!
//! `queue worker` runs a consumer process; `queue submit` submits jobs, waits until each
//! one is completed or dead-lettered, and prints a summary. The demo job's effect is
//! `HINCRBY otelconc:demo:effects <job id> 1`, added with `JobContext::effect`, so it is
//! applied in the same Redis script as the job's ack and its dedup marker: once per job,
//! however often the job ran. The same commit adds to the submit run's own counters
//! (`otelconc:demo:run:<run>`: `completed`, and `redelivered`, the deliveries after the
//! first), which is how `queue submit` learns that its jobs are done; dead-lettered jobs
//! it finds in the queue's dead-letter stream.
//!
//! Both commands set telemetry up as `otelconc demo` does (OTLP from the `OTEL_*`
//! variables, else the local OTLP/JSON files) and hand the providers to the queue as a
//! `Telemetry` handle (spans and metrics alike), so a job's `send` span in the
//! submitting process and its `process` span in the worker that ran it are one trace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use opentelemetry::metrics::noop::NoopMeterProvider;
use opentelemetry::trace::noop::NoopTracerProvider;
use otelconc::telemetry::Telemetry;
use otelconc_setup::{self as setup, TelemetryGuard};
use serde::{Deserialize, Serialize};

use crate::demo::ExitWait;

mod submit;
mod worker;

/// The hash holding every demo job's effect: field = job id, value = times applied.
pub(crate) const EFFECTS_KEY: &str = "otelconc:demo:effects";
/// The queue name both commands use unless `--queue` says otherwise.
const DEFAULT_QUEUE: &str = "demo";

/// The counters of one submit run, which the job's commit increments.
pub(crate) fn run_key(run: &str) -> String {
    format!("otelconc:demo:run:{run}")
}

/// The demo job: its id (unique per job: the submit run's id and a sequence number) and
/// the run that submitted it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DemoJob {
    /// `<run>-<n>`.
    pub(crate) id: String,
    /// The submit run, whose counters the commit increments.
    pub(crate) run: String,
}

/// Arguments of `otelconc queue`.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Run a consumer process for the demo's job until Ctrl-C or SIGTERM (then drain and
    /// print the report).
    Worker(worker::WorkerArgs),
    /// Submit demo jobs, wait until every one is completed or dead-lettered, print a
    /// summary.
    Submit(submit::SubmitArgs),
}

/// What both commands share: where Redis is, which queue, where telemetry goes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The Redis server, e.g. redis://127.0.0.1:6379.
    #[arg(long, value_name = "URL")]
    redis: String,
    /// The queue's name (its stream is `otelconc:{NAME}`).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_QUEUE)]
    queue: String,
    /// Directory of the local OTLP/JSON telemetry files, used when no OTLP endpoint is
    /// configured (default ./otelconc-telemetry).
    #[arg(long, env = setup::OTELCONC_TELEMETRY_DIR, value_name = "DIR")]
    telemetry_dir: Option<PathBuf>,
}

pub(crate) fn run(args: QueueArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match args.command {
        QueueCommand::Worker(a) => worker::run(a),
        QueueCommand::Submit(a) => submit::run(a),
    }
}

/// A flag with a value it cannot take.
#[derive(Debug)]
pub(crate) struct BadFlag(pub(crate) String);

impl std::fmt::Display for BadFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFlag {}

/// The 2-worker runtime both commands run on.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Installs the SDK providers as `otelconc demo` does (`service` unless
/// `OTEL_SERVICE_NAME` names another) and says where telemetry goes.
fn telemetry(
    rt: &tokio::runtime::Runtime,
    common: &Common,
    service: &str,
    command: &str,
    to_stderr: bool,
) -> Result<(TelemetryGuard, ExitWait), Box<dyn std::error::Error>> {
    let mut builder = setup::builder().default_service_name(service);
    if let Some(dir) = &common.telemetry_dir {
        builder = builder.files_dir(dir);
    }
    let exit_wait = ExitWait::of(&builder.config()?);
    // Inside the runtime: the gRPC exporter needs one to connect.
    let guard = rt.block_on(async { builder.install() })?;
    say(
        to_stderr,
        &format!(
            "otelconc queue {command}: telemetry to {}",
            guard.destination()
        ),
    );
    Ok((guard, exit_wait))
}

/// The handle the queue and its worker record through: the providers `guard` built
/// (with the SDK's bound instruments, as `otelconc-setup` builds them), or the no-op
/// ones when telemetry is off (`OTEL_SDK_DISABLED=true`).
fn handle(guard: &TelemetryGuard) -> Telemetry {
    match (guard.meter_provider(), guard.tracer_provider()) {
        (Some(mp), Some(tp)) => Telemetry::new(mp, tp).with_bound_instruments(),
        (Some(mp), None) => Telemetry::new(mp, &NoopTracerProvider::new()).with_bound_instruments(),
        (None, Some(tp)) => Telemetry::new(&NoopMeterProvider::new(), tp),
        (None, None) => Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new()),
    }
}

/// Flushes and shuts telemetry down (at most one export timeout), then prints what was
/// exported.
fn finish_telemetry(guard: &TelemetryGuard, exit_wait: ExitWait, to_stderr: bool) {
    let flushed = exit_wait.shut_down(guard);
    let stats = guard.stats();
    say(
        to_stderr,
        &format!(
            "telemetry: {} spans exported, {} dropped, {} failed exports; written to {}",
            stats.spans_exported,
            stats.spans_dropped(),
            stats.failed_exports,
            guard.destination()
        ),
    );
    if let Err(e) = flushed {
        eprintln!("otelconc: warning: {e}");
    }
}

/// A line to stdout, or to stderr when stdout is kept for `--json`.
fn say(to_stderr: bool, line: &str) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// A redis URL that parses, or a clear error naming the flag.
fn check_url(url: &str) -> Result<(), BadFlag> {
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| BadFlag(format!("--redis {url:?} is not a Redis URL: {e}")))
}

/// Connects to the queue, naming the URL when Redis cannot be reached.
async fn connect(common: &Common) -> Result<otelconc_redis::Queue<DemoJob>, BadFlag> {
    otelconc_redis::Queue::<DemoJob>::connect(&common.redis, &common.queue)
        .await
        .map_err(|e| BadFlag(format!("cannot use Redis at {}: {e}", common.redis)))
}
