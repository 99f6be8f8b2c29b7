//! The errors of installing and shutting down telemetry.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why [`super::SetupBuilder::install`] (or [`super::SetupBuilder::config`]) failed.
///
/// # Examples
///
/// ```
/// use otelconc_setup::SetupError;
/// let err = otelconc_setup::builder()
///     .env_lookup(|name| (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "udp".to_owned()))
///     .config()
///     .unwrap_err();
/// assert!(matches!(err, SetupError::InvalidValue { variable: "OTEL_EXPORTER_OTLP_PROTOCOL", .. }));
/// assert_eq!(
///     err.to_string(),
///     "invalid value \"udp\" for OTEL_EXPORTER_OTLP_PROTOCOL: expected grpc, http/protobuf, http/json"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// An environment variable (or a value set in code) is not one of the accepted values.
    InvalidValue {
        /// The variable, e.g. `OTEL_EXPORTER_OTLP_PROTOCOL`.
        variable: &'static str,
        /// The value found.
        value: String,
        /// What is accepted.
        accepted: String,
    },
    /// The directory for the local files could not be created or a file not opened.
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The OTLP exporter (or the runtime the gRPC exporter needs) could not be built.
    Exporter(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::InvalidValue {
                variable,
                value,
                accepted,
            } => write!(
                f,
                "invalid value {value:?} for {variable}: expected {accepted}"
            ),
            SetupError::Io { path, source } => {
                write!(f, "telemetry files at {}: {source}", path.display())
            }
            SetupError::Exporter(message) => write!(f, "building the OTLP exporter: {message}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why [`super::TelemetryGuard::shutdown`] did not finish cleanly.
///
/// Either way, shutdown has returned and the providers are shut down (or still finishing
/// on a background thread): the guard never blocks past its deadline.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use otelconc_setup::ShutdownError;
/// let e = ShutdownError::Timeout(Duration::from_millis(200));
/// assert_eq!(e.to_string(), "telemetry shutdown did not finish within 200ms; unexported data is lost");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The flush did not finish by the deadline.
    Timeout(Duration),
    /// The flush finished with an error (for example the collector refused the data).
    Failed(String),
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownError::Timeout(d) => write!(
                f,
                "telemetry shutdown did not finish within {d:?}; unexported data is lost"
            ),
            ShutdownError::Failed(m) => write!(f, "telemetry shutdown failed: {m}"),
        }
    }
}

impl std::error::Error for ShutdownError {}
