//! `otelconc demo`: an event-ingestion service built from every otelconc primitive.
//!
//! Events come from a seeded generator (or `--input`, JSON lines), flow through the
//! ingest channel, two pipeline shards (parse, enrich with three downstream lookups under
//! a semaphore and a rate limiter, a CPU job on the worker pool), a fan-in and a sink
//! whose writes are guarded by a select with timeout (see [`workload`]). Faults are
//! injected at `--failure-rate` so every error path shows up in a default run.
//!
//! Telemetry goes where `otelconc_setup` sends it (OTLP from the `OTEL_*` variables, or
//! local OTLP/JSON files), and the closing summary is computed from the same metrics,
//! through a second reader on the same meter provider.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use opentelemetry_sdk::metrics::PeriodicReader;
use otelconc_setup::{self as setup, Sampler};

mod events;
mod faults;
mod progress;
mod report;
mod signals;
mod summary;
mod workload;

use faults::Faults;
use workload::{Accounting, Settings, Source};

/// Events in a default run.
const DEFAULT_EVENTS: u64 = 20_000;
/// Events in a `--quick` run.
const QUICK_EVENTS: u64 = 2_000;
/// About how many traces a run keeps by default (the sampler ratio follows from it).
const TARGET_TRACES: f64 = 300.0;

/// Arguments of `otelconc demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of generated events [default: 20000; 2000 with --quick].
    #[arg(long, value_name = "N", conflicts_with = "input")]
    events: Option<u64>,
    /// Read events from a JSON-lines file instead of generating them.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Seed of the generator and of the fault plan: same seed, same run.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Workers of the CPU worker pool.
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: usize,
    /// Downstream API quota, lookups per second (the rate limiter).
    #[arg(long, value_name = "PER_SEC", default_value_t = 5_000.0)]
    rate: f64,
    /// Downstream connections (the semaphore) and events enriched at once per shard.
    #[arg(long, value_name = "N", default_value_t = 32)]
    concurrency: usize,
    /// Sink writers (and connections of the simulated store they write to).
    #[arg(long, value_name = "N", default_value_t = 8)]
    writers: usize,
    /// Probability of each injected fault (malformed event, failing lookup, panicking
    /// job, stalled write), 0 to 1.
    #[arg(long, value_name = "P", default_value_t = 0.01)]
    failure_rate: f64,
    /// Stop taking events after this many seconds (then drain).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// A small run that finishes in a few seconds.
    #[arg(long)]
    quick: bool,
    /// How long a stop (Ctrl-C, --duration) may drain before in-flight work is aborted,
    /// in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    drain_deadline: f64,
    /// Directory of the local OTLP/JSON telemetry files, used when no OTLP endpoint is
    /// configured (default ./otelconc-telemetry).
    #[arg(long, env = setup::OTELCONC_TELEMETRY_DIR, value_name = "DIR")]
    telemetry_dir: Option<PathBuf>,
}

/// A flag with a value it cannot take.
#[derive(Debug)]
struct BadFlag(String);

impl std::fmt::Display for BadFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFlag {}

fn seconds(flag: &str, v: f64) -> Result<Duration, BadFlag> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            BadFlag(format!(
                "{flag} must be a positive number of seconds, got {v}"
            ))
        })
}

impl DemoArgs {
    fn settings(&self) -> Result<(Settings, Option<Duration>), BadFlag> {
        if !(1..=1_024).contains(&self.workers) {
            return Err(BadFlag(format!(
                "--workers must be 1 to 1024, got {}",
                self.workers
            )));
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return Err(BadFlag(format!(
                "--concurrency must be 1 to 10000, got {}",
                self.concurrency
            )));
        }
        if !(1..=1_024).contains(&self.writers) {
            return Err(BadFlag(format!(
                "--writers must be 1 to 1024, got {}",
                self.writers
            )));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(BadFlag(format!(
                "--rate must be a positive number of lookups per second, got {}",
                self.rate
            )));
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(BadFlag(format!(
                "--failure-rate must be between 0 and 1, got {}",
                self.failure_rate
            )));
        }
        if self.events == Some(0) {
            return Err(BadFlag("--events must be at least 1".to_owned()));
        }
        let duration = self
            .duration
            .map(|d| seconds("--duration", d))
            .transpose()?;
        let settings = Settings {
            workers: self.workers,
            rate: self.rate,
            concurrency: self.concurrency,
            writers: self.writers,
            faults: Faults::new(self.seed, self.failure_rate),
            write_timeout: Duration::from_millis(100),
            drain_deadline: seconds("--drain-deadline", self.drain_deadline)?,
        };
        Ok((settings, duration))
    }

    fn source(&self) -> Source {
        match &self.input {
            Some(path) => Source::File(path.clone()),
            None => Source::Generated {
                events: self.events.unwrap_or(if self.quick {
                    QUICK_EVENTS
                } else {
                    DEFAULT_EVENTS
                }),
            },
        }
    }
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (settings, duration) = args.settings()?;
    let source = args.source();
    let expected = match &source {
        Source::Generated { events } => Some(*events),
        Source::File(_) => None,
    };

    quiet_injected_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The summary's reader: collects often enough to see peak depths.
    let summary = summary::SummaryReader::default();
    let mut builder = setup::builder()
        .default_service_name("otelconc")
        .with_metric_reader(
            PeriodicReader::builder(summary.clone())
                .with_interval(Duration::from_millis(500))
                .build(),
        );
    if std::env::var_os(setup::OTEL_TRACES_SAMPLER).is_none() {
        let ratio = (TARGET_TRACES / expected.unwrap_or(DEFAULT_EVENTS) as f64).min(1.0);
        builder = builder.sampler(Sampler::ParentBasedTraceIdRatio(ratio));
    }
    if let Some(dir) = &args.telemetry_dir {
        builder = builder.files_dir(dir);
    }
    // Inside the runtime: the gRPC exporter needs one to connect.
    let telemetry = runtime.block_on(async { builder.install() })?;
    println!("otelconc demo: telemetry to {}", telemetry.destination());

    let acct = Arc::new(Accounting::default());
    let meter_provider = telemetry.meter_provider().cloned();
    let stop = signals::Stop::default();
    let outcome = runtime.block_on(async {
        stop.watch();
        if let Some(d) = duration {
            let s = stop.stop_intake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                s.cancel();
            });
        }
        let progress_stop = tokio_util::sync::CancellationToken::new();
        let shown = tokio::spawn(progress::show(
            acct.clone(),
            expected,
            progress_stop.clone(),
        ));
        let flush = move || {
            if let Some(mp) = meter_provider {
                // A failed flush shows up in the guard's export statistics.
                let _ = mp.force_flush();
            }
        };
        let r = workload::run(
            settings,
            source,
            acct.clone(),
            stop.stop_intake.clone(),
            stop.abort.clone(),
            flush,
        )
        .await;
        progress_stop.cancel();
        let _ = shown.await;
        stop.abort.cancel();
        r
    });
    // Flushes traces and metrics; the summary reader gets the final collection too.
    let flushed = telemetry.shutdown();
    drop(runtime);
    let outcome = outcome?;

    print!("{}", report::render(&acct, &outcome, &summary.snapshot()));
    let stats = telemetry.stats();
    println!(
        "telemetry: {} spans exported, {} dropped, {} failed exports; written to {}",
        stats.spans_exported,
        stats.spans_dropped(),
        stats.failed_exports,
        telemetry.destination()
    );
    if let Err(e) = flushed {
        eprintln!("otelconc: warning: {e}");
    }
    if let Some(e) = &outcome.input_error {
        eprintln!("otelconc: error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    let accepted = acct.accepted.load(Ordering::Relaxed);
    if acct.finished() > accepted {
        eprintln!("otelconc: error: more events ended than were accepted");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps the default panic report for every panic but the injected ones, which the
/// worker pool turns into job errors and the report counts.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied());
        if !msg.is_some_and(|m| m.starts_with(workload::INJECTED_PANIC)) {
            default(info);
        }
    }));
}
