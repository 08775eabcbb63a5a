//! AWS Signature Version 4 for the requests the Bedrock adapter sends (header-based signing,
//! `AWS4-HMAC-SHA256`).
//!
//! Guarantees: the signature covers the method, the path, the query, the body (its SHA-256 in
//! `x-amz-content-sha256`), the host, the time (`x-amz-date`) and, with temporary credentials,
//! the session token (`x-amz-security-token`); nothing else is signed, so headers added later
//! (content type, operator extras) cannot invalidate it. The secret key only ever enters the
//! HMAC chain; the headers it yields are marked sensitive by the caller.
//!
//! The canonical URI is the path as sent with every segment URI-encoded once more, as all AWS
//! services but S3 expect (`…v1%3A0` is signed as `…v1%253A0`). Query pairs are sorted as
//! given: the adapter's URLs carry no query, so they are not re-encoded.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

/// The signing algorithm named in the string to sign and in `Authorization`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The long-term or temporary AWS credentials one request is signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One request to sign. `headers` are the headers to sign besides the ones the signer adds
/// (`x-amz-content-sha256`, `x-amz-date`, `x-amz-security-token`); names lowercase.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as it goes on the wire (already percent-encoded once).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// `host` (with `:port` when not the default) and any other header to sign.
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
}

/// Where and when a signature is valid.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// The headers to add to the request: name → value (`authorization` last).
#[derive(Debug)]
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
}

/// Signs `request`; `add_payload_hash` controls whether `x-amz-content-sha256` is sent and
/// signed (Bedrock: yes; the published test suite: no).
pub fn sign(
    keys: &AwsKeys,
    scope: Scope<'_>,
    request: &Request<'_>,
    add_payload_hash: bool,
) -> Signed {
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, request.body));
    let mut added: Vec<(&'static str, String)> = Vec::new();
    if add_payload_hash {
        added.push(("x-amz-content-sha256", payload_hash.clone()));
    }
    added.push(("x-amz-date", scope.amz_date.to_owned()));
    if let Some(token) = &keys.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .chain(added.iter().map(|(n, v)| ((*n).to_owned(), v.clone())))
        .collect();
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        payload_hash,
    );
    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", keys.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
    added.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
            keys.access_key_id
        ),
    ));
    Signed { headers: added }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

/// Every segment of the (already encoded) path URI-encoded again; `/` kept.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(super::super::common::encode_segment)
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
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` for a moment (UTC).
pub fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite_keys() -> AwsKeys {
        AwsKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// `get-vanilla` from AWS's published Signature Version 4 test suite.
    #[test]
    fn the_published_get_vanilla_vector() {
        let request = Request {
            method: "GET",
            path: "/",
            query: None,
            headers: vec![("host", "example.amazonaws.com".into())],
            body: b"",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "service",
            amz_date: "20150830T123600Z",
        };
        let signed = sign(&suite_keys(), scope, &request, false);
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["x-amz-date", "authorization"]);
        assert_eq!(
            signed.headers.last().map(|(_, v)| v.as_str()),
            Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
    }

    #[test]
    fn bedrock_paths_are_encoded_twice_and_the_token_is_signed() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"),
            "/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/converse"
        );
        let mut keys = suite_keys();
        keys.session_token = Some("TOKEN".into());
        let request = Request {
            method: "POST",
            path: "/model/m%3A0/converse",
            query: None,
            headers: vec![("host", "bedrock-runtime.us-east-1.amazonaws.com".into())],
            body: b"{}",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "bedrock",
            amz_date: "20240101T000000Z",
        };
        let signed = sign(&keys, scope, &request, true);
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-security-token",
                "authorization"
            ]
        );
        let auth = &signed.headers[3].1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="), "{auth}");
        assert!(!format!("{keys:?}").contains("EXAMPLEKEY"));
    }

    #[test]
    fn dates_are_formatted_in_utc() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(at), "20150830T123600Z");
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(amz_date(leap), "20000229T000000Z");
    }
}
