//! `otelconc demo`: an event-ingestion workload through every primitive.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `otelconc demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of generated events.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    println!("otelconc demo: {} events", args.events);
    Ok(ExitCode::SUCCESS)
}

mod events;
mod faults;
mod progress;
mod signals;
mod summary;
