//! The standard OpenTelemetry environment variables, and the one decision this crate makes
//! from them itself: whether traces are exported at all.
//!
//! Traces are off unless asked for: an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), or `OTEL_TRACES_EXPORTER` names `otlp` (then the
//! exporter's default endpoint, `http://localhost:4318/v1/traces`, applies).
//! `OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none` win over both. An empty value is
//! unset, as the specification says. The exporter (`crate::export`) is ours, so the endpoint,
//! timeout and headers are read here; the sampler, resource and batching the OpenTelemetry SDK
//! reads from the environment itself: [`SDK_READS`].

use std::time::Duration;

/// `true` turns the SDK off whatever else is set.
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// Which exporter: `otlp` (the only one built in), or `none`.
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
/// Base URL of the collector; `/v1/traces` is appended.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Full URL traces are posted to (wins over the base URL).
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Only `http/protobuf` is supported; another value is warned about and ignored.
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// Longest one export may take, in milliseconds (default 10,000).
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// Headers on every export, `name=value` pairs separated by commas, values percent-encoded.
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// `service.name` of the spans (default: the plane's own name; `OTEL_RESOURCE_ATTRIBUTES`
/// may name it too). Read by the SDK.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// Variables the SDK reads itself, honoured as the specification says (listed for the
/// README and the start-up log).
pub const SDK_READS: &[&str] = &[
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
];

/// The one protocol this build exports with.
pub const PROTOCOL: &str = "http/protobuf";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where traces go when only `OTEL_TRACES_EXPORTER=otlp` is set (a local collector).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    /// No traces; the reason, for the start-up log.
    Off(&'static str),
    /// Export traces over OTLP.
    On(Export),
}

/// How to export, as far as this crate decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The URL spans are posted to.
    pub endpoint: String,
    /// Headers sent with every export (names lower-cased, values decoded).
    pub headers: Vec<(String, String)>,
    /// Longest one export request may take.
    pub timeout: Duration,
    /// A protocol other than [`PROTOCOL`] that was asked for (and is not used).
    pub ignored_protocol: Option<String>,
}

impl Settings {
    /// Reads the variables through `var` (the process environment in production).
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if var(OTEL_SDK_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Self::Off("OTEL_SDK_DISABLED is true");
        }
        let endpoint = var(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).or_else(|| {
            var(OTEL_EXPORTER_OTLP_ENDPOINT)
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        });
        match var(OTEL_TRACES_EXPORTER) {
            Some(names) => {
                let names: Vec<String> = names
                    .split(',')
                    .map(|n| n.trim().to_ascii_lowercase())
                    .collect();
                if names.iter().any(|n| n == "none") {
                    return Self::Off("OTEL_TRACES_EXPORTER is none");
                }
                if !names.iter().any(|n| n == "otlp") {
                    return Self::Off(
                        "OTEL_TRACES_EXPORTER names no exporter but otlp is built in",
                    );
                }
            }
            None if endpoint.is_none() => return Self::Off("no OTLP endpoint is set"),
            None => {}
        }
        let millis = var(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT)
            .or_else(|| var(OTEL_EXPORTER_OTLP_TIMEOUT))
            .and_then(|v| v.trim().parse::<u64>().ok());
        let ignored_protocol = var(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
            .or_else(|| var(OTEL_EXPORTER_OTLP_PROTOCOL))
            .filter(|p| p.trim() != PROTOCOL);
        let headers = var(OTEL_EXPORTER_OTLP_TRACES_HEADERS)
            .or_else(|| var(OTEL_EXPORTER_OTLP_HEADERS))
            .map(|list| headers(&list))
            .unwrap_or_default();
        Self::On(Export {
            endpoint: endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            headers,
            timeout: millis.map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            ignored_protocol,
        })
    }
}

/// `name=value,name2=value2` as the specification writes headers: names trimmed and
/// lower-cased, values trimmed and percent-decoded; a pair without `=` or a name is skipped.
fn headers(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            (!name.is_empty()).then(|| (name, percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Settings {
        Settings::read(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn off_unless_an_endpoint_or_the_otlp_exporter_is_asked_for() {
        assert!(matches!(read(&[]), Settings::Off(_)));
        assert!(matches!(
            read(&[(OTEL_EXPORTER_OTLP_ENDPOINT, " ")]),
            Settings::Off(_)
        ));
        let Settings::On(on) = read(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318/")]) else {
            panic!("an endpoint turns traces on");
        };
        assert_eq!(on.endpoint, "http://c:4318/v1/traces");
        assert!(on.headers.is_empty());
        assert_eq!(on.timeout, DEFAULT_TIMEOUT);
        let Settings::On(on) = read(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://t:1/x"),
            (OTEL_EXPORTER_OTLP_TIMEOUT, "2500"),
        ]) else {
            panic!("on");
        };
        assert_eq!(on.endpoint, "http://t:1/x");
        assert_eq!(on.timeout, Duration::from_millis(2500));
        let Settings::On(on) = read(&[(OTEL_TRACES_EXPORTER, "otlp")]) else {
            panic!("otlp alone turns traces on");
        };
        assert_eq!(on.endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn headers_are_pairs_with_decoded_values_and_the_traces_ones_win() {
        let endpoint = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318");
        let Settings::On(on) = read(&[
            endpoint,
            (
                OTEL_EXPORTER_OTLP_HEADERS,
                " Api-Key = a%20b%3Dc ,broken, =x,tenant=t1",
            ),
        ]) else {
            panic!("on");
        };
        assert_eq!(
            on.headers,
            [
                ("api-key".to_owned(), "a b=c".to_owned()),
                ("tenant".to_owned(), "t1".to_owned())
            ]
        );
        let Settings::On(on) = read(&[
            endpoint,
            (OTEL_EXPORTER_OTLP_HEADERS, "a=1"),
            (OTEL_EXPORTER_OTLP_TRACES_HEADERS, "b=2"),
        ]) else {
            panic!("on");
        };
        assert_eq!(on.headers, [("b".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn disabled_and_none_win() {
        let endpoint = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318");
        for off in [
            (OTEL_SDK_DISABLED, "TRUE"),
            (OTEL_TRACES_EXPORTER, "none"),
            (OTEL_TRACES_EXPORTER, "zipkin"),
        ] {
            assert!(
                matches!(read(&[endpoint, off]), Settings::Off(_)),
                "{off:?}"
            );
        }
        assert!(matches!(
            read(&[endpoint, (OTEL_SDK_DISABLED, "false")]),
            Settings::On(_)
        ));
    }

    #[test]
    fn another_protocol_is_noted() {
        let Settings::On(on) = read(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
        ]) else {
            panic!("on");
        };
        assert_eq!(on.ignored_protocol.as_deref(), Some("grpc"));
        let Settings::On(on) = read(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "http/protobuf"),
        ]) else {
            panic!("on");
        };
        assert_eq!(on.ignored_protocol, None);
    }
}
