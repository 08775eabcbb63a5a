//! Authentication: the caller's key, hashed, looked up in the snapshot.
//!
//! Keys are accepted the ways the official SDKs and coding agents send them:
//! `Authorization: Bearer`, `x-api-key` (Anthropic) and `api-key` (Azure OpenAI). Only the
//! SHA-256 digest is ever compared or kept; the secret itself is never logged.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::snapshot::{CompiledSnapshot, KeyPolicy};

/// The presented key, if any.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim()).filter(|k| !k.is_empty());
        }
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// SHA-256 digest of a key, as stored in snapshots.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The policy of the calling key: 401 if none was sent, it is unknown or it has expired.
pub fn authenticate(
    snapshot: &CompiledSnapshot,
    headers: &HeaderMap,
) -> Result<Arc<KeyPolicy>, ApiError> {
    let key = presented_key(headers).ok_or(ApiError::MissingKey)?;
    let policy = snapshot.key(&digest(key)).ok_or(ApiError::InvalidKey)?;
    // Only keys with an expiry read the clock.
    if policy.expires() && policy.expired_at(unix_now()) {
        return Err(ApiError::ExpiredKey);
    }
    Ok(Arc::clone(policy))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn keys_are_found_in_each_header_form() {
        let cases = [
            ("authorization", "Bearer sk-1", Some("sk-1")),
            ("authorization", "bearer  sk-1 ", Some("sk-1")),
            ("x-api-key", "sk-2", Some("sk-2")),
            ("api-key", "sk-3", Some("sk-3")),
            ("authorization", "Basic abc", None),
        ];
        for (name, value, want) in cases {
            assert_eq!(
                presented_key(&headers(&[(name, value)])),
                want,
                "{name}: {value}"
            );
        }
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }

    #[test]
    fn expired_keys_are_refused_and_others_pass() {
        let snapshot: proto::Snapshot = serde_yaml::from_str(&format!(
            "keys: [{{name: old, sha256: '{}', expires_at: 1000}}, {{name: later, sha256: '{}', expires_at: 99999999999}}, {{name: never, sha256: '{}'}}]",
            hex::encode(digest("sk-old")),
            hex::encode(digest("sk-later")),
            hex::encode(digest("sk-never")),
        ))
        .unwrap();
        let c = crate::snapshot::compile(snapshot, &crate::snapshot::Context::default()).unwrap();
        let call = |key: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", http::HeaderValue::from_static(key));
            authenticate(&c, &h).map(|p| p.name.clone())
        };
        assert!(matches!(call("sk-old"), Err(ApiError::ExpiredKey)));
        assert_eq!(ApiError::ExpiredKey.code(), Some("invalid_api_key"));
        assert_eq!(ApiError::ExpiredKey.status(), 401);
        assert_eq!(call("sk-later").ok().as_deref(), Some("later"));
        assert_eq!(call("sk-never").ok().as_deref(), Some("never"));
        assert!(matches!(call("sk-unknown"), Err(ApiError::InvalidKey)));
    }

    #[test]
    fn digest_matches_sha256sum() {
        // echo -n foo | sha256sum
        assert_eq!(
            hex::encode(digest("foo")),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }
}
