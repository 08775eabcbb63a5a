//! The mock's SigV4 verifier: it recomputes the signature of the request it received, the way
//! the Bedrock Runtime service does, and says why it does not match.
//!
//! Written apart from the gateway's signer on purpose (the two meet only on the wire), from
//! AWS's description: canonical request = method, the raw path with every segment URI-encoded
//! again, the sorted query, the signed headers (`name:trimmed value`), their names, and the
//! SHA-256 of the body actually received; string to sign = `AWS4-HMAC-SHA256`, `x-amz-date`,
//! scope, hash of the canonical request; key = HMAC chain `AWS4`+secret → date → region →
//! service → `aws4_request`. `x-amz-date` must be within 5 minutes of now and match the scope
//! date; the scope's service must be `bedrock`; `host` and `x-amz-date` must be signed; a sent
//! `x-amz-content-sha256` must be signed and match the body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Uri};
use ring::{digest, hmac};

/// How far `x-amz-date` may be from the mock's clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why a request's signature is refused; each maps to Bedrock's error type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigError {
    /// No `Authorization` header.
    Missing,
    /// Not an `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header, or a
    /// required header is absent or unsigned.
    Incomplete(String),
    /// `x-amz-date` missing, unparsable or outside the allowed skew.
    Expired(String),
    /// The credential scope names another service.
    WrongService(String),
    /// The signature does not match.
    Mismatch,
}

impl SigError {
    /// Bedrock's `x-amzn-errortype` and message for this refusal.
    pub(crate) fn describe(&self) -> (&'static str, String) {
        match self {
            Self::Missing => (
                "UnrecognizedClientException",
                "The security token included in the request is invalid. (no Authorization \
                 header)"
                    .to_owned(),
            ),
            Self::Incomplete(why) => (
                "IncompleteSignatureException",
                format!("Authorization header requires {why}."),
            ),
            Self::Expired(why) => (
                "InvalidSignatureException",
                format!("Signature expired: {why}"),
            ),
            Self::WrongService(service) => (
                "InvalidSignatureException",
                format!(
                    "Credential should be scoped to correct service: 'bedrock'. (got '{service}')"
                ),
            ),
            Self::Mismatch => (
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you \
                 provided. Check your AWS Secret Access Key and signing method. Consult the \
                 service documentation for details."
                    .to_owned(),
            ),
        }
    }
}

/// The parts of an `Authorization` header.
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| SigError::Incomplete("the AWS4-HMAC-SHA256 algorithm".into()))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| SigError::Incomplete(format!("parameter '{what}'"));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return Err(SigError::Incomplete(
            "a Credential of the form KEY/DATE/REGION/SERVICE/aws4_request".into(),
        ));
    };
    Ok(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Verifies the request's signature against `secret`; `now` is the mock's clock.
pub(crate) fn verify(
    secret: &str,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SigError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let auth = parse_authorization(header("authorization").ok_or(SigError::Missing)?)?;
    if auth.access_key.is_empty() {
        return Err(SigError::Incomplete("an access key id".into()));
    }
    if auth.service != "bedrock" {
        return Err(SigError::WrongService(auth.service.to_owned()));
    }
    let amz_date = header("x-amz-date")
        .ok_or_else(|| SigError::Expired("the request has no x-amz-date header".into()))?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| SigError::Expired(format!("x-amz-date '{amz_date}' is not valid")))?;
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(SigError::Expired(format!(
            "{amz_date} is more than 5 min. away from the server time"
        )));
    }
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(SigError::Incomplete(
            "a Credential date that matches x-amz-date".into(),
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(SigError::Incomplete(format!("'{required}' to be signed")));
        }
    }
    let body_hash = hex::encode(digest::digest(&digest::SHA256, body));
    if let Some(sent) = header("x-amz-content-sha256") {
        if !auth.signed_headers.contains(&"x-amz-content-sha256") {
            return Err(SigError::Incomplete(
                "'x-amz-content-sha256' to be signed".into(),
            ));
        }
        if sent != body_hash {
            return Err(SigError::Mismatch);
        }
    }
    if header("x-amz-security-token").is_some()
        && !auth.signed_headers.contains(&"x-amz-security-token")
    {
        return Err(SigError::Incomplete(
            "'x-amz-security-token' to be signed".into(),
        ));
    }
    let expected = signature(
        secret,
        Signing {
            method,
            uri,
            headers,
            signed_headers: &auth.signed_headers,
            body_hash: &body_hash,
            amz_date,
            scope: [auth.date, auth.region, auth.service],
        },
    )?;
    if expected == auth.signature {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

/// What a signature is computed over.
pub(crate) struct Signing<'a> {
    pub method: &'a str,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub signed_headers: &'a [&'a str],
    pub body_hash: &'a str,
    pub amz_date: &'a str,
    /// Date, region, service.
    pub scope: [&'a str; 3],
}

/// The hex signature of a request.
pub(crate) fn signature(secret: &str, s: Signing<'_>) -> Result<String, SigError> {
    let mut canonical_headers = String::new();
    for name in s.signed_headers {
        let values: Vec<&str> = s
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            return Err(SigError::Incomplete(format!(
                "signed header '{name}' to be present"
            )));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical = [
        s.method,
        &canonical_uri(s.uri.path()),
        &canonical_query(s.uri.query()),
        &canonical_headers,
        &s.signed_headers.join(";"),
        s.body_hash,
    ]
    .join("\n");
    let [date, region, service] = s.scope;
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{date}/{region}/{service}/aws4_request\n{}",
        s.amz_date,
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    Ok(hex::encode(hmac_sha256(&key, to_sign.as_bytes())))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// URI-encodes every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The raw path with each segment encoded once more (all services but S3).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` → a moment.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| s.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// AWS's published `get-vanilla` case (signed for service `service`, which `verify`
    /// refuses), replayed through the pieces the verifier uses.
    #[test]
    fn the_published_get_vanilla_signature_is_reproduced() {
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let sig = signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Signing {
                method: "GET",
                uri: &uri,
                headers: &headers,
                signed_headers: &["host", "x-amz-date"],
                body_hash: &hex::encode(digest::digest(&digest::SHA256, b"")),
                amz_date: "20150830T123600Z",
                scope: ["20150830", "us-east-1", "service"],
            },
        )
        .unwrap();
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn refusals_say_why() {
        let uri: Uri = "/model/m%3A0/converse".parse().unwrap();
        let now = parse_amz_date("20240101T000000Z").unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify("s", "POST", &uri, &headers, b"{}", now),
            Err(SigError::Missing)
        );
        headers.insert("host", HeaderValue::from_static("h"));
        headers.insert("x-amz-date", HeaderValue::from_static("20240101T000000Z"));
        headers.insert("authorization", HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        ));
        assert_eq!(
            verify("s", "POST", &uri, &headers, b"{}", now),
            Err(SigError::WrongService("s3".into()))
        );
        headers.insert("authorization", HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        ));
        assert_eq!(
            verify("s", "POST", &uri, &headers, b"{}", now),
            Err(SigError::Mismatch)
        );
        let later = now + Duration::from_secs(301);
        assert!(matches!(
            verify("s", "POST", &uri, &headers, b"{}", later),
            Err(SigError::Expired(_))
        ));
        assert_eq!(canonical_uri(uri.path()), "/model/m%253A0/converse");
    }
}
