//! Google's OAuth token endpoint of the mock, and the tokens it issued.
//!
//! - `POST /token`: the service-account JWT bearer grant. The form body must carry
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an `assertion` JWT that is
//!   `RS256`-signed by the key of [`MockOptions::google_service_account`], with `iss` = its
//!   `client_email`, `aud` = the URL the request was sent to (`http://{Host}/token`), a `scope`
//!   that includes `https://www.googleapis.com/auth/cloud-platform`, `exp` in the future and
//!   `exp - iat` at most 3600. Then it answers
//!   `{"access_token":"ya29.mock-N","expires_in":TTL,"token_type":"Bearer"}` (N counts from 1,
//!   TTL is [`MockOptions::google_token_ttl_secs`]); else 400
//!   `{"error":"invalid_grant"|"unsupported_grant_type"|"invalid_scope","error_description":…}`
//!   as Google does. Token requests are recorded like API requests (`body` is the form as a
//!   JSON object, `model` null).
//! - [`Tokens::valid`]: whether a Vertex request carries a token issued here that has not
//!   expired.
//!
//! [`MockOptions::google_service_account`]: crate::mock::MockOptions::google_service_account
//! [`MockOptions::google_token_ttl_secs`]: crate::mock::MockOptions::google_token_ttl_secs

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{KeyPair as _, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Map, Value};

use crate::mock::admit::Inbound;
use crate::mock::openai::json_response;
use crate::mock::record::{now_ms, RecordInit};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's limit on an assertion's lifetime.
const MAX_ASSERTION_SECS: u64 = 3600;

/// The tokens this mock issued, and the service account it trusts (parsed on first use).
#[derive(Debug, Default)]
pub(super) struct Tokens {
    issued: AtomicU64,
    /// Token → expiry (Unix ms).
    live: Mutex<HashMap<String, u64>>,
    account: OnceLock<Result<Account, String>>,
}

#[derive(Debug)]
struct Account {
    client_email: String,
    /// DER `RSAPublicKey`.
    public_key: Vec<u8>,
}

/// `POST /token`.
pub(super) async fn token(Extension(tokens): Extension<Arc<Tokens>>, inbound: Inbound) -> Response {
    let (shared, headers) = (&inbound.shared, &inbound.headers);
    let form = parse_form(&inbound.body);
    let record = shared.records.start(RecordInit {
        body: Value::Object(
            form.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        ),
        ..inbound.record_init()
    });
    let account = tokens
        .account
        .get_or_init(|| parse_account(shared.options.google_service_account.as_deref()));
    let audience = format!(
        "http://{}{}",
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default(),
        inbound.uri.path()
    );
    let response = match grant(account, &form, &audience) {
        Ok(()) => {
            let n = tokens.issued.fetch_add(1, Ordering::Relaxed) + 1;
            let access_token = format!("ya29.mock-{n}");
            let ttl = shared.options.google_token_ttl_secs;
            tokens
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(access_token.clone(), now_ms() + ttl * 1000);
            let body =
                json!({ "access_token": access_token, "expires_in": ttl, "token_type": "Bearer" });
            json_response(StatusCode::OK, body.to_string())
        }
        Err((error, description)) => json_response(
            StatusCode::BAD_REQUEST,
            json!({ "error": error, "error_description": description }).to_string(),
        ),
    };
    record.completed();
    response
}

/// Checks a token request; `Err((error, error_description))` as Google words them.
fn grant(
    account: &Result<Account, String>,
    form: &HashMap<String, String>,
    audience: &str,
) -> Result<(), (&'static str, String)> {
    let invalid = |d: &str| ("invalid_grant", d.to_owned());
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(("unsupported_grant_type", "Invalid grant_type.".to_owned()));
    }
    let account = account.as_ref().map_err(|e| invalid(e))?;
    let jwt = form
        .get("assertion")
        .ok_or_else(|| invalid("Missing required parameter: assertion"))?;
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        ));
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(signature)) = (
        decode(header),
        decode(claims),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return Err(invalid("Invalid JWT: malformed"));
    };
    if header["alg"] != "RS256" {
        return Err(invalid("Invalid JWT: alg must be RS256"));
    }
    let signed = &jwt[..jwt.rfind('.').unwrap_or_default()];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &account.public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid("Invalid JWT Signature."))?;
    if claims["iss"] != account.client_email.as_str() {
        return Err(invalid("Invalid grant: account not found"));
    }
    if claims["aud"] != audience {
        return Err(invalid(&format!("Invalid JWT: aud must be {audience}")));
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM) {
        return Err((
            "invalid_scope",
            format!("Invalid scope; {CLOUD_PLATFORM} required"),
        ));
    }
    let now = now_ms() / 1000;
    match (claims["iat"].as_u64(), claims["exp"].as_u64()) {
        (Some(iat), Some(exp)) if exp > now && exp >= iat && exp - iat <= MAX_ASSERTION_SECS => {
            Ok(())
        }
        _ => Err(invalid(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        )),
    }
}

impl Tokens {
    /// The request carries a token this mock issued that has not expired.
    pub(super) fn valid(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.get(token).is_some_and(|expiry| now_ms() < *expiry)
    }
}

/// The trusted account from the configured key file.
fn parse_account(json: Option<&str>) -> Result<Account, String> {
    let json = json.ok_or("the mock has no service account configured")?;
    let file: Value =
        serde_json::from_str(json).map_err(|_| "the mock's service account is not JSON")?;
    let client_email = file["client_email"]
        .as_str()
        .ok_or("the mock's service account has no client_email")?
        .to_owned();
    let pem = file["private_key"].as_str().unwrap_or_default();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| "the mock's service account key is not PEM")?;
    let key = RsaKeyPair::from_pkcs8(&der)
        .map_err(|_| "the mock's service account key is not a PKCS#8 RSA key")?;
    Ok(Account {
        client_email,
        public_key: key.public_key().as_ref().to_vec(),
    })
}

/// `application/x-www-form-urlencoded` fields (later duplicates win).
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
