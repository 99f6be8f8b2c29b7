//! `otelconc bench`: every primitive beside its uninstrumented peers, in one process.
//!
//! Each suite yields cases; each case has variants, the first of which is the baseline.
//! The harness builds one 2-worker tokio runtime, warms every variant up, then runs the
//! variants of a case in turn for several rounds (rotating which goes first) and reports
//! the median ns per operation of each, with its ratio to the baseline. Compare ratios
//! from one run; absolute times on a shared machine move between runs.
//!
//! `--markdown` writes the run as the repository's `docs/costs.md`: a header naming the
//! run, then per suite what it measures, a case × variant table and notes
//! ([`SuiteDoc`], kept beside each suite's code).

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::runtime::Runtime;

mod channel;
mod fan;
mod lock;
mod markdown;
mod pipeline;
mod pool;
mod providers;
mod queue;
mod rate;
mod semaphore;
mod telemetry;
mod tower;

pub(crate) use providers::BenchTelemetry;

/// Arguments of `otelconc bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Suites to run (all when none is named).
    #[arg(value_name = "SUITE")]
    suites: Vec<String>,
    /// Fewer operations and rounds: the whole run finishes in under 30 s.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line instead of a table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Write the run as markdown (docs/costs.md's format): to stdout with `--markdown`,
    /// or to FILE with `--markdown=FILE` (the tables still go to stdout then). To
    /// update the record: `otelconc bench --markdown=docs/costs.md`, a full run on a
    /// quiet machine.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "-"
    )]
    markdown: Option<PathBuf>,
    /// The Redis server of the `queue` suite; without it the suite starts a private
    /// `redis-server` from PATH on a free loopback port (`--save ''`, no AOF).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// What a suite's cases get to build their variants.
pub(crate) struct Env {
    /// Quick mode: the suite should scale its operation counts down.
    pub(crate) quick: bool,
    /// SDK providers with discarding exporters, shared by every variant that needs one.
    pub(crate) telemetry: BenchTelemetry,
    /// The Redis server of the `queue` suite, when it runs.
    pub(crate) redis_url: Option<String>,
}

impl Env {
    /// `full` operations normally, `full / 10` (at least 1,000) in quick mode.
    pub(crate) fn ops(&self, full: u64) -> u64 {
        if self.quick {
            (full / 10).max(1_000)
        } else {
            full
        }
    }
}

/// Runs `ops` operations on the runtime and returns the time they took (setup and
/// teardown outside the measured part are not counted).
pub(crate) type RunFn = Box<dyn Fn(&Runtime, u64) -> Duration>;

/// One way of doing a case's work.
pub(crate) struct Variant {
    pub(crate) name: &'static str,
    pub(crate) run: RunFn,
}

impl Variant {
    pub(crate) fn new(
        name: &'static str,
        run: impl Fn(&Runtime, u64) -> Duration + 'static,
    ) -> Self {
        Self {
            name,
            run: Box::new(run),
        }
    }
}

/// A workload and the variants that do it; the first variant is the baseline.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) ops: u64,
    pub(crate) variants: Vec<Variant>,
}

/// Builds a suite's cases.
pub(crate) type CasesFn = fn(&Env) -> Vec<Case>;

/// What a suite's section of `docs/costs.md` says besides its table.
pub(crate) struct SuiteDoc {
    /// What the suite measures: the workload and the runtime it runs on.
    pub(crate) about: &'static str,
    /// Every variant name the suite's cases use, with what it is.
    pub(crate) variants: &'static [(&'static str, &'static str)],
    /// How to read the numbers: what a gap is made of, what was ruled out.
    pub(crate) notes: &'static str,
}

/// A named family of cases.
pub(crate) struct Suite {
    pub(crate) name: &'static str,
    pub(crate) cases: CasesFn,
    pub(crate) doc: &'static SuiteDoc,
}

/// Every suite, in the order they run: (name, cases, doc).
const SUITES: &[(&str, CasesFn, &SuiteDoc)] = &[
    ("telemetry", telemetry::cases, &telemetry::DOC),
    ("channel", channel::cases, &channel::DOC),
    ("pool", pool::cases, &pool::DOC),
    ("pipeline", pipeline::cases, &pipeline::DOC),
    ("fan", fan::cases, &fan::DOC),
    ("rate", rate::cases, &rate::DOC),
    ("semaphore", semaphore::cases, &semaphore::DOC),
    ("lock", lock::cases, &lock::DOC),
    ("tower", tower::cases, &tower::DOC),
    ("queue", queue::cases, &queue::DOC),
];

fn suites() -> Vec<Suite> {
    SUITES
        .iter()
        .map(|&(name, cases, doc)| Suite { name, cases, doc })
        .collect()
}

/// The tokio worker threads every variant runs on.
const WORKERS: usize = 2;

/// One result line.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Measurement {
    pub(crate) suite: &'static str,
    pub(crate) case: &'static str,
    pub(crate) variant: &'static str,
    pub(crate) ns_per_op: f64,
    pub(crate) ops: u64,
}

#[derive(Debug)]
struct UnknownSuite(String, Vec<&'static str>);

impl fmt::Display for UnknownSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown bench suite {:?}; the suites are: {}",
            self.0,
            self.1.join(", ")
        )
    }
}

impl std::error::Error for UnknownSuite {}

pub(crate) fn run(args: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let all = suites();
    let names: Vec<&'static str> = all.iter().map(|s| s.name).collect();
    for s in &args.suites {
        if !names.contains(&s.as_str()) {
            return Err(Box::new(UnknownSuite(s.clone(), names)));
        }
    }
    let selected = |name: &str| args.suites.is_empty() || args.suites.iter().any(|n| n == name);
    let markdown_to_stdout = args
        .markdown
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    // A file that cannot be written is said now, not after the whole run.
    if let Some(path) = args.markdown.as_deref().filter(|_| !markdown_to_stdout) {
        check_writable(path)?;
    }
    // The queue suite's Redis: the one named, else a private server kept for the run.
    let mut own_redis = None;
    let redis_url = match (&args.redis, selected("queue")) {
        (Some(url), queue_selected) => {
            if queue_selected {
                queue::check_url(url)?;
            }
            Some(url.clone())
        }
        (None, true) => {
            let server = queue::RedisServer::start()?;
            let url = server.url().to_owned();
            own_redis = Some(server);
            Some(url)
        }
        (None, false) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let env = Env {
        quick: args.quick,
        telemetry: rt.block_on(async { BenchTelemetry::new() }),
        redis_url,
    };
    let rounds = if args.quick { 3 } else { 5 };
    let mut reports = Vec::new();
    for suite in all.iter().filter(|s| selected(s.name)) {
        let mut report = markdown::SuiteReport {
            name: suite.name,
            doc: suite.doc,
            results: Vec::new(),
        };
        for case in (suite.cases)(&env) {
            let results = measure(&rt, suite.name, &case, rounds);
            if args.json {
                for m in &results {
                    println!("{}", serde_json::to_string(m)?);
                }
            } else if !markdown_to_stdout {
                print_table(&results);
            }
            report.results.extend(results);
        }
        reports.push(report);
    }
    env.telemetry.shutdown();
    drop(own_redis);
    if let Some(path) = &args.markdown {
        let info = markdown::RunInfo {
            date: markdown::today(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            workers: WORKERS,
            quick: args.quick,
            rounds,
            suites: args.suites.clone(),
        };
        let text = markdown::render(&info, &reports);
        if markdown_to_stdout {
            print!("{text}");
        } else {
            std::fs::write(path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` can take the markdown at the end of the run, checked without changing
/// it: an existing file is opened for appending (nothing is written); a new one is
/// created and removed again.
fn check_writable(path: &std::path::Path) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("--markdown: cannot write {}: {e}", path.display());
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(cannot)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(cannot)?;
        std::fs::remove_file(path).map_err(cannot)
    }
}

fn measure(rt: &Runtime, suite: &'static str, case: &Case, rounds: usize) -> Vec<Measurement> {
    let warm = (case.ops / 10).max(100);
    for v in &case.variants {
        (v.run)(rt, warm);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); case.variants.len()];
    for round in 0..rounds {
        let n = case.variants.len();
        for k in 0..n {
            let i = (round + k) % n;
            let took = (case.variants[i].run)(rt, case.ops);
            samples[i].push(took.as_nanos() as f64 / case.ops as f64);
        }
    }
    case.variants
        .iter()
        .zip(samples)
        .map(|(v, mut s)| {
            s.sort_by(f64::total_cmp);
            Measurement {
                suite,
                case: case.name,
                variant: v.name,
                ns_per_op: s[s.len() / 2],
                ops: case.ops,
            }
        })
        .collect()
}

fn print_table(results: &[Measurement]) {
    let Some(base) = results.first() else { return };
    println!(
        "\n{} / {} ({} ops, median of rounds)",
        base.suite, base.case, base.ops
    );
    println!(
        "  {:<20} {:>12} {:>14} {:>9}",
        "variant", "ns/op", "ops/s", "ratio"
    );
    for m in results {
        println!(
            "  {:<20} {:>12.1} {:>14.0} {:>8.2}x",
            m.variant,
            m.ns_per_op,
            1e9 / m.ns_per_op,
            m.ns_per_op / base.ns_per_op
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{BenchTelemetry, Env, suites};

    #[test]
    fn every_suite_describes_exactly_the_variants_its_cases_run() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let _in_rt = rt.enter();
        let env = Env {
            quick: true,
            telemetry: BenchTelemetry::new(),
            redis_url: None,
        };
        for suite in suites() {
            let run: BTreeSet<&str> = (suite.cases)(&env)
                .iter()
                .flat_map(|c| c.variants.iter().map(|v| v.name))
                .collect();
            let described: BTreeSet<&str> = suite.doc.variants.iter().map(|v| v.0).collect();
            assert_eq!(run, described, "variants of suite {}", suite.name);
            assert_eq!(
                described.len(),
                suite.doc.variants.len(),
                "suite {} describes a variant twice",
                suite.name
            );
        }
        env.telemetry.shutdown();
    }
}
