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
