//! `otelconc`: runs a realistic workload through every otelconc primitive (`demo`) and
//! measures what the instrumentation costs against uninstrumented peers (`bench`), and
//! runs the demo's job across processes on the Redis queue (`queue`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod queue;

/// otelconc: concurrency building blocks for tokio with OpenTelemetry built in.
#[derive(Debug, Parser)]
#[command(name = "otelconc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an event-ingestion workload through every primitive, with its telemetry.
    Demo(demo::DemoArgs),
    /// Measure what the instrumentation costs, against uninstrumented peers.
    Bench(bench::BenchArgs),
    /// The demo's job on a Redis queue, across processes: `queue worker`, `queue submit`.
    Queue(queue::QueueArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Queue(args) => queue::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otelconc: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
