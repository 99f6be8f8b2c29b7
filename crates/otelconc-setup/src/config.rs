//! The standard `OTEL_*` variables, their parsing, and the resolved configuration.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::SetupError;

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: base URL for every signal (HTTP appends `/v1/traces`,
/// `/v1/metrics`).
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: URL for traces, used as is.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: URL for metrics, used as is.
pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`, `http/protobuf` (default) or `http/json`.
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-encoded.
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_EXPORTER_OTLP_TIMEOUT`: export timeout in milliseconds (default 10000).
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// `OTEL_SERVICE_NAME`: the `service.name` resource attribute.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,key2=value2`, values percent-encoded.
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_TRACES_SAMPLER`: see [`Sampler`] for the accepted values.
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`: the ratio for the `traceidratio` samplers, in `[0, 1]`.
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// `OTEL_METRIC_EXPORT_INTERVAL`: milliseconds between metric exports (default 60000).
pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
/// `OTEL_SDK_DISABLED`: `true` installs nothing (every instrument stays a no-op).
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `OTELCONC_TELEMETRY_DIR`: where the local OTLP/JSON files go when no endpoint is set.
pub const OTELCONC_TELEMETRY_DIR: &str = "OTELCONC_TELEMETRY_DIR";

/// Every variable [`super::SetupBuilder`] reads.
pub const ALL_VARIABLES: &[&str] = &[
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_SERVICE_NAME,
    OTEL_RESOURCE_ATTRIBUTES,
    OTEL_TRACES_SAMPLER,
    OTEL_TRACES_SAMPLER_ARG,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_SDK_DISABLED,
    OTELCONC_TELEMETRY_DIR,
];

/// The default directory of the local OTLP/JSON files.
pub const DEFAULT_TELEMETRY_DIR: &str = "otelconc-telemetry";
/// The default export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default metric export interval (`OTEL_METRIC_EXPORT_INTERVAL`).
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
///
/// # Examples
///
/// ```
/// use otelconc_setup::Protocol;
/// assert_eq!("grpc".parse::<Protocol>().unwrap(), Protocol::Grpc);
/// assert_eq!(Protocol::default(), Protocol::HttpProtobuf);
/// assert_eq!(Protocol::HttpJson.to_string(), "http/json");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// `grpc`: OTLP over gRPC, default port 4317.
    Grpc,
    /// `http/protobuf`: OTLP over HTTP with binary protobuf bodies, default port 4318.
    #[default]
    HttpProtobuf,
    /// `http/json`: OTLP over HTTP with JSON bodies, default port 4318.
    HttpJson,
}

impl Protocol {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "grpc, http/protobuf, http/json";

    /// The value as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(otelconc_setup::Protocol::Grpc.as_str(), "grpc");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    /// The default endpoint of this transport on the local machine.
    ///
    /// # Examples
    ///
    /// ```
    /// use otelconc_setup::Protocol;
    /// assert_eq!(Protocol::Grpc.default_endpoint(), "http://localhost:4317");
    /// assert_eq!(Protocol::HttpJson.default_endpoint(), "http://localhost:4318");
    /// ```
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf | Protocol::HttpJson => "http://localhost:4318",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Protocol`] or [`Sampler`] name: the accepted values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// The accepted values, comma separated.
    pub accepted: &'static str,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected one of: {}", self.accepted)
    }
}

impl std::error::Error for UnknownValue {}

impl FromStr for Protocol {
    type Err = UnknownValue;

    /// Case-insensitive, as the specification asks of enum values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            _ => Err(UnknownValue {
                accepted: Protocol::ACCEPTED,
            }),
        }
    }
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER` + `OTEL_TRACES_SAMPLER_ARG`).
///
/// # Examples
///
/// ```
/// use otelconc_setup::Sampler;
/// assert_eq!(Sampler::default(), Sampler::ParentBasedAlwaysOn);
/// assert_eq!(Sampler::TraceIdRatio(0.25).to_string(), "traceidratio(0.25)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Sampler {
    /// `always_on`: record every trace.
    AlwaysOn,
    /// `always_off`: record nothing.
    AlwaysOff,
    /// `traceidratio`: record this fraction of traces, by trace id.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): follow the parent, record new roots.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the parent, never record new roots.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the parent, record this fraction of new roots.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    /// The accepted `OTEL_TRACES_SAMPLER` values, for error messages.
    pub const ACCEPTED: &'static str = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio";

    pub(crate) fn to_sdk(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler as S;
        match self {
            Sampler::AlwaysOn => S::AlwaysOn,
            Sampler::AlwaysOff => S::AlwaysOff,
            Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
            Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
            Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
            Sampler::ParentBasedTraceIdRatio(r) => {
                S::ParentBased(Box::new(S::TraceIdRatioBased(r)))
            }
        }
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sampler::AlwaysOn => f.write_str("always_on"),
            Sampler::AlwaysOff => f.write_str("always_off"),
            Sampler::TraceIdRatio(r) => write!(f, "traceidratio({r})"),
            Sampler::ParentBasedAlwaysOn => f.write_str("parentbased_always_on"),
            Sampler::ParentBasedAlwaysOff => f.write_str("parentbased_always_off"),
            Sampler::ParentBasedTraceIdRatio(r) => write!(f, "parentbased_traceidratio({r})"),
        }
    }
}

/// Where the exporters send telemetry, as resolved from code and environment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Export {
    /// OTLP to a collector.
    Otlp {
        /// Full URL for traces (for HTTP, including `/v1/traces`).
        traces_endpoint: String,
        /// Full URL for metrics (for HTTP, including `/v1/metrics`).
        metrics_endpoint: String,
        /// The transport.
        protocol: Protocol,
        /// Extra request headers (gRPC metadata), decoded.
        headers: Vec<(String, String)>,
        /// Per-export timeout.
        timeout: Duration,
    },
    /// Local OTLP/JSON files `traces.jsonl` and `metrics.jsonl` in this directory.
    Files {
        /// The directory.
        dir: PathBuf,
    },
    /// `OTEL_SDK_DISABLED=true`: nothing is installed.
    Disabled,
}

/// The configuration [`super::SetupBuilder`] resolved from code and environment.
///
/// Obtain it with [`super::SetupBuilder::config`] to check what would be installed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Where telemetry goes.
    pub export: Export,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The other resource attributes, in order (later entries win).
    pub resource_attributes: Vec<(String, String)>,
    /// The trace sampler.
    pub sampler: Sampler,
    /// Time between metric exports.
    pub metric_export_interval: Duration,
}

/// Values set in code; each one overrides its environment variable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) service_name: Option<String>,
    pub(crate) default_service_name: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) sampler: Option<Sampler>,
    pub(crate) metric_export_interval: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) files_dir: Option<PathBuf>,
    pub(crate) resource_attributes: Vec<(String, String)>,
}

fn invalid(variable: &'static str, value: &str, accepted: impl Into<String>) -> SetupError {
    SetupError::InvalidValue {
        variable,
        value: value.to_owned(),
        accepted: accepted.into(),
    }
}

/// Resolves the configuration: code first, then `lookup` (the environment), then defaults.
pub(crate) fn resolve(
    o: &Overrides,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, SetupError> {
    // An empty variable counts as unset, as the specification asks.
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

    let disabled = match get(OTEL_SDK_DISABLED) {
        None => false,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(invalid(OTEL_SDK_DISABLED, &v, "true, false")),
        },
    };

    let protocol = match o.protocol {
        Some(p) => p,
        None => match get(OTEL_EXPORTER_OTLP_PROTOCOL) {
            None => Protocol::default(),
            Some(v) => v
                .parse()
                .map_err(|_| invalid(OTEL_EXPORTER_OTLP_PROTOCOL, &v, Protocol::ACCEPTED))?,
        },
    };

    let timeout = match o.timeout {
        Some(t) => t,
        None => match get(OTEL_EXPORTER_OTLP_TIMEOUT) {
            None => DEFAULT_TIMEOUT,
            Some(v) => Duration::from_millis(parse_millis(OTEL_EXPORTER_OTLP_TIMEOUT, &v)?),
        },
    };

    let metric_export_interval = match o.metric_export_interval {
        // The SDK's reader would take zero as "unset" and use its own default instead.
        Some(t) if t.is_zero() => {
            return Err(invalid(
                "metric_export_interval (set in code)",
                &format!("{t:?}"),
                "a positive duration",
            ));
        }
        Some(t) => t,
        None => match get(OTEL_METRIC_EXPORT_INTERVAL) {
            None => DEFAULT_METRIC_EXPORT_INTERVAL,
            Some(v) => {
                let ms = parse_millis(OTEL_METRIC_EXPORT_INTERVAL, &v)?;
                if ms == 0 {
                    return Err(invalid(
                        OTEL_METRIC_EXPORT_INTERVAL,
                        &v,
                        "a positive whole number of milliseconds",
                    ));
                }
                Duration::from_millis(ms)
            }
        },
    };

    let sampler = match o.sampler {
        Some(s @ (Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r)))
            if !(0.0..=1.0).contains(&r) =>
        {
            return Err(invalid(
                "sampler (set in code)",
                &s.to_string(),
                "a ratio from 0 to 1 (the fraction of traces to sample)",
            ));
        }
        Some(s) => s,
        None => parse_sampler(get(OTEL_TRACES_SAMPLER), get(OTEL_TRACES_SAMPLER_ARG))?,
    };

    let headers = match get(OTEL_EXPORTER_OTLP_HEADERS) {
        None => Vec::new(),
        Some(v) => {
            let headers = parse_pairs(OTEL_EXPORTER_OTLP_HEADERS, &v)?;
            // The HTTP exporter silently drops a header it cannot send; refuse it here,
            // for every protocol, so it is named instead.
            if header_map(&headers).is_none() {
                return Err(invalid(
                    OTEL_EXPORTER_OTLP_HEADERS,
                    &v,
                    "key=value pairs that are valid HTTP header names and values once decoded \
                     (names of letters, digits and !#$%&'*+-.^_`|~; values of visible ASCII)",
                ));
            }
            headers
        }
    };

    let mut resource_attributes = match get(OTEL_RESOURCE_ATTRIBUTES) {
        None => Vec::new(),
        Some(v) => parse_pairs(OTEL_RESOURCE_ATTRIBUTES, &v)?,
    };
    let env_service_name = get(OTEL_SERVICE_NAME).map(|s| s.trim().to_owned());
    let resource_service_name = resource_attributes
        .iter()
        .rev()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    resource_attributes.extend(o.resource_attributes.iter().cloned());
    let code_resource_service_name = o
        .resource_attributes
        .iter()
        .rev()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    resource_attributes.retain(|(k, _)| k != "service.name");
    let service_name = o
        .service_name
        .clone()
        .or(code_resource_service_name)
        .or(env_service_name)
        .or(resource_service_name)
        .or_else(|| o.default_service_name.clone())
        .unwrap_or_else(unknown_service);

    let export = if disabled {
        Export::Disabled
    } else {
        let code_endpoint = match &o.endpoint {
            Some(e) => Some(check_url("endpoint (set in code)", e)?),
            None => None,
        };
        let generic = match (&code_endpoint, get(OTEL_EXPORTER_OTLP_ENDPOINT)) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(v)) => Some(check_url(OTEL_EXPORTER_OTLP_ENDPOINT, &v)?),
            (None, None) => None,
        };
        let signal = |var: &'static str, path: &str| -> Result<Option<String>, SetupError> {
            if code_endpoint.is_none()
                && let Some(v) = get(var)
            {
                return Ok(Some(check_url(var, &v)?));
            }
            Ok(generic
                .as_ref()
                .map(|base| signal_url(base, protocol, path)))
        };
        let traces = signal(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "/v1/traces")?;
        let metrics = signal(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "/v1/metrics")?;
        if traces.is_none() && metrics.is_none() {
            let dir = o
                .files_dir
                .clone()
                .or_else(|| get(OTELCONC_TELEMETRY_DIR).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TELEMETRY_DIR));
            Export::Files { dir }
        } else {
            let default = |path: &str| signal_url(protocol.default_endpoint(), protocol, path);
            Export::Otlp {
                traces_endpoint: traces.unwrap_or_else(|| default("/v1/traces")),
                metrics_endpoint: metrics.unwrap_or_else(|| default("/v1/metrics")),
                protocol,
                headers,
                timeout,
            }
        }
    };

    Ok(Config {
        export,
        service_name,
        resource_attributes,
        sampler,
        metric_export_interval,
    })
}

fn unknown_service() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    match exe {
        Some(exe) => format!("unknown_service:{exe}"),
        None => "unknown_service".to_owned(),
    }
}

/// The generic endpoint plus the signal path for HTTP (appended to the URL's path, before
/// any query); gRPC uses the base as is.
fn signal_url(base: &str, protocol: Protocol, path: &str) -> String {
    match protocol {
        Protocol::Grpc => base.to_owned(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let (before, query) = base.split_at(base.find('?').unwrap_or(base.len()));
            format!("{}{path}{query}", before.trim_end_matches('/'))
        }
    }
}

fn check_url(variable: &'static str, value: &str) -> Result<String, SetupError> {
    let v = value.trim();
    // The exporters parse it as a URI (gRPC) and as a URL (HTTP requests); one they
    // would refuse, or fail every export on, is refused here, by name. The URI parse
    // also refuses a missing host (`http://`, `http:///path`) and spaces.
    if (v.starts_with("http://") || v.starts_with("https://"))
        && v.parse::<http::Uri>().is_ok()
        && reqwest::Url::parse(v).is_ok()
    {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            variable,
            value,
            "an http:// or https:// URL such as http://localhost:4318",
        ))
    }
}

fn parse_millis(variable: &'static str, value: &str) -> Result<u64, SetupError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| invalid(variable, value, "a whole number of milliseconds"))
}

fn parse_sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, SetupError> {
    let ratio = || -> Result<f64, SetupError> {
        match &arg {
            None => Ok(1.0),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(invalid(
                    OTEL_TRACES_SAMPLER_ARG,
                    v,
                    "a number from 0 to 1 (the fraction of traces to sample)",
                )),
            },
        }
    };
    let Some(name) = name else {
        return Ok(Sampler::default());
    };
    // Case-insensitive, as the specification asks of enum values.
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(ratio()?),
        "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(ratio()?),
        _ => return Err(invalid(OTEL_TRACES_SAMPLER, &name, Sampler::ACCEPTED)),
    })
}

/// `headers` as HTTP headers (names lowercased), or `None` when a name or value is not
/// one HTTP allows: what the HTTP exporter can send and gRPC metadata can carry.
pub(crate) fn header_map(headers: &[(String, String)]) -> Option<http::HeaderMap> {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).ok()?,
            http::HeaderValue::from_str(v).ok()?,
        );
    }
    Some(map)
}

/// Parses the W3C-baggage-like `key=value,key2=value2` list, percent-decoding both sides.
fn parse_pairs(variable: &'static str, value: &str) -> Result<Vec<(String, String)>, SetupError> {
    const ACCEPTED: &str = "comma-separated key=value pairs, values percent-encoded (a=1,b=x%20y)";
    let mut out = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(invalid(variable, value, ACCEPTED));
        };
        let k = percent_decode(k.trim()).ok_or_else(|| invalid(variable, value, ACCEPTED))?;
        let v = percent_decode(v.trim()).ok_or_else(|| invalid(variable, value, ACCEPTED))?;
        if k.is_empty() {
            return Err(invalid(variable, value, ACCEPTED));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Cc").as_deref(), Some("a b,c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    /// gRPC metadata takes the map as is, so its names must come out lowercased.
    #[test]
    fn header_map_lowercases_names_and_refuses_what_http_does_not_allow() {
        let pair = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let map = header_map(&pair("X-Api-Key", "a b")).expect("valid");
        assert_eq!(
            map.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-api-key"]
        );
        assert!(header_map(&pair("bad name", "v")).is_none());
        assert!(header_map(&pair("k", "line\nbreak")).is_none());
    }

    /// What the scheme check and the two parses refuse, and what they let through.
    #[test]
    fn check_url_takes_only_urls_both_exporters_can_use() {
        for bad in [
            "http://",
            "https://",
            "http:///v1",
            "http://a b",
            "http://h:4318/a b",
            "http:// h",
            "ftp://h",
            "localhost:4318",
            "http://h:port",
        ] {
            assert!(check_url("V", bad).is_err(), "{bad}");
        }
        for good in [
            "http://localhost:4318",
            " https://h/base?x=1 ",
            "http://[::1]:4317",
        ] {
            assert_eq!(check_url("V", good).expect(good), good.trim());
        }
    }
}
