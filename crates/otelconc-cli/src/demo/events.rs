//! Where demo events come from: a seeded generator, or a JSON-lines file.
//!
//! An event is any JSON object; the demo reads `id`, `user` and `kind` when they are
//! there and carries every other field along. A file's lines are read as bytes: a line
//! that is not UTF-8 is one malformed event, not the end of the input.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::faults::Faults;

/// One line as it arrived, before parsing: bytes, checked for UTF-8 by [`parse`].
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    /// Position in the input, from 0.
    pub(crate) seq: u64,
    /// The line without its `\n` or `\r\n`.
    pub(crate) line: Vec<u8>,
}

/// A parsed, validated event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) kind: String,
    pub(crate) fields: Map<String, Value>,
}

impl Event {
    /// A placeholder left behind when an event moves into a job.
    pub(crate) fn empty() -> Self {
        Self {
            id: String::new(),
            user: String::new(),
            kind: String::new(),
            fields: Map::new(),
        }
    }
}

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

const KINDS: &[&str] = &["page_view", "click", "purchase", "signup", "search"];

/// `n` generated events; the ones [`Faults::malformed`] picks are broken on purpose.
pub(crate) fn generate(n: u64, faults: Faults) -> impl Iterator<Item = RawEvent> {
    (0..n).map(move |seq| {
        let line = if faults.malformed(seq) {
            // Truncated JSON, as a producer that crashed mid-write leaves it.
            format!("{{\"id\":\"ev-{seq}\",\"user\":")
        } else {
            let r = faults.draw(seq, 0x5eed);
            let kind = KINDS[(r % KINDS.len() as u64) as usize];
            json!({
                "id": format!("ev-{seq}"),
                "user": format!("user-{}", (r >> 8) % 5_000),
                "kind": kind,
                "amount_cents": if kind == "purchase" { (r >> 20) % 100_000 } else { 0 },
                "path": format!("/p/{}", (r >> 32) % 300),
            })
            .to_string()
        };
        RawEvent {
            seq,
            line: line.into_bytes(),
        }
    })
}

/// The lines of a JSON-lines file, as events to parse; blank lines are skipped.
pub(crate) fn read_file(
    path: &Path,
) -> io::Result<impl Iterator<Item = io::Result<RawEvent>> + use<>> {
    let file = open(path)?;
    let mut seq = 0;
    Ok(
        lines(BufReader::new(file)).filter_map(move |line| match line {
            Ok(l) if is_blank(&l) => None,
            Ok(line) => {
                let ev = RawEvent { seq, line };
                seq += 1;
                Some(Ok(ev))
            }
            Err(e) => Some(Err(e)),
        }),
    )
}

/// The events [`read_file`] will yield from `path` (its lines that are not blank), if
/// it is a regular file: counted by reading it once. `None` for a pipe or another
/// stream, which cannot be read twice.
pub(crate) fn count_events(path: &Path) -> io::Result<Option<u64>> {
    // Looked up without opening: opening a named pipe would connect to its writer and
    // lose what it sent when the pipe is closed again. A path that cannot be looked up
    // (missing, no permission) is opened anyway, for `open`'s error naming it, and so
    // is a directory.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Ok(None);
    }
    let file = open(path)?;
    let mut n = 0;
    for line in lines(BufReader::new(file)) {
        n += u64::from(!is_blank(&line?));
    }
    Ok(Some(n))
}

fn open(path: &Path) -> io::Result<File> {
    let file = File::open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open --input {}: {e}", path.display()),
        )
    })?;
    // A directory opens, and fails only when read, without its name.
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot read --input {}: it is a directory", path.display()),
        ));
    }
    Ok(file)
}

/// The lines of `reader` as bytes, without their `\n` or `\r\n` (what
/// [`BufRead::lines`] strips, without its refusal of a line that is not UTF-8).
fn lines(reader: impl BufRead) -> impl Iterator<Item = io::Result<Vec<u8>>> {
    reader.split(b'\n').map(|line| {
        line.map(|mut l| {
            if l.last() == Some(&b'\r') {
                l.pop();
            }
            l
        })
    })
}

/// A line of whitespace only (a line that is not UTF-8 is never blank).
fn is_blank(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|s| s.trim().is_empty())
}

/// Parses and validates one line: it must be UTF-8 and a JSON object; `id`, `user` and
/// `kind`, when present, must be strings (a missing id becomes `line-<seq>`).
pub(crate) fn parse(raw: &RawEvent) -> Result<Event, Malformed> {
    let text = std::str::from_utf8(&raw.line).map_err(|e| {
        Malformed(format!(
            "line {}: not valid UTF-8 (byte {})",
            raw.seq + 1,
            e.valid_up_to() + 1
        ))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Malformed(format!("line {}: not JSON: {e}", raw.seq + 1)))?;
    let Value::Object(mut fields) = value else {
        return Err(Malformed(format!(
            "line {}: not a JSON object",
            raw.seq + 1
        )));
    };
    // A missing field gets a default, built only then (not per event).
    let mut take = |key: &str| -> Result<Option<String>, Malformed> {
        match fields.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Malformed(format!(
                "line {}: field {key:?} must be a string, got {other}",
                raw.seq + 1
            ))),
        }
    };
    let id = take("id")?.unwrap_or_else(|| format!("line-{}", raw.seq + 1));
    let user = take("user")?.unwrap_or_else(|| "anonymous".to_owned());
    let kind = take("kind")?.unwrap_or_else(|| "unknown".to_owned());
    Ok(Event {
        id,
        user,
        kind,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_parse_except_the_malformed_ones() {
        let faults = Faults::new(7, 0.05);
        let mut bad = 0;
        for raw in generate(2_000, faults) {
            match parse(&raw) {
                Ok(ev) => assert_eq!(ev.id, format!("ev-{}", raw.seq)),
                Err(_) => {
                    assert!(faults.malformed(raw.seq));
                    bad += 1;
                }
            }
        }
        assert!(bad > 0, "a 5% malformed rate over 2,000 events breaks some");
    }

    #[test]
    fn same_seed_same_events() {
        let a: Vec<Vec<u8>> = generate(100, Faults::new(1, 0.1)).map(|e| e.line).collect();
        let b: Vec<Vec<u8>> = generate(100, Faults::new(1, 0.1)).map(|e| e.line).collect();
        let c: Vec<Vec<u8>> = generate(100, Faults::new(2, 0.1)).map(|e| e.line).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn lines_are_bytes_and_one_that_is_not_utf8_does_not_end_the_input() {
        let input: &[u8] = b"a\r\n\xff\xfe\n\n \t\nb";
        let got: Vec<Vec<u8>> = lines(input)
            .map(Result::unwrap)
            .filter(|l| !is_blank(l))
            .collect();
        assert_eq!(got, [&b"a"[..], b"\xff\xfe", b"b"]);
    }

    #[test]
    fn validation_names_the_problem() {
        let raw = |line: &str| RawEvent {
            seq: 4,
            line: line.as_bytes().to_vec(),
        };
        assert!(
            parse(&raw("[1,2]"))
                .unwrap_err()
                .0
                .contains("line 5: not a JSON object")
        );
        assert!(
            parse(&raw("{\"user\": 3}"))
                .unwrap_err()
                .0
                .contains("\"user\" must be a string")
        );
        let latin1 = RawEvent {
            seq: 4,
            line: b"{\"id\": \"caf\xe9\"}".to_vec(),
        };
        assert_eq!(
            parse(&latin1).unwrap_err().0,
            "line 5: not valid UTF-8 (byte 12)"
        );
        let ev = parse(&raw("{\"anything\": true}")).unwrap();
        assert_eq!((ev.id.as_str(), ev.kind.as_str()), ("line-5", "unknown"));
        assert_eq!(ev.fields.get("anything"), Some(&Value::Bool(true)));
    }
}
