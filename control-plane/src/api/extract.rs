//! Request extractors whose failures are admin-API errors (never axum's plain-text ones).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use chrono::{DateTime, Utc};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::FieldError;

/// Largest admin request body (a declarative config with 100k keys fits).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A JSON body: 400 if it is not JSON, 422 with the field path if it does not fit the schema.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, MAX_BODY)));
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::BadRequest("the request body could not be read (or exceeds 64 MiB)".into())
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// PostgreSQL cannot store U+0000 in text or JSONB, so no admin input may carry it.
pub const NUL_REASON: &str = "must not contain NUL characters (U+0000)";

/// Refuses a JSON body with a `\u0000` escape (a literal NUL is not valid JSON anyway).
fn reject_nul_escape(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(ApiError::invalid("body", format!("strings {NUL_REASON}")));
    }
    Ok(())
}

/// Refuses a parsed value whose strings carry U+0000 (for inputs that are not JSON, e.g. YAML).
pub fn reject_nul<T: serde::Serialize>(value: &T) -> Result<(), ApiError> {
    let json = serde_json::to_vec(value).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    reject_nul_escape(&json)
}

/// Parses JSON, telling syntax errors (400) from schema mismatches (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    reject_nul_escape(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::Invalid(vec![FieldError::new(field_of(&e), e.to_string())])
        }
        _ => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
    })
}

/// Best-effort field name from a serde message such as "missing field `name`".
fn field_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "body".to_owned())
}

/// `?limit=&after=` pagination.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub after: Option<String>,
    /// Other query parameters, for filters.
    pub params: std::collections::HashMap<String, String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut params = std::collections::HashMap::new();
        for pair in parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode(k), decode(v));
        }
        let limit = match params.get("limit") {
            None => 100,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        "must be an integer from 1 to 1000",
                    ))
                }
            },
        };
        if let Some((name, _)) = params.iter().find(|(_, v)| v.contains('\0')) {
            return Err(ApiError::invalid(name, NUL_REASON));
        }
        let after = params.get("after").filter(|a| !a.is_empty()).cloned();
        Ok(Page {
            limit,
            after,
            params,
        })
    }
}

impl Page {
    /// A query parameter, if given and not empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// An RFC 3339 time query parameter, if given.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(name).map(|v| parse_time(name, &v)).transpose()
    }

    /// The `after` cursor of a list ordered by UUID.
    pub fn after_uuid(&self) -> Result<Option<uuid::Uuid>, ApiError> {
        self.after
            .as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|_| ApiError::invalid("after", "not a cursor from this list"))
            })
            .transpose()
    }
}

/// Parses an RFC 3339 query time (an unencoded `+` arrives as a space).
pub fn parse_time(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .or_else(|e| {
            if v.contains(' ') {
                DateTime::parse_from_rfc3339(&v.replace(' ', "+"))
            } else {
                Err(e)
            }
        })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(name, "must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z"))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `If-Match` version, if sent (`"3"`, `3` or `W/"3"`).
pub fn if_match(headers: &http::HeaderMap) -> Result<Option<i32>, ApiError> {
    let Some(v) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    if text == "*" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::BadRequest("If-Match must be a version number as returned in ETag".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_refused_before_they_reach_postgres() {
        assert!(parse_json::<serde_json::Value>(br#"{"name":"a\u0000b"}"#).is_err());
        assert!(parse_json::<serde_json::Value>(br#"{"name":"a\U0000b"}"#).is_err());
        assert!(parse_json::<serde_json::Value>(br#"{"name":"a\u0001b"}"#).is_ok());
        assert!(reject_nul(&serde_json::json!({"k": "x\u{0}"})).is_err());
        assert!(reject_nul(&serde_json::json!({"k": "x"})).is_ok());
    }
}
