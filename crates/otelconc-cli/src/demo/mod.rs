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
//! through a second reader on the same meter provider. That reader is flushed alone
//! when the work is done, so the summary never waits on the collector; exit then waits
//! for the exporter's final flush, at most one export timeout, and says so when it is
//! slow.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::metrics::reader::MetricReader as _;
use otelconc::rate::{BuildError, Rate};
use otelconc_setup::{self as setup, Export, Sampler, ShutdownError, TelemetryGuard};

mod downstream;
mod events;
mod faults;
mod progress;
mod report;
pub(crate) mod signals;
mod summary;
mod workload;

use faults::Faults;
use workload::{Accounting, Settings, Source};

/// Events in a default run.
const DEFAULT_EVENTS: u64 = 20_000;
/// Events in a `--quick` run.
const QUICK_EVENTS: u64 = 2_000;
/// How long exit waits for the telemetry exporter before it says so: a flush to a
/// reachable collector or to the local files takes less.
const QUIET_WAIT: Duration = Duration::from_millis(250);
/// About how many traces a run keeps by default (the sampler ratio follows from it and
/// from the number of events, see [`sampling_ratio`]).
const TARGET_TRACES: f64 = 300.0;

/// Arguments of `otelconc demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of generated events [default: 20000; 2000 with --quick].
    #[arg(long, value_name = "N", conflicts_with = "input")]
    events: Option<u64>,
    /// Read events from a JSON-lines file instead of generating them. Blank lines are
    /// skipped; a line that is not UTF-8, not a JSON object, or whose `id`, `user` or
    /// `kind` is not a string is a malformed event. A regular file is read once more
    /// first, to count its events for the trace sampler (~300 traces a run); from a pipe
    /// such as /dev/stdin the count is unknown and the sampler keeps 1.5% of events, as
    /// for 20000.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Seed of the generator and of the fault plan: same seed, same run.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Workers of the CPU worker pool.
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: usize,
    /// Downstream API quota, lookups per second (the rate limiter), at most 1e9.
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
    /// A small run that finishes in a few seconds (2000 generated events; not with
    /// --input, whose file sets the run's size).
    #[arg(long, conflicts_with = "input")]
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
                "{flag} must be a positive number of seconds, from 1 ns to 2^64 s, got {v}"
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
        // The limiter's burst: a hundredth of a second's quota, 1 to 1000 tokens.
        let burst = (self.rate / 100.0).clamp(1.0, 1_000.0) as u32;
        let quota = Rate::per_second(self.rate)
            .burst(burst)
            .map_err(|e| match e {
                BuildError::RateTooHigh(_) => BadFlag(format!(
                    "--rate must be at most 1e9 lookups per second, got {}",
                    self.rate
                )),
                BuildError::WindowTooLong { .. } => BadFlag(format!(
                    "--rate is too low: one lookup would wait more than 208 days, got {}",
                    self.rate
                )),
                _ => BadFlag(format!(
                    "--rate must be a positive number of lookups per second, got {}",
                    self.rate
                )),
            })?;
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
            quota,
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

/// The trace ratio that keeps about [`TARGET_TRACES`] traces of a run of `events`
/// events; when the count is unknown (input from a pipe), that of a default run.
fn sampling_ratio(events: Option<u64>) -> f64 {
    (TARGET_TRACES / events.unwrap_or(DEFAULT_EVENTS).max(1) as f64).min(1.0)
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (settings, duration) = args.settings()?;
    let source = args.source();
    // The events the run will see, when known before it starts: the sampler's ratio
    // and the progress total follow from it.
    let expected = match &source {
        Source::Generated { events } => Some(*events),
        Source::File(path) => events::count_events(path)?,
    };

    quiet_injected_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The summary's reader: collects often enough to see peak depths, and is flushed
    // alone when the work is done (the exporter's reader may wait on a collector).
    let summary = summary::SummaryReader::default();
    let summary_reader = PeriodicReader::builder(summary.clone())
        .with_interval(Duration::from_millis(500))
        .build();
    let mut builder = setup::builder()
        .default_service_name("otelconc")
        .with_metric_reader(summary_reader.clone());
    if std::env::var_os(setup::OTEL_TRACES_SAMPLER).is_none() {
        builder = builder.sampler(Sampler::ParentBasedTraceIdRatio(sampling_ratio(expected)));
    }
    if let Some(dir) = &args.telemetry_dir {
        builder = builder.files_dir(dir);
    }
    let exit_wait = ExitWait::of(&builder.config()?);
    // Inside the runtime: the gRPC exporter needs one to connect.
    let telemetry = runtime.block_on(async { builder.install() })?;
    println!("otelconc demo: telemetry to {}", telemetry.destination());

    let acct = Arc::new(Accounting::default());
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
        let done = {
            let progress_stop = progress_stop.clone();
            move || {
                progress_stop.cancel();
                // Local and quick. It fails only when telemetry is disabled (the reader
                // has no provider); the summary then says no metrics were collected.
                let _ = summary_reader.force_flush();
            }
        };
        let r = workload::run(
            settings,
            source,
            acct.clone(),
            stop.stop_intake.clone(),
            stop.abort.clone(),
            done,
        )
        .await;
        progress_stop.cancel(); // a run that failed before it was done
        let _ = shown.await;
        stop.abort.cancel();
        r
    });
    let (outcome, primitives) = match outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = exit_wait.shut_down(&telemetry);
            return Err(e);
        }
    };

    print!("{}", report::render(&acct, &outcome, &summary.snapshot()));
    // Flushes traces and metrics, while the primitives are alive for the final
    // collection; then they and the runtime go.
    let flushed = exit_wait.shut_down(&telemetry);
    runtime.block_on(async move { drop(primitives) });
    drop(runtime);
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

/// How long exit waits for the telemetry exporter's final flush.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExitWait {
    deadline: Duration,
    otlp: bool,
}

impl ExitWait {
    /// One export timeout for OTLP; the guard's default deadline for the local files.
    pub(crate) fn of(config: &setup::Config) -> Self {
        match config.export {
            Export::Otlp { timeout, .. } => Self {
                deadline: timeout,
                otlp: true,
            },
            _ => Self {
                deadline: setup::DEFAULT_SHUTDOWN_DEADLINE,
                otlp: false,
            },
        }
    }

    /// Flushes and shuts telemetry down, returning by the deadline whatever the
    /// collector does; says it is waiting when that takes longer than [`QUIET_WAIT`].
    pub(crate) fn shut_down(self, telemetry: &TelemetryGuard) -> Result<(), ShutdownError> {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn(move || {
                let _ = tx.send(telemetry.shutdown_with_deadline(self.deadline));
            });
            if let Ok(flushed) = rx.recv_timeout(QUIET_WAIT) {
                return flushed;
            }
            eprintln!(
                "otelconc: waiting at most {:?} for the telemetry exporter to finish{}",
                self.deadline,
                if self.otlp {
                    " (the export timeout, OTEL_EXPORTER_OTLP_TIMEOUT)"
                } else {
                    ""
                }
            );
            // The thread sends by the deadline, unless it panicked (the scope passes
            // that on).
            rx.recv().unwrap_or(Ok(()))
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampling_ratio_keeps_about_300_traces_whatever_the_run_size() {
        assert_eq!(sampling_ratio(Some(3)), 1.0);
        assert_eq!(sampling_ratio(Some(0)), 1.0);
        assert_eq!(sampling_ratio(Some(300)), 1.0);
        assert_eq!(sampling_ratio(Some(3_000)), 0.1);
        assert_eq!(sampling_ratio(Some(DEFAULT_EVENTS)), 0.015);
        assert_eq!(sampling_ratio(None), sampling_ratio(Some(DEFAULT_EVENTS)));
    }
}
