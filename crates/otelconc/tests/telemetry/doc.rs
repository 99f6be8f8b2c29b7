//! `docs/telemetry.md` is the catalogue (`otelconc::telemetry::names`) rendered by
//! `names::markdown()`, so it lists exactly the instruments and spans the code registers.
//! Hand-written sections for the companion crates may follow the `COMPANIONS` marker
//! line; each is checked by its own crate's tests, and blessing keeps them.
//!
//! When the catalogue changes, regenerate the file with
//! `OTELCONC_BLESS=1 cargo test -p otelconc --test telemetry doc::`, which rewrites it
//! instead of failing, and commit the result.

use std::collections::BTreeSet;

use opentelemetry::trace::SpanKind;
use otelconc::telemetry::names;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/telemetry.md");
const REGENERATE: &str = "OTELCONC_BLESS=1 cargo test -p otelconc --test telemetry doc::";

/// The line after which the file holds hand-written sections for the companion crates
/// (`otelconc-redis`), each checked by that crate's own tests: the catalogue is the
/// part before it.
const COMPANIONS: &str = "<!-- Companion crates: hand-written below this line, each section checked by its crate's tests. -->";

/// The generated part of `file` (all of it when it has no companion sections), and the
/// companion part (from the marker line on).
fn split(file: &str) -> (&str, &str) {
    // The blank line before the marker belongs to the companion part.
    match file.find(&format!("\n{COMPANIONS}")) {
        Some(i) => file.split_at(i),
        None => (file, ""),
    }
}

/// The file's text; while blessing, the text it is being rewritten to (the tests run in
/// parallel with the one that writes it).
fn doc() -> String {
    if blessing() {
        return names::markdown();
    }
    std::fs::read_to_string(PATH).expect("docs/telemetry.md is readable")
}

fn blessing() -> bool {
    std::env::var_os("OTELCONC_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

#[test]
fn the_file_is_the_generated_catalogue() {
    let generated = names::markdown();
    if blessing() {
        let old = std::fs::read_to_string(PATH).unwrap_or_default();
        let new = format!("{generated}{}", split(&old).1);
        if old != new {
            std::fs::write(PATH, &new).expect("docs/telemetry.md is writable");
            eprintln!("rewrote {PATH}");
        }
        return;
    }
    let file = std::fs::read_to_string(PATH).expect("docs/telemetry.md is readable");
    let on_disk = split(&file).0;
    if on_disk != generated {
        let first = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "docs/telemetry.md differs from the catalogue in crates/otelconc/src/telemetry/names \
             (first at line {}):\n  file:      {}\n  generated: {}\n\
             Regenerate it with `{REGENERATE}` and commit the result.",
            first + 1,
            on_disk.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn the_file_says_it_is_generated_and_how_to_regenerate_it() {
    let generated = names::markdown();
    let header: String = generated.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(header.contains("do not edit"), "{header}");
    assert!(header.contains(REGENERATE), "{header}");
}

fn kind(k: &SpanKind) -> &'static str {
    match k {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn code_list(xs: &[&str]) -> String {
    xs.iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cells of every table row whose first cell is a backticked name, under the
/// section `heading`.
fn rows(doc: &str, heading: &str, cells: usize) -> BTreeSet<Vec<String>> {
    let mut in_section = false;
    let mut out = BTreeSet::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == heading;
            continue;
        }
        if !in_section || !line.starts_with("| `") {
            continue;
        }
        let parts: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect();
        out.insert(parts.into_iter().take(cells).collect());
    }
    out
}

// The two tests below read the file on their own, so that a table that lost or gained
// a row is named as such even when the whole-file comparison above fails first.

#[test]
fn instruments_table_equals_the_code() {
    let expected: BTreeSet<Vec<String>> = names::instruments()
        .map(|i| {
            vec![
                format!("`{}`", i.name),
                i.kind.as_str().to_owned(),
                format!("`{}`", i.unit),
                code_list(i.attributes),
            ]
        })
        .collect();
    let documented = rows(&doc(), "Instruments", 4);
    assert_eq!(
        documented, expected,
        "docs/telemetry.md instruments differ from the code; regenerate it with `{REGENERATE}`"
    );
}

#[test]
fn spans_table_equals_the_code() {
    let expected: BTreeSet<Vec<String>> = names::spans()
        .map(|s| {
            vec![
                format!("`{}`", s.name),
                kind(&s.kind).to_owned(),
                code_list(s.attributes),
                s.parent.to_owned(),
            ]
        })
        .collect();
    let documented = rows(&doc(), "Spans", 4);
    assert_eq!(
        documented, expected,
        "docs/telemetry.md spans differ from the code; regenerate it with `{REGENERATE}`"
    );
}

#[test]
fn attributes_table_equals_the_code() {
    let expected: BTreeSet<Vec<String>> = names::attributes()
        .map(|a| vec![format!("`{}`", a.key)])
        .collect();
    let documented = rows(&doc(), "Attributes", 1);
    assert_eq!(
        documented, expected,
        "docs/telemetry.md attributes differ from the code; regenerate it with `{REGENERATE}`"
    );
}
