//! The embedded default: OTLP/JSON files, one export request per line.
//!
//! The lines are what the OpenTelemetry Collector's file exporter writes: an
//! `ExportTraceServiceRequest` / `ExportMetricsServiceRequest` in the OTLP/JSON encoding
//! (lowerCamelCase keys, hex trace and span ids, enums as integers, 64-bit integers as
//! strings, fields at their default value left out), so any OTLP/HTTP receiver accepts
//! a line as a request body with `Content-Type: application/json`.
//!
//! The protobuf messages and their serde encoding come from `opentelemetry-proto`;
//! [`normalize`] only drops default-valued fields, which proto3 JSON omits and the serde
//! derive writes out.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::Value;

use super::error::SetupError;

/// The traces file name inside the telemetry directory.
pub const TRACES_FILE: &str = "traces.jsonl";
/// The metrics file name inside the telemetry directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Fields with explicit presence, which proto3 JSON writes whenever they are set, even to
/// the default value: `oneof` members (`"asInt": "0"`, `"boolValue": false`) and the
/// `optional` histogram `sum` / `min` / `max` (`"min": 0.0`).
const PRESENCE_FIELDS: &[&str] = &[
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
    "asInt",
    "asDouble",
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
    "min",
    "max",
];

/// Removes the fields proto3 JSON leaves out: unset ones (null) and, except for fields
/// with explicit presence, default values (`""`, `0`, `"0"`, `false`, `[]`). Array
/// elements are never removed.
pub(crate) fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                !v.is_null() && (PRESENCE_FIELDS.contains(&key.as_str()) || !is_default(v))
            });
            for v in map.values_mut() {
                normalize(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// One JSON line for an encoded request, normalized, with the trailing newline.
fn json_line(value: Result<Value, serde_json::Error>) -> Result<Vec<u8>, OTelSdkError> {
    let mut value =
        value.map_err(|e| OTelSdkError::InternalFailure(format!("encoding OTLP/JSON: {e}")))?;
    normalize(&mut value);
    let mut line = serde_json::to_vec(&value)
        .map_err(|e| OTelSdkError::InternalFailure(format!("encoding OTLP/JSON: {e}")))?;
    line.push(b'\n');
    Ok(line)
}

/// An append-only JSON-lines file; each export writes one whole line.
#[derive(Debug)]
struct JsonLines {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl JsonLines {
    fn open(path: PathBuf) -> Result<Self, SetupError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| SetupError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file: Mutex::new(Some(file)),
        })
    }

    fn write_line(&self, line: &[u8]) -> OTelSdkResult {
        let mut guard = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("file lock poisoned".to_owned()))?;
        let file = guard.as_mut().ok_or(OTelSdkError::AlreadyShutdown)?;
        // One write_all per line on an O_APPEND file: lines never interleave.
        file.write_all(line).map_err(|e| {
            OTelSdkError::InternalFailure(format!("writing {}: {e}", self.path.display()))
        })
    }

    fn flush(&self) -> OTelSdkResult {
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
        {
            file.flush().map_err(|e| {
                OTelSdkError::InternalFailure(format!("flushing {}: {e}", self.path.display()))
            })?;
        }
        Ok(())
    }

    fn close(&self) -> OTelSdkResult {
        let file = self.file.lock().ok().and_then(|mut g| g.take());
        match file {
            Some(file) => file.sync_all().map_err(|e| {
                OTelSdkError::InternalFailure(format!("syncing {}: {e}", self.path.display()))
            }),
            None => Ok(()),
        }
    }
}

/// Creates `dir` and returns the paths of the two files in it.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(PathBuf, PathBuf), SetupError> {
    std::fs::create_dir_all(dir).map_err(|source| SetupError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok((dir.join(TRACES_FILE), dir.join(METRICS_FILE)))
}

/// A [`SpanExporter`] appending one `ExportTraceServiceRequest` per batch to a file.
#[derive(Debug)]
pub(crate) struct FileSpanExporter {
    out: JsonLines,
    resource: ResourceAttributesWithSchema,
}

impl FileSpanExporter {
    pub(crate) fn open(path: PathBuf) -> Result<Self, SetupError> {
        Ok(Self {
            out: JsonLines::open(path)?,
            resource: ResourceAttributesWithSchema::default(),
        })
    }
}

impl SpanExporter for FileSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        self.out
            .write_line(&json_line(serde_json::to_value(&request))?)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.out.close()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.out.flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

/// A [`PushMetricExporter`] appending one `ExportMetricsServiceRequest` per collection.
#[derive(Debug)]
pub(crate) struct FileMetricExporter {
    out: JsonLines,
}

impl FileMetricExporter {
    pub(crate) fn open(path: PathBuf) -> Result<Self, SetupError> {
        Ok(Self {
            out: JsonLines::open(path)?,
        })
    }
}

impl PushMetricExporter for FileMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if metrics.scope_metrics().next().is_none() {
            return Ok(());
        }
        let request = ExportMetricsServiceRequest::from(metrics);
        self.out
            .write_line(&json_line(serde_json::to_value(&request))?)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.out.flush()
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.out.close()
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_oneofs_and_array_elements() {
        let mut v = serde_json::json!({
            "a": 0, "b": "", "c": "0", "d": [], "e": null, "f": false,
            "asInt": "0", "boolValue": false, "bucketCounts": ["0", "1"],
            "status": {}, "g": {"h": 0, "i": 1}, "min": 0.0, "max": null
        });
        normalize(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "asInt": "0", "boolValue": false, "bucketCounts": ["0", "1"],
                "status": {}, "g": {"i": 1}, "min": 0.0
            })
        );
    }
}
