//! The catalogue as the text of `docs/telemetry.md`.

use std::fmt::Write as _;

use opentelemetry::trace::SpanKind;

use super::{attributes, instruments, spans};

/// How to regenerate the file; the test that compares it prints the same command.
const REGENERATE: &str = "OTELCONC_BLESS=1 cargo test -p otelconc --test telemetry doc::";

/// The conventions every primitive follows, shared with the `telemetry` module's docs.
const CONVENTIONS: &str = include_str!("conventions.md");

/// The text of the repository's `docs/telemetry.md`: every instrument, span and
/// attribute key in the catalogue, after the conventions they follow.
///
/// # Examples
/// ```
/// let doc = otelconc::telemetry::names::markdown();
/// assert!(doc.starts_with("# otelconc telemetry\n"));
/// assert!(doc.contains("| `otelconc.channel.sent` | observable counter |"));
/// ```
pub fn markdown() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_doc(&mut out);
    out
}

fn write_doc(out: &mut String) -> std::fmt::Result {
    writeln!(out, "# otelconc telemetry")?;
    writeln!(out)?;
    writeln!(
        out,
        "Generated from the catalogue in `crates/otelconc/src/telemetry/names/`; do not edit. \
         Regenerate with `{REGENERATE}`: the test fails while this file differs from the \
         catalogue, and every primitive creates its instruments and spans from that \
         catalogue only."
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Every metric instrument and span otelconc registers, and the attribute keys they \
         carry."
    )?;
    writeln!(out)?;
    out.push_str(CONVENTIONS);

    writeln!(out)?;
    writeln!(out, "## Instruments")?;
    writeln!(out)?;
    writeln!(out, "| instrument | kind | unit | attributes | meaning |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    for i in instruments() {
        writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} |",
            i.name,
            i.kind.as_str(),
            i.unit,
            code_list(i.attributes),
            i.description
        )?;
    }

    writeln!(out)?;
    writeln!(out, "## Spans")?;
    writeln!(out)?;
    writeln!(
        out,
        "| span | kind | attributes | parent | what it covers |"
    )?;
    writeln!(out, "|---|---|---|---|---|")?;
    for s in spans() {
        writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            s.name,
            span_kind(&s.kind),
            code_list(s.attributes),
            s.parent,
            s.description
        )?;
    }

    writeln!(out)?;
    writeln!(out, "## Attributes")?;
    writeln!(out)?;
    writeln!(out, "| attribute | on | meaning |")?;
    writeln!(out, "|---|---|---|")?;
    for a in attributes() {
        let metrics = instruments().any(|i| i.attributes.contains(&a.key));
        let on_spans = spans().any(|s| s.attributes.contains(&a.key));
        let on = match (metrics, on_spans) {
            (true, true) => "metrics, spans",
            (true, false) => "metrics",
            (false, _) => "spans",
        };
        writeln!(out, "| `{}` | {} | {} |", a.key, on, a.description)?;
    }
    Ok(())
}

/// `a`, `b` as backticked code.
fn code_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lower-case name of a span kind.
fn span_kind(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_cell_breaks_the_tables() {
        let cells = super::instruments()
            .flat_map(|i| [i.name, i.unit, i.description])
            .chain(super::spans().flat_map(|s| [s.name, s.parent, s.description]))
            .chain(super::attributes().flat_map(|a| [a.key, a.description]));
        for cell in cells {
            assert!(
                !cell.contains('|') && !cell.contains('\n'),
                "a table cell holds `|` or a line break: {cell}"
            );
        }
    }
}
