//! `docs/telemetry.md` lists exactly the instruments and spans the code registers.

use std::collections::BTreeSet;

use opentelemetry::trace::SpanKind;
use otelconc::telemetry::names;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/telemetry.md");
    std::fs::read_to_string(path).expect("docs/telemetry.md is readable")
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
    let rendered: Vec<String> = names::instruments()
        .map(|i| {
            format!(
                "| `{}` | {} | `{}` | {} | {} |",
                i.name,
                i.kind.as_str(),
                i.unit,
                code_list(i.attributes),
                i.description
            )
        })
        .collect();
    assert_eq!(
        documented,
        expected,
        "docs/telemetry.md instruments differ from the code; the code expects:\n{}",
        rendered.join("\n")
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
    let rendered: Vec<String> = names::spans()
        .map(|s| {
            format!(
                "| `{}` | {} | {} | {} |",
                s.name,
                kind(&s.kind),
                code_list(s.attributes),
                s.parent
            )
        })
        .collect();
    assert_eq!(
        documented,
        expected,
        "docs/telemetry.md spans differ from the code; the code expects:\n{}",
        rendered.join("\n")
    );
}
