//! `otelconc demo`: flags, accounting, reproducibility and the graceful stop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A demo run with telemetry going to a private directory (no endpoint in the env).
fn demo_command(tag: &str, args: &[&str]) -> Command {
    let dir = std::env::temp_dir().join(format!("otelconc-demo-{tag}-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otelconc"));
    cmd.arg("demo").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL") {
            cmd.env_remove(k);
        }
    }
    cmd.env("OTELCONC_TELEMETRY_DIR", dir);
    cmd
}

fn run(tag: &str, args: &[&str]) -> Output {
    demo_command(tag, args).output().expect("run otelconc")
}

/// The counts of the report's "events" block, by label.
fn counts(stdout: &str) -> std::collections::BTreeMap<String, u64> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("== events"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("=="))
        .filter_map(|l| {
            let l = l.trim();
            let split = l.find(|c: char| c.is_ascii_digit())?;
            let (label, rest) = l.split_at(split);
            let n = rest.split_whitespace().next()?.parse().ok()?;
            Some((label.trim().to_owned(), n))
        })
        .collect()
}

/// The run exited 0 (else its stderr is the message), and its report accounts for
/// every event: its stdout and the report's counts.
fn succeeded_and_accounted(
    out: &std::process::Output,
) -> (String, std::collections::BTreeMap<String, u64>) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let c = assert_accounted(&stdout);
    (stdout, c)
}

/// accepted = succeeded + failed (by kind) + cancelled, as the report states it.
fn assert_accounted(stdout: &str) -> std::collections::BTreeMap<String, u64> {
    let c = counts(stdout);
    let get = |k: &str| {
        *c.get(k)
            .unwrap_or_else(|| panic!("no {k:?} in {c:?}\n{stdout}"))
    };
    let kinds = [
        "malformed",
        "lookup failed",
        "job panicked",
        "job failed",
        "write timed out",
    ];
    assert_eq!(
        get("failed"),
        kinds.iter().map(|k| get(k)).sum::<u64>(),
        "{stdout}"
    );
    assert_eq!(
        get("accepted"),
        get("succeeded") + get("failed") + get("cancelled"),
        "{stdout}"
    );
    c
}

#[test]
fn bad_flags_are_refused_with_a_message_naming_the_flag() {
    for (args, needle) in [
        (&["--workers", "0"][..], "--workers must be 1 to 1024"),
        (
            &["--concurrency", "0"][..],
            "--concurrency must be 1 to 10000",
        ),
        (&["--rate=-5"][..], "--rate must be a positive number"),
        (&["--rate", "NaN"][..], "--rate must be a positive number"),
        (&["--rate", "inf"][..], "--rate must be a positive number"),
        (&["--rate", "1e12"][..], "--rate must be at most 1e9"),
        (&["--rate", "1e-9"][..], "--rate is too low"),
        (
            &["--failure-rate", "1.5"][..],
            "--failure-rate must be between 0 and 1",
        ),
        (
            &["--duration", "0"][..],
            "--duration must be a positive number of seconds",
        ),
        (
            &["--drain-deadline", "1e-10"][..],
            "--drain-deadline must be a positive number of seconds, from 1 ns to 2^64 s",
        ),
        (
            &["--duration", "1e300"][..],
            "--duration must be a positive number of seconds, from 1 ns to 2^64 s",
        ),
        (&["--events", "0"][..], "--events must be at least 1"),
        (
            &["--events", "5", "--input", "x.jsonl"][..],
            "cannot be used with",
        ),
        (
            &["--quick", "--input", "x.jsonl"][..],
            "cannot be used with",
        ),
    ] {
        let out = run("flags", args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn a_default_quick_run_shows_every_error_path_and_accounts_for_every_event() {
    let out = run("quick", &["--quick"]);
    let (stdout, c) = succeeded_and_accounted(&out);
    assert_eq!(c["accepted"], 2_000);
    for kind in ["malformed", "lookup failed", "job panicked"] {
        assert!(
            c[kind] > 0,
            "a default run shows the {kind} path:\n{stdout}"
        );
    }
    for block in [
        "== channel \"ingest\"",
        "== pipeline \"ingest-shard-0\"",
        "== group \"lookups\"",
        "== semaphore \"downstream-connections\"",
        "== rate \"downstream-quota\"",
        "== pool \"cpu\"",
        "== fan_in \"results\"",
        "end-to-end latency of written events",
    ] {
        assert!(
            stdout.contains(block),
            "{block} missing from the summary:\n{stdout}"
        );
    }
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.contains("panicked at"),
        "injected panics stay quiet: {stderr}"
    );
}

#[test]
fn input_files_are_read_and_every_line_is_accounted_for() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("otelconc-input-{}.jsonl", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..40 {
        writeln!(
            f,
            "{{\"id\": \"e{i}\", \"user\": \"u{}\", \"extra\": [1, 2]}}",
            i % 3
        )
        .unwrap();
    }
    writeln!(f).unwrap(); // blank lines are skipped
    writeln!(f, "not json").unwrap();
    writeln!(f, "[1, 2, 3]").unwrap();
    writeln!(f, "{{\"user\": 7}}").unwrap();
    drop(f);
    let out = run(
        "input",
        &["--input", path.to_str().unwrap(), "--failure-rate", "0"],
    );
    let (_, c) = succeeded_and_accounted(&out);
    assert_eq!(c["accepted"], 43);
    assert_eq!(c["malformed"], 3);
    assert_eq!(c["succeeded"], 40);
}

#[test]
fn a_line_that_is_not_utf8_is_one_malformed_event_and_the_run_goes_on() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("otelconc-input-utf8-{}.jsonl", std::process::id()));
    let mut bytes = Vec::new();
    for i in 0..5 {
        writeln!(bytes, "{{\"id\": \"a{i}\"}}").unwrap();
    }
    // Latin-1 "é" inside a JSON string, and a stray continuation byte, CRLF-ended.
    bytes.extend_from_slice(b"{\"id\": \"caf\xe9\"}\n\x80\r\n");
    for i in 0..5 {
        writeln!(bytes, "{{\"id\": \"b{i}\"}}").unwrap();
    }
    std::fs::write(&path, bytes).unwrap();
    let out = run(
        "utf8",
        &["--input", path.to_str().unwrap(), "--failure-rate", "0"],
    );
    let (_, c) = succeeded_and_accounted(&out);
    assert_eq!(c["accepted"], 12);
    assert_eq!(c["malformed"], 2);
    assert_eq!(c["succeeded"], 10, "the lines after the bad ones ran too");
}

/// The names of the spans in an OTLP/JSON traces file (one export request per line).
fn span_names(traces: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(traces).unwrap();
    let mut names = Vec::new();
    for line in text.lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        let spans = request["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
            .flat_map(|s| s["spans"].as_array().into_iter().flatten());
        names.extend(spans.filter_map(|s| s["name"].as_str().map(str::to_owned)));
    }
    names
}

#[test]
fn a_small_input_file_is_traced_as_a_default_run_is() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("otelconc-input-small-{}.jsonl", std::process::id()));
    std::fs::write(
        &path,
        "{\"id\": \"x\"}\n\n{\"id\": \"y\"}\n{\"id\": \"z\"}\n",
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("otelconc-demo-small-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = demo_command("small", &["--input", path.to_str().unwrap()])
        .env("OTELCONC_TELEMETRY_DIR", &dir)
        .output()
        .expect("run otelconc");
    let (_, c) = succeeded_and_accounted(&out);
    assert_eq!(c["accepted"], 3);
    // The sampler keeps ~300 traces of a run: every one of three events.
    let roots = span_names(&dir.join("traces.jsonl"))
        .into_iter()
        .filter(|n| n == "demo.event")
        .count();
    assert_eq!(roots, 3, "one trace per event of a 3-line input");
}

#[test]
fn input_from_a_pipe_is_read_once_and_accounted_for() {
    // A pipe cannot be counted up front: every line must still reach the run.
    let mut child = demo_command("pipe", &["--input", "/dev/stdin", "--failure-rate", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start otelconc");
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5 {
        writeln!(stdin, "{{\"id\": \"p{i}\"}}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (_, c) = succeeded_and_accounted(&out);
    assert_eq!((c["accepted"], c["succeeded"]), (5, 5));
}

#[test]
fn a_missing_input_file_is_an_error_that_names_it() {
    let out = run("missing", &["--input", "/nonexistent/events.jsonl"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/events.jsonl"), "{stderr}");
}

#[test]
fn a_directory_as_input_is_an_error_that_names_it() {
    let dir = std::env::temp_dir();
    let out = run("input-dir", &["--input", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot read --input {}: it is a directory",
            dir.display()
        )),
        "{stderr}"
    );
}

#[test]
fn the_same_seed_injects_the_same_faults() {
    let faults = |seed: &str| {
        let out = run(
            "seed",
            &["--events", "600", "--seed", seed, "--failure-rate", "0.05"],
        );
        assert!(out.status.success());
        let c = counts(&String::from_utf8(out.stdout).unwrap());
        (c["malformed"], c["lookup failed"], c["job panicked"])
    };
    assert_eq!(faults("7"), faults("7"));
    assert_ne!(faults("7"), faults("8"));
}

/// Starts a long, rate-limited run and waits until it has started working.
fn start_long_run(tag: &str, args: &[&str]) -> std::process::Child {
    start_run(tag, &[&["--events", "1000000"][..], args].concat())
}

/// Starts a run and waits until it has started working.
fn start_run(tag: &str, args: &[&str]) -> std::process::Child {
    let mut child = demo_command(tag, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start otelconc");
    // Wait for a progress line that shows events done: work is under way.
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no progress: {seen}");
        let done = line
            .strip_prefix("progress: ")
            .and_then(|r| r.split('/').next())
            .and_then(|n| n.parse::<u64>().ok());
        if done.is_some_and(|n| n > 0) {
            break;
        }
        seen.push_str(&line);
    }
    child
}

/// Sends SIGINT, as Ctrl-C does (through the shell's builtin `kill`, which every
/// machine has).
fn interrupt(child: &std::process::Child) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("sh");
    assert!(ok.success());
}

#[test]
fn ctrl_c_stops_intake_drains_and_accounts_for_every_accepted_event() {
    // Fast enough that the backlog (channels and stage buffers) drains well within
    // the deadline.
    let child = start_long_run("sigint", &["--rate", "20000", "--drain-deadline", "120"]);
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let (_, c) = succeeded_and_accounted(&out);
    assert!(
        c["accepted"] > 0 && c["accepted"] < 1_000_000,
        "intake ran, then stopped early: {c:?}"
    );
    assert_eq!(
        c["cancelled"], 0,
        "a drain within the deadline finishes everything: {c:?}"
    );
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("stopping intake")
    );
}

#[test]
fn a_second_ctrl_c_aborts_and_still_accounts_for_every_accepted_event() {
    // Slow enough that the backlog cannot drain before the second Ctrl-C.
    let mut child = start_long_run("sigint2", &["--rate", "300", "--drain-deadline", "120"]);
    interrupt(&child);
    // The second signal only after the first was seen (signals may coalesce).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("stopping intake") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no stop message: {seen}"
        );
        seen.push_str(&line);
    }
    interrupt(&child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, c) = succeeded_and_accounted(&out);
    assert!(c["accepted"] > 0, "{c:?}");
    assert!(rest.contains("aborting"), "{rest}");
    assert!(stdout.contains("aborted"), "{stdout}");
    assert!(
        c["cancelled"] > 0,
        "events in flight at the abort are cancelled: {c:?}"
    );
}

#[test]
fn a_ctrl_c_after_the_input_ended_drains_within_the_deadline() {
    // 300 events, all accepted at once, and 30 lookups a second (three an event): the
    // run is still draining its backlog, for about half a minute, when Ctrl-C comes.
    let child = start_run(
        "sigint-drain",
        &[
            "--events",
            "300",
            "--rate",
            "30",
            "--failure-rate",
            "0",
            "--drain-deadline",
            "1",
        ],
    );
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let (stdout, c) = succeeded_and_accounted(&out);
    assert_eq!(c["accepted"], 300, "the input had ended: {c:?}");
    assert!(
        stdout.contains(", aborted)"),
        "the drain stopped at --drain-deadline:\n{stdout}"
    );
    assert!(
        c["cancelled"] > 0,
        "events still queued at the deadline are cancelled: {c:?}"
    );
}

/// A collector that accepts connections and never answers: every export to it waits
/// out the exporter's timeout.
struct SilentCollector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentCollector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                // Held open, never read or written.
                let mut held = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    held.extend(conn.ok());
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `demo --quick` against a collector that never answers, over `protocol`: the summary
/// comes when the work ends (progress stopped before it), and only then does the
/// program wait for the exporter, at most one export timeout, saying so.
fn a_silent_collector_delays_only_the_exit(protocol: &str) {
    let collector = SilentCollector::start();
    // stdout and stderr into one file, so their order shows.
    let log = std::env::temp_dir().join(format!(
        "otelconc-demo-silent-{}-{}.log",
        protocol.replace('/', "-"),
        std::process::id()
    ));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = demo_command("silent", &["--quick"])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", collector.addr),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1500")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start otelconc");
    // A hang guard, not a timing check: the run takes seconds.
    let guard = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > guard {
            let _ = child.kill();
            panic!(
                "otelconc did not exit on its own:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}\n{out}");
    assert_accounted(&out);
    let lines: Vec<&str> = out.lines().collect();
    let find = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the output:\n{out}"))
    };
    let summary = find("== events");
    let waiting = find("waiting at most 1.5s for the telemetry exporter");
    let unfinished = find("did not finish within 1.5s");
    assert!(
        summary < waiting && waiting < unfinished,
        "the summary, then the wait, then its end:\n{out}"
    );
    assert!(
        !lines[summary..].iter().any(|l| l.starts_with("progress:")),
        "progress stops when the work stops:\n{out}"
    );
    assert!(
        lines[unfinished..]
            .iter()
            .all(|l| !l.contains("waiting at most")),
        "one wait:\n{out}"
    );
}

#[test]
fn a_silent_collector_over_http_delays_only_the_exit() {
    a_silent_collector_delays_only_the_exit("http/protobuf");
}

#[test]
fn a_silent_collector_over_grpc_delays_only_the_exit() {
    a_silent_collector_delays_only_the_exit("grpc");
}
