//! `otelconc bench --markdown`: the run as the repository's `docs/costs.md`.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Measurement, SuiteDoc};

/// What the reader of a report needs to know about the run that made it.
pub(crate) struct RunInfo {
    /// `YYYY-MM-DD`, UTC.
    pub(crate) date: String,
    /// CPUs the process could use.
    pub(crate) cores: usize,
    /// Worker threads of the tokio runtime the variants run on.
    pub(crate) workers: usize,
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    /// The suites named on the command line (empty: all).
    pub(crate) suites: Vec<String>,
}

/// One suite's section: its description and every measurement of its cases, in order.
pub(crate) struct SuiteReport {
    pub(crate) name: &'static str,
    pub(crate) doc: &'static SuiteDoc,
    pub(crate) results: Vec<Measurement>,
}

/// The whole report.
pub(crate) fn render(info: &RunInfo, suites: &[SuiteReport]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, info, suites);
    out
}

fn write_report(out: &mut String, info: &RunInfo, suites: &[SuiteReport]) -> std::fmt::Result {
    writeln!(out, "# otelconc costs")?;
    writeln!(out)?;
    writeln!(
        out,
        "Written by `otelconc bench --markdown=docs/costs.md`; do not edit, run it again \
         (a full run, not `--quick`, on a quiet machine) to update."
    )?;
    writeln!(out)?;
    let suites_run = if info.suites.is_empty() {
        "all".to_owned()
    } else {
        info.suites.join(", ")
    };
    writeln!(
        out,
        "Run: {date} (UTC), {mode} run ({rounds} rounds, median of them), {build} build, \
         {cores} cores, {workers} tokio workers, otelconc {version}, suites: {suites_run}.",
        date = info.date,
        mode = if info.quick { "quick" } else { "full" },
        build = if cfg!(debug_assertions) {
            "debug (not representative)"
        } else {
            "release"
        },
        rounds = info.rounds,
        cores = info.cores,
        workers = info.workers,
        version = env!("CARGO_PKG_VERSION"),
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Each case runs its variants in turn, in one process, for every round (which one \
         goes first rotates). ns/op is the median over the rounds; the ratio is to the \
         case's first variant, its baseline, measured in the same run. Compare ratios \
         within one run: absolute times move between runs and machines."
    )?;
    for suite in suites {
        writeln!(out)?;
        writeln!(out, "## {}", suite.name)?;
        writeln!(out)?;
        writeln!(out, "{}", suite.doc.about)?;
        writeln!(out)?;
        writeln!(out, "| case | variant | ns/op | vs baseline |")?;
        writeln!(out, "|---|---|---:|---:|")?;
        let mut base = None;
        let mut case = "";
        for m in &suite.results {
            if m.case != case || base.is_none() {
                case = m.case;
                base = Some(m.ns_per_op);
            }
            let ratio = base.map_or(1.0, |b| m.ns_per_op / b);
            writeln!(
                out,
                "| {} | {} | {:.1} | {:.2}x |",
                m.case, m.variant, m.ns_per_op, ratio
            )?;
        }
        writeln!(out)?;
        writeln!(out, "Variants:")?;
        writeln!(out)?;
        for (name, what) in suite.doc.variants {
            writeln!(out, "- `{name}`: {what}")?;
        }
        if !suite.doc.notes.is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", suite.doc.notes)?;
        }
    }
    Ok(())
}

/// Today's date, UTC, as `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `days` days after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, so a leap day is the last day of its year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction: day in 1..=31, month in 1..=12.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_819), (2027, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    static DOC: SuiteDoc = SuiteDoc {
        about: "Two ways to add.",
        variants: &[("slow", "the baseline"), ("fast", "the other")],
        notes: "A note.",
    };

    fn m(case: &'static str, variant: &'static str, ns: f64) -> Measurement {
        Measurement {
            suite: "s",
            case,
            variant,
            ns_per_op: ns,
            ops: 1_000,
        }
    }

    #[test]
    fn every_case_is_a_row_per_variant_with_its_ratio_to_the_case_baseline() {
        let info = RunInfo {
            date: "2026-12-01".into(),
            cores: 2,
            workers: 2,
            quick: true,
            rounds: 3,
            suites: vec!["s".into()],
        };
        let report = render(
            &info,
            &[SuiteReport {
                name: "s",
                doc: &DOC,
                results: vec![
                    m("a", "slow", 200.0),
                    m("a", "fast", 50.0),
                    m("b", "slow", 10.0),
                    m("b", "fast", 15.0),
                ],
            }],
        );
        assert!(report.starts_with("# otelconc costs\n"), "{report}");
        assert!(
            report.contains("Run: 2026-12-01 (UTC), quick run (3 rounds, median of them), "),
            "{report}"
        );
        assert!(
            report.contains(" build, 2 cores, 2 tokio workers"),
            "{report}"
        );
        assert!(report.contains("suites: s."), "{report}");
        for row in [
            "| a | slow | 200.0 | 1.00x |",
            "| a | fast | 50.0 | 0.25x |",
            "| b | slow | 10.0 | 1.00x |",
            "| b | fast | 15.0 | 1.50x |",
        ] {
            assert!(report.contains(row), "{row} missing:\n{report}");
        }
        assert!(report.contains("- `fast`: the other"), "{report}");
        assert!(report.ends_with("A note.\n"), "{report}");
    }
}
