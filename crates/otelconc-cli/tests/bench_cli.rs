//! `otelconc bench`: its JSON output contract and its errors.

use std::collections::BTreeSet;
use std::process::Command;

fn otelconc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otelconc"))
        .args(args)
        .output()
        .expect("run otelconc")
}

#[test]
fn json_lines_name_suite_case_variant_with_positive_costs() {
    let out = otelconc(&["bench", "telemetry", "--quick", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut seen = BTreeSet::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v.as_object().unwrap();
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["suite", "case", "variant", "ns_per_op", "ops"])
        );
        assert_eq!(v["suite"], "telemetry");
        assert!(v["ns_per_op"].as_f64().unwrap() > 0.0, "{line}");
        assert!(v["ops"].as_u64().unwrap() >= 1_000, "{line}");
        seen.insert((
            v["case"].as_str().unwrap().to_owned(),
            v["variant"].as_str().unwrap().to_owned(),
        ));
    }
    for case in ["counter-add", "histogram-record"] {
        for variant in ["fresh-attrs", "prebuilt-attrs", "bound"] {
            assert!(
                seen.contains(&(case.to_owned(), variant.to_owned())),
                "{case}/{variant} missing"
            );
        }
    }
    for variant in [
        "in-sampled-trace",
        "outside-trace-naive",
        "outside-trace-otelconc",
    ] {
        assert!(
            seen.contains(&("span-start-end".to_owned(), variant.to_owned())),
            "{variant} missing"
        );
    }
}

#[test]
fn table_shows_ratios_to_the_baseline() {
    let out = otelconc(&["bench", "telemetry", "--quick"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("telemetry / counter-add"), "{stdout}");
    let baseline_row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("fresh-attrs"))
        .unwrap();
    assert!(baseline_row.trim_end().ends_with("1.00x"), "{baseline_row}");
}

#[test]
fn an_unknown_suite_is_an_error_that_lists_the_suites() {
    let out = otelconc(&["bench", "nosuch"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("unknown bench suite \"nosuch\""),
        "{stderr}"
    );
    assert!(stderr.contains("telemetry"), "{stderr}");
}

#[test]
fn a_redis_url_that_cannot_be_used_is_an_error_that_names_it() {
    // Nothing listens on port 1; the other is not a URL at all.
    for url in ["redis://127.0.0.1:1", "not-a-url"] {
        let out = otelconc(&["bench", "queue", "--quick", "--redis", url]);
        assert_eq!(out.status.code(), Some(1), "{url}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!(
                "otelconc: error: bench queue cannot use the Redis server of --redis {url}: "
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn markdown_goes_to_stdout_as_a_report_with_the_run_header_and_a_table_per_suite() {
    let out = otelconc(&["bench", "telemetry", "--quick", "--markdown"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# otelconc costs\n"), "{md}");
    let run = md
        .lines()
        .find(|l| l.starts_with("Run: "))
        .expect("a run line");
    assert!(run.contains("quick run (3 rounds"), "{run}");
    assert!(run.contains("2 tokio workers"), "{run}");
    assert!(run.contains("suites: telemetry."), "{run}");
    assert!(md.contains("\n## telemetry\n"), "{md}");
    assert!(!md.contains("## channel"), "{md}");
    assert!(
        md.contains("| case | variant | ns/op | vs baseline |"),
        "{md}"
    );
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| counter-add | "))
        .collect();
    assert_eq!(rows.len(), 3, "{md}");
    assert!(
        rows[0].starts_with("| counter-add | fresh-attrs | "),
        "{md}"
    );
    assert!(rows[0].ends_with(" | 1.00x |"), "{md}");
    assert!(md.contains("- `bound`: "), "{md}");
    // Nothing but the report on stdout: no plain tables.
    assert!(!md.contains("telemetry / counter-add"), "{md}");
}

#[test]
fn markdown_to_a_file_keeps_the_tables_on_stdout() {
    let dir = std::env::temp_dir().join(format!("otelconc-bench-md-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("costs.md");
    let arg = format!("--markdown={}", file.display());
    let out = otelconc(&["bench", "--quick", &arg, "telemetry"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("telemetry / counter-add"), "{stdout}");
    let md = std::fs::read_to_string(&file).unwrap();
    assert!(md.starts_with("# otelconc costs\n"), "{md}");
    assert!(
        md.contains("| span-start-end | in-sampled-trace | "),
        "{md}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_markdown_file_that_cannot_be_written_is_refused_before_the_run() {
    let file = std::env::temp_dir()
        .join(format!("otelconc-no-such-dir-{}", std::process::id()))
        .join("costs.md");
    let arg = format!("--markdown={}", file.display());
    let out = otelconc(&["bench", "--quick", &arg, "telemetry"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("--markdown: cannot write {}", file.display())),
        "{stderr}"
    );
    // Nothing ran: no table was printed.
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
}

#[test]
fn markdown_and_json_cannot_be_asked_for_together() {
    let out = otelconc(&["bench", "telemetry", "--quick", "--json", "--markdown"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
