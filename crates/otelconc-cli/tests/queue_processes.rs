//! `otelconc queue` as separate processes against a real `redis-server` (one per test,
//! on a free loopback port, in a private directory, stopped by its pid): a worker killed
//! with SIGKILL mid-job, workers killed and restarted at random under 10,000 jobs, and
//! one trace per job across the submitting and the running process (with rotel).
//!
//! Every wait is "eventually" with a generous bound; nothing here measures time.

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otelconc_testkit::Rotel;
use rand::{Rng, SeedableRng};
use redis::Commands;

const EFFECTS: &str = "otelconc:demo:effects";
/// The bound of every "eventually" below.
const WAIT: Duration = Duration::from_secs(120);

/// A private `redis-server`; a missing server fails the test.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(name: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir =
            std::env::temp_dir().join(format!("otelconc-cli-{name}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a private directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        let server = Self { child, port, dir };
        let start = Instant::now();
        while redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(start.elapsed() < WAIT, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a connection to the test's redis-server")
    }

    fn effects(&self) -> HashMap<String, i64> {
        self.conn().hgetall(EFFECTS).expect("HGETALL")
    }

    /// Entries delivered and not yet acknowledged, over every consumer.
    fn pending(&self) -> u64 {
        let v: redis::Value = redis::cmd("XPENDING")
            .arg("otelconc:{demo}")
            .arg("otelconc")
            .query(&mut self.conn())
            .expect("XPENDING");
        match v {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 0,
            },
            _ => 0,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `otelconc queue <args>` with a clean OTel environment plus `envs`; stdout and stderr
/// go to `<dir>/<log>.out` / `.err`.
fn otelconc(dir: &Path, log: &str, envs: &[(&str, String)], args: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otelconc"));
    cmd.arg("queue").args(args);
    for var in otelconc_testkit::rotel::PROGRAM_ENV {
        cmd.env_remove(var);
    }
    cmd.env("OTELCONC_TELEMETRY_DIR", dir.join("telemetry"));
    cmd.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.stdout(File::create(dir.join(format!("{log}.out"))).expect("a log file"));
    cmd.stderr(File::create(dir.join(format!("{log}.err"))).expect("a log file"));
    cmd.spawn().expect("run otelconc")
}

/// `otelconc queue submit` of `jobs` jobs to the Redis at `url`, with a JSON summary and
/// a 120 s bound on its wait; logs to `<dir>/submit.out` / `.err`.
fn submit_jobs(dir: &Path, url: &str, jobs: usize) -> Child {
    otelconc(
        dir,
        "submit",
        &[],
        &[
            "submit",
            "--redis",
            url,
            "--jobs",
            &jobs.to_string(),
            "--json",
            "--timeout",
            "120",
        ],
    )
}

fn log(dir: &Path, log: &str) -> String {
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{log}.{ext}")));
    format!(
        "--- {log} stdout:\n{}\n--- {log} stderr:\n{}",
        read("out").unwrap_or_default(),
        read("err").unwrap_or_default()
    )
}

/// Waits for `child` to exit (at most [`WAIT`]) and returns whether it succeeded.
fn wait_exit(child: &mut Child, what: &str) -> bool {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.success();
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("{what} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM: the worker drains, prints its report and exits.
fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

/// The `--json` line of a finished `queue submit`.
fn summary(dir: &Path, log_name: &str) -> serde_json::Value {
    let out = std::fs::read_to_string(dir.join(format!("{log_name}.out"))).expect("its stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stdout with --json: {out}"
    );
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn field(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("no integer {k} in {v}"))
}

/// Every effect applied exactly once, one per submitted job.
fn assert_effects_once(server: &Server, jobs: usize) {
    let effects = server.effects();
    assert_eq!(effects.len(), jobs, "one effect field per job");
    let twice: Vec<_> = effects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "effects applied more than once: {twice:?}"
    );
}

#[test]
fn a_worker_killed_mid_job_has_its_jobs_reclaimed_by_another_and_applied_once() {
    let server = Server::start("sigkill");
    let dir = server.dir.clone();
    let url = server.url();
    let jobs = 40;
    // A slow worker: every job takes 300 ms, four at a time.
    let mut first = otelconc(
        &dir,
        "first",
        &[],
        &[
            "worker",
            "--redis",
            &url,
            "--workers",
            "4",
            "--job-ms",
            "300",
            "--visibility-timeout",
            "1",
        ],
    );
    let mut submit = submit_jobs(&dir, &url, jobs);
    // Killed once it has finished some jobs and holds others.
    eventually("the first worker completes some jobs", || {
        server.effects().len() >= 4
    });
    assert!(server.pending() > 0, "the first worker holds entries");
    first.kill().expect("SIGKILL the first worker");
    let _ = first.wait();
    let done_before = server.effects().len();
    assert!(done_before < jobs, "killed mid-run");
    let mut second = otelconc(
        &dir,
        "second",
        &[],
        &["worker", "--redis", &url, "--visibility-timeout", "1"],
    );
    assert!(
        wait_exit(&mut submit, "queue submit"),
        "queue submit failed\n{}",
        log(&dir, "submit")
    );
    let s = summary(&dir, "submit");
    assert_eq!(field(&s, "submitted"), jobs as u64, "{s}");
    assert_eq!(field(&s, "completed"), jobs as u64, "{s}");
    assert_eq!(field(&s, "dead_lettered"), 0, "{s}");
    assert!(
        field(&s, "redelivered") > 0,
        "the killed worker's jobs ran again: {s}"
    );
    assert_effects_once(&server, jobs);
    terminate(&mut second);
    assert!(
        wait_exit(&mut second, "the second worker"),
        "{}",
        log(&dir, "second")
    );
    let report = std::fs::read_to_string(dir.join("second.out")).unwrap_or_default();
    let reclaimed: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("reclaimed"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reclaimed line in the report:\n{report}"));
    assert!(
        reclaimed > 0,
        "the second worker reclaimed the first's entries:\n{report}"
    );
    assert_eq!(server.pending(), 0);
}

#[test]
fn ten_thousand_jobs_complete_once_while_workers_are_killed_and_restarted_at_random() {
    let server = Server::start("chaos");
    let dir = server.dir.clone();
    let url = server.url();
    let jobs = 10_000;
    let worker_args = [
        "worker",
        "--redis",
        &url,
        "--visibility-timeout",
        "1",
        // A job reclaimed from several killed workers in a row must not be dead-lettered.
        "--max-deliveries",
        "50",
    ];
    let mut started = 0;
    let mut spawn = |dir: &Path| {
        started += 1;
        otelconc(dir, &format!("worker{started}"), &[], &worker_args)
    };
    let mut workers: Vec<Child> = (0..3).map(|_| spawn(&dir)).collect();
    let mut submit = submit_jobs(&dir, &url, jobs);
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut kills = 0;
    let start = Instant::now();
    while submit.try_wait().expect("try_wait").is_none() {
        assert!(start.elapsed() < WAIT, "queue submit did not finish");
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
        if kills < 12 {
            let i = rng.random_range(0..workers.len());
            workers[i].kill().expect("SIGKILL a worker");
            let _ = workers[i].wait();
            kills += 1;
            workers[i] = spawn(&dir);
        }
    }
    assert!(
        wait_exit(&mut submit, "queue submit"),
        "queue submit failed\n{}",
        log(&dir, "submit")
    );
    let s = summary(&dir, "submit");
    assert_eq!(field(&s, "completed"), jobs as u64, "{s}");
    assert_eq!(field(&s, "dead_lettered"), 0, "{s}");
    assert!(kills > 0, "no worker was killed while the jobs ran");
    assert!(
        field(&s, "redelivered") > 0,
        "the killed workers' jobs ran again: {s}"
    );
    assert_effects_once(&server, jobs);
    for w in &mut workers {
        terminate(w);
    }
    for w in &mut workers {
        assert!(wait_exit(w, "a worker"), "a worker failed to stop cleanly");
    }
    assert_eq!(server.pending(), 0, "nothing left pending");
}

#[test]
fn a_job_submitted_in_one_process_and_run_in_another_is_one_trace() {
    let rotel = Rotel::start();
    let server = Server::start("trace");
    let dir = server.dir.clone();
    let url = server.url();
    let otlp = |service: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint_for("grpc")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_SERVICE_NAME", service.to_owned()),
        ]
    };
    let mut worker = otelconc(
        &dir,
        "worker",
        &otlp("queue-worker-e2e"),
        &["worker", "--redis", &url],
    );
    let mut submit = otelconc(
        &dir,
        "submit",
        &otlp("queue-submit-e2e"),
        // One job per batch: each job its own send span, its own trace.
        &[
            "submit", "--redis", &url, "--jobs", "5", "--batch", "1", "--json",
        ],
    );
    assert!(
        wait_exit(&mut submit, "queue submit"),
        "queue submit failed\n{}",
        log(&dir, "submit")
    );
    assert_eq!(field(&summary(&dir, "submit"), "completed"), 5);
    terminate(&mut worker);
    assert!(
        wait_exit(&mut worker, "the worker"),
        "{}",
        log(&dir, "worker")
    );
    rotel.expect("five send and five process spans", WAIT, |spans, _| {
        spans.iter().filter(|s| s.name == "send demo").count() == 5
            && spans.iter().filter(|s| s.name == "process demo").count() == 5
    });
    let spans = rotel.spans();
    for send in spans.iter().filter(|s| s.name == "send demo") {
        assert_eq!(send.service_name(), Some("queue-submit-e2e"));
        assert_eq!(send.kind, "SPAN_KIND_PRODUCER");
        assert!(
            send.parent_span_id.is_empty(),
            "each job's trace starts at its send"
        );
        let process: Vec<_> = spans
            .iter()
            .filter(|p| p.name == "process demo" && p.trace_id == send.trace_id)
            .collect();
        assert_eq!(process.len(), 1, "one process span in the send's trace");
        let p = process[0];
        assert_eq!(p.service_name(), Some("queue-worker-e2e"));
        assert_eq!(p.kind, "SPAN_KIND_CONSUMER");
        assert_eq!(p.parent_span_id, send.span_id, "process is a child of send");
    }
    // Two spans per job: the worker's pool adds no job span under process.
    assert!(!spans.iter().any(|j| j.name == "otelconc.pool.job"));
}

/// Runs `otelconc queue <args>` to the end; (success, stderr).
fn run_to_end(dir: &Path, name: &str, args: &[&str]) -> (bool, String) {
    let mut child = otelconc(dir, name, &[], args);
    let ok = wait_exit(&mut child, name);
    let err = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
    (ok, err)
}

#[test]
fn bad_input_is_a_clear_error_and_a_failing_exit() {
    let dir = std::env::temp_dir().join(format!("otelconc-cli-badinput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    // A loopback port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let nowhere = format!("redis://127.0.0.1:{port}");
    for (name, args, says) in [
        (
            "unreachable-submit",
            vec!["submit", "--redis", &nowhere, "--jobs", "1"],
            "cannot use Redis at",
        ),
        (
            "unreachable-worker",
            vec!["worker", "--redis", &nowhere],
            "cannot use Redis at",
        ),
        (
            "not-a-url",
            vec!["worker", "--redis", "localhost:6379"],
            "is not a Redis URL",
        ),
        (
            "failure-rate",
            vec!["worker", "--redis", &nowhere, "--failure-rate", "2"],
            "--failure-rate must be between 0 and 1",
        ),
        (
            "zero-jobs",
            vec!["submit", "--redis", &nowhere, "--jobs", "0"],
            "--jobs must be at least 1",
        ),
        ("no-jobs", vec!["submit", "--redis", &nowhere], "--jobs"),
    ] {
        let (ok, err) = run_to_end(&dir, name, &args);
        assert!(!ok, "{name}: exit code 0");
        assert!(
            err.contains(says),
            "{name}: stderr does not say {says:?}:\n{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn jobs_that_always_fail_are_counted_as_dead_lettered_with_their_redeliveries() {
    let server = Server::start("dead");
    let dir = server.dir.clone();
    let url = server.url();
    let mut worker = otelconc(
        &dir,
        "worker",
        &[],
        &[
            "worker",
            "--redis",
            &url,
            "--failure-rate",
            "1",
            "--max-deliveries",
            "2",
            "--visibility-timeout",
            "1",
        ],
    );
    let mut submit = submit_jobs(&dir, &url, 10);
    assert!(
        wait_exit(&mut submit, "queue submit"),
        "queue submit failed\n{}",
        log(&dir, "submit")
    );
    let s = summary(&dir, "submit");
    assert_eq!(field(&s, "completed"), 0, "{s}");
    assert_eq!(field(&s, "dead_lettered"), 10, "{s}");
    assert_eq!(field(&s, "redelivered"), 10, "one redelivery each: {s}");
    assert!(server.effects().is_empty(), "a failed job applies nothing");
    terminate(&mut worker);
    assert!(
        wait_exit(&mut worker, "the worker"),
        "{}",
        log(&dir, "worker")
    );
}
