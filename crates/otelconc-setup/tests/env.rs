//! Configuration from the standard `OTEL_*` variables: every variable, code overriding
//! the environment, and an error naming the variable for every invalid value.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use otelconc_setup::{self as setup, Config, Export, Protocol, Sampler, SetupBuilder, SetupError};

fn env(vars: &[(&str, &str)]) -> SetupBuilder {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    setup::builder().env_lookup(move |k| map.get(k).cloned())
}

fn config(vars: &[(&str, &str)]) -> Config {
    env(vars).config().expect("valid configuration")
}

fn otlp(c: &Config) -> (&str, &str, Protocol, &[(String, String)], Duration) {
    match &c.export {
        Export::Otlp {
            traces_endpoint,
            metrics_endpoint,
            protocol,
            headers,
            timeout,
        } => (
            traces_endpoint,
            metrics_endpoint,
            *protocol,
            headers,
            *timeout,
        ),
        other => panic!("expected OTLP, got {other:?}"),
    }
}

#[test]
fn defaults_without_any_variable() {
    let c = config(&[]);
    assert_eq!(
        c.export,
        Export::Files {
            dir: PathBuf::from("otelconc-telemetry")
        }
    );
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
    assert_eq!(c.metric_export_interval, Duration::from_secs(60));
    assert!(
        c.service_name.starts_with("unknown_service"),
        "{}",
        c.service_name
    );
    assert!(c.resource_attributes.is_empty());
}

#[test]
fn generic_endpoint_gets_signal_paths_for_http_only() {
    let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318/")]);
    let (t, m, p, _, timeout) = otlp(&c);
    assert_eq!(
        p,
        Protocol::HttpProtobuf,
        "http/protobuf is the spec default"
    );
    assert_eq!(t, "http://col:4318/v1/traces");
    assert_eq!(m, "http://col:4318/v1/metrics");
    assert_eq!(timeout, Duration::from_secs(10));

    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    let (t, m, p, _, _) = otlp(&c);
    assert_eq!(p, Protocol::Grpc);
    assert_eq!((t, m), ("http://col:4317", "http://col:4317"));

    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://col"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]);
    let (t, _, p, _, _) = otlp(&c);
    assert_eq!(p, Protocol::HttpJson);
    assert_eq!(t, "https://col/v1/traces");

    // Enum values are case-insensitive, as the specification asks.
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC"),
    ]);
    assert_eq!(otlp(&c).2, Protocol::Grpc);

    // The signal path goes on the URL's path, before a query.
    let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://col/otlp/?tenant=a")]);
    let (t, m, _, _, _) = otlp(&c);
    assert_eq!(t, "https://col/otlp/v1/traces?tenant=a");
    assert_eq!(m, "https://col/otlp/v1/metrics?tenant=a");
}

#[test]
fn signal_endpoints_are_used_as_is_and_win_over_the_generic_one() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:9999/custom",
        ),
    ]);
    let (t, m, _, _, _) = otlp(&c);
    assert_eq!(t, "http://traces:9999/custom");
    assert_eq!(m, "http://generic:4318/v1/metrics");

    let c = config(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/x")]);
    let (t, m, _, _, _) = otlp(&c);
    assert_eq!(m, "http://m:1/x");
    assert_eq!(
        t, "http://localhost:4318/v1/traces",
        "the other signal uses the default"
    );
}

#[test]
fn headers_timeout_interval_and_resource_are_parsed_and_decoded() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s%3Dcret , x-team=a%20b",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-res,region=eu%2Cwest,k=",
        ),
    ]);
    let (_, _, _, headers, timeout) = otlp(&c);
    assert_eq!(
        headers,
        [
            ("api-key".to_owned(), "s=cret".to_owned()),
            ("x-team".to_owned(), "a b".to_owned())
        ]
    );
    assert_eq!(timeout, Duration::from_millis(2500));
    assert_eq!(c.metric_export_interval, Duration::from_millis(1500));
    assert_eq!(c.service_name, "from-res");
    assert_eq!(
        c.resource_attributes,
        [
            ("region".to_owned(), "eu,west".to_owned()),
            ("k".to_owned(), String::new())
        ]
    );
}

#[test]
fn service_name_precedence() {
    // Code's service_name > OTEL_SERVICE_NAME > service.name in OTEL_RESOURCE_ATTRIBUTES
    // > the program's default.
    let all = [
        ("OTEL_SERVICE_NAME", "from-env"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-res"),
    ];
    let b = env(&all)
        .default_service_name("default")
        .service_name("from-code");
    assert_eq!(b.config().unwrap().service_name, "from-code");
    let b = env(&all).default_service_name("default");
    assert_eq!(b.config().unwrap().service_name, "from-env");
    let b = env(&all[1..]).default_service_name("default");
    assert_eq!(b.config().unwrap().service_name, "from-res");
    let b = env(&[]).default_service_name("default");
    assert_eq!(b.config().unwrap().service_name, "default");
}

#[test]
fn samplers_and_their_argument() {
    let cases: &[(&[(&str, &str)], Sampler)] = &[
        (&[("OTEL_TRACES_SAMPLER", "always_on")], Sampler::AlwaysOn),
        (&[("OTEL_TRACES_SAMPLER", "always_off")], Sampler::AlwaysOff),
        (
            &[("OTEL_TRACES_SAMPLER", "traceidratio")],
            Sampler::TraceIdRatio(1.0),
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ],
            Sampler::TraceIdRatio(0.25),
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
            Sampler::ParentBasedAlwaysOn,
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
            Sampler::ParentBasedAlwaysOff,
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ],
            Sampler::ParentBasedTraceIdRatio(0.0),
        ),
        // Enum values are case-insensitive, as the specification asks.
        (
            &[
                ("OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ],
            Sampler::ParentBasedTraceIdRatio(0.5),
        ),
        (
            &[("OTEL_TRACES_SAMPLER", " ALWAYS_OFF ")],
            Sampler::AlwaysOff,
        ),
        // The argument of a sampler that takes none is ignored.
        (
            &[
                ("OTEL_TRACES_SAMPLER", "always_on"),
                ("OTEL_TRACES_SAMPLER_ARG", "junk"),
            ],
            Sampler::AlwaysOn,
        ),
    ];
    for (vars, want) in cases {
        assert_eq!(config(vars).sampler, *want, "{vars:?}");
    }
}

#[test]
fn sdk_disabled() {
    assert_eq!(
        config(&[("OTEL_SDK_DISABLED", "true")]).export,
        Export::Disabled
    );
    assert_eq!(
        config(&[("OTEL_SDK_DISABLED", "TRUE")]).export,
        Export::Disabled
    );
    assert!(matches!(
        config(&[("OTEL_SDK_DISABLED", "false")]).export,
        Export::Files { .. }
    ));
    let guard = env(&[("OTEL_SDK_DISABLED", "true")]).build().unwrap();
    assert!(guard.tracer_provider().is_none() && guard.meter_provider().is_none());
    assert_eq!(guard.destination(), &setup::Destination::Disabled);
    guard.shutdown().unwrap();
}

#[test]
fn empty_variables_count_as_unset() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", " "),
        ("OTEL_TRACES_SAMPLER", ""),
        ("OTEL_SDK_DISABLED", ""),
    ]);
    assert!(matches!(c.export, Export::Files { .. }));
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
}

#[test]
fn values_set_in_code_override_the_environment() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://env-traces:4318/t",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
        ("OTEL_SERVICE_NAME", "env"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
        ("OTEL_RESOURCE_ATTRIBUTES", "region=env,zone=z1"),
        ("OTELCONC_TELEMETRY_DIR", "env-dir"),
    ];
    let c = env(&vars)
        .endpoint("http://code:4317")
        .protocol(Protocol::Grpc)
        .timeout(Duration::from_secs(3))
        .service_name("code")
        .sampler(Sampler::AlwaysOn)
        .metric_export_interval(Duration::from_secs(7))
        .resource_attribute("region", "code")
        .config()
        .unwrap();
    let (t, m, p, _, timeout) = otlp(&c);
    assert_eq!(
        (t, m, p),
        ("http://code:4317", "http://code:4317", Protocol::Grpc)
    );
    assert_eq!(timeout, Duration::from_secs(3));
    assert_eq!(c.service_name, "code");
    assert_eq!(c.sampler, Sampler::AlwaysOn);
    assert_eq!(c.metric_export_interval, Duration::from_secs(7));
    let region: Vec<_> = c
        .resource_attributes
        .iter()
        .filter(|(k, _)| k == "region")
        .collect();
    assert_eq!(region.last().unwrap().1, "code", "later (code) entries win");
    assert!(
        c.resource_attributes
            .contains(&("zone".to_owned(), "z1".to_owned()))
    );

    // files_dir from code beats OTELCONC_TELEMETRY_DIR, but only when no endpoint is set.
    let c = env(&[("OTELCONC_TELEMETRY_DIR", "env-dir")])
        .files_dir("code-dir")
        .config()
        .unwrap();
    assert_eq!(
        c.export,
        Export::Files {
            dir: "code-dir".into()
        }
    );
    let c = env(&[("OTELCONC_TELEMETRY_DIR", "env-dir")])
        .config()
        .unwrap();
    assert_eq!(
        c.export,
        Export::Files {
            dir: "env-dir".into()
        }
    );
    let c = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")])
        .files_dir("code-dir")
        .config()
        .unwrap();
    assert!(
        matches!(c.export, Export::Otlp { .. }),
        "an endpoint wins over files"
    );

    // Invalid environment values that code overrides are not an error.
    let c = env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp"),
        ("OTEL_TRACES_SAMPLER", "x"),
    ])
    .protocol(Protocol::HttpJson)
    .sampler(Sampler::AlwaysOff)
    .config();
    assert!(c.is_ok(), "{c:?}");
}

/// Every invalid value is an error naming the variable, the value and what is accepted.
#[test]
fn invalid_values_name_the_variable_the_value_and_the_accepted_values() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "udp",
            "grpc, http/protobuf, http/json",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "HTTP",
            "grpc, http/protobuf, http/json",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4318",
            "http:// or https:// URL",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://x",
            "http:// or https:// URL",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://",
            "http:// or https:// URL",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "nope",
            "http:// or https:// URL",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "key=value"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "=v", "key=value"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "k=%zz", "percent-encoded"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1", "milliseconds"),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1,b", "key=value"),
        (
            "OTEL_TRACES_SAMPLER",
            "jaeger_remote",
            "parentbased_traceidratio",
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "positive"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "milliseconds"),
        ("OTEL_SDK_DISABLED", "yes", "true, false"),
    ];
    for (var, value, accepted) in cases {
        let err = env(&[(var, value)])
            .config()
            .expect_err(&format!("{var}={value}"));
        let text = err.to_string();
        assert!(
            matches!(&err, SetupError::InvalidValue { variable, .. } if variable == var),
            "{var}={value}: {err:?}"
        );
        assert!(text.contains(var), "names the variable: {text}");
        assert!(
            text.contains(&format!("{value:?}")),
            "quotes the value: {text}"
        );
        assert!(
            text.contains(accepted),
            "says what is accepted ({accepted}): {text}"
        );
    }
    for arg in ["2", "-0.1", "half"] {
        let err = env(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
        ])
        .config()
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("OTEL_TRACES_SAMPLER_ARG") && text.contains("0 to 1"),
            "{text}"
        );
    }
    // A bad endpoint set in code is reported too, and install fails the same way.
    let err = env(&[]).endpoint("collector:4317").config().unwrap_err();
    assert!(err.to_string().contains("endpoint (set in code)"), "{err}");
    let err = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")])
        .install()
        .unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "{err}"
    );
}

/// Headers and endpoints that parse as `key=value` pairs or as `http://` URLs but that no
/// exporter can send are invalid values too, for every protocol: the HTTP exporter would
/// otherwise drop such a header without a word, and report such an endpoint without
/// naming the variable.
#[test]
fn headers_and_endpoints_no_exporter_can_use_are_invalid_values() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
    for protocol in ["http/protobuf", "http/json", "grpc"] {
        for header in ["bad key=v", "k=line%0Abreak", "k\u{e9}=v"] {
            let vars = [
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_HEADERS", header),
            ];
            let err = env(&vars).config().expect_err(header);
            assert!(
                matches!(
                    &err,
                    SetupError::InvalidValue {
                        variable: "OTEL_EXPORTER_OTLP_HEADERS",
                        ..
                    }
                ),
                "{protocol} {header:?}: {err:?}"
            );
            let err = env(&vars).build().expect_err(header);
            assert!(
                err.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"),
                "{protocol} {header:?}: {err}"
            );
        }
    }
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:port"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://col:4318/v1/traces?x=\"y\"",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://[::1/v1/metrics",
        ),
    ] {
        let err = env(&[(var, value)]).config().expect_err(value);
        assert!(
            matches!(&err, SetupError::InvalidValue { variable, .. } if variable == &var),
            "{var}={value}: {err:?}"
        );
        assert!(err.to_string().contains("http:// or https:// URL"), "{err}");
    }
}

/// A zero metric export interval set in code is refused, as `OTEL_METRIC_EXPORT_INTERVAL=0`
/// is: the SDK's reader would silently use 60 s (or the process environment's value)
/// while `config()` said zero.
#[test]
fn a_zero_interval_set_in_code_is_refused_as_the_variable_is() {
    let err = env(&[])
        .metric_export_interval(Duration::ZERO)
        .config()
        .unwrap_err();
    assert!(
        matches!(&err, SetupError::InvalidValue { variable, .. } if variable.contains("metric_export_interval")),
        "{err:?}"
    );
    assert!(err.to_string().contains("positive"), "{err}");
    let dir = std::env::temp_dir().join("otelconc-setup-zero-interval");
    assert!(
        env(&[])
            .files_dir(&dir)
            .metric_export_interval(Duration::ZERO)
            .build()
            .is_err()
    );
}

/// A sampler ratio set in code is checked as `OTEL_TRACES_SAMPLER_ARG` is: outside
/// `[0, 1]` (or NaN) it is refused, naming the value, instead of reaching the SDK.
#[test]
fn a_sampler_ratio_set_in_code_is_checked_as_the_variable_is() {
    for sampler in [
        Sampler::TraceIdRatio(2.0),
        Sampler::TraceIdRatio(-0.1),
        Sampler::ParentBasedTraceIdRatio(f64::NAN),
    ] {
        let err = env(&[]).sampler(sampler).config().unwrap_err();
        assert!(
            matches!(&err, SetupError::InvalidValue { variable, .. } if variable.contains("sampler")),
            "{sampler}: {err:?}"
        );
        assert!(err.to_string().contains("0 to 1"), "{err}");
    }
    for ok in [0.0, 0.25, 1.0] {
        let c = env(&[])
            .sampler(Sampler::TraceIdRatio(ok))
            .config()
            .unwrap();
        assert_eq!(c.sampler, Sampler::TraceIdRatio(ok));
    }
}

#[test]
fn variable_names_are_public_constants() {
    assert_eq!(
        setup::OTEL_EXPORTER_OTLP_ENDPOINT,
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    );
    assert_eq!(setup::OTELCONC_TELEMETRY_DIR, "OTELCONC_TELEMETRY_DIR");
    assert_eq!(setup::ALL_VARIABLES.len(), 13);
}
