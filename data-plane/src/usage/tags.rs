//! Request tags: what a caller says a request is for (`workflow=review-123`), used by tag
//! budgets and the spend ledger.
//!
//! Sources, later ones winning on the same name: the OpenAI body's `user` field (as the tag
//! `user`), the body's `metadata` object, the `x-switchyard-tags: name=value,name=value` header,
//! and last the key's forced tags, which a caller can never override. Caller tags are checked
//! (count, lengths, no control characters, no `=` or `,` in names) and a violation is a 400
//! in the OpenAI error dialect; forced tags come from the snapshot and are taken as they are.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName};

use crate::error::ApiError;

/// Effective tags of one request, by name.
pub type Tags = BTreeMap<String, String>;

/// The header carrying caller tags.
pub const HEADER: HeaderName = HeaderName::from_static("x-switchyard-tags");
/// Most caller tags per request (header, `metadata` and `user` together).
pub const MAX_TAGS: usize = 32;
/// Longest tag name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest tag value, in characters (OpenAI's limit for `metadata` values).
pub const MAX_VALUE_CHARS: usize = 512;

const HEADER_PARAM: &str = "x-switchyard-tags";

fn bad(param: &str, message: String) -> ApiError {
    ApiError::InvalidRequest {
        message,
        param: Some(param.to_owned()),
    }
}

/// Checks one caller tag; `param` names where it came from, for the message.
fn check(param: &str, name: &str, value: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(bad(
            param,
            format!("Invalid tag in '{param}': a tag name must not be empty."),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(
            param,
            format!("Invalid tag in '{param}': the name `{name}` is longer than {MAX_NAME_CHARS} characters."),
        ));
    }
    if name.chars().any(|c| c.is_control() || c == '=' || c == ',') {
        return Err(bad(
            param,
            format!(
                "Invalid tag in '{param}': the name `{}` contains `=`, `,` or a control character.",
                name.escape_debug()
            ),
        ));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(bad(
            param,
            format!("Invalid tag in '{param}': the value of `{name}` is longer than {MAX_VALUE_CHARS} characters."),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(
            param,
            format!(
                "Invalid tag in '{param}': the value of `{name}` contains a control character."
            ),
        ));
    }
    Ok(())
}

/// Parses every `x-switchyard-tags` header: comma-separated `name=value` pairs, whitespace
/// around names and values ignored, empty items skipped. A name given twice is an error.
pub fn from_headers(headers: &HeaderMap) -> Result<Tags, ApiError> {
    let mut tags = Tags::new();
    for value in headers.get_all(HEADER) {
        let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
            bad(
                HEADER_PARAM,
                format!("Invalid '{HEADER_PARAM}' header: it is not valid UTF-8."),
            )
        })?;
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((name, value)) = item.split_once('=') else {
                return Err(bad(
                    HEADER_PARAM,
                    format!("Invalid '{HEADER_PARAM}' header: `{}` is not of the form name=value (e.g. `workflow=review-123,env=prod`).", item.escape_debug()),
                ));
            };
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() {
                return Err(bad(
                    HEADER_PARAM,
                    format!(
                        "Invalid '{HEADER_PARAM}' header: the tag `{}` has an empty value.",
                        name.escape_debug()
                    ),
                ));
            }
            check(HEADER_PARAM, name, value)?;
            if tags.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(bad(
                    HEADER_PARAM,
                    format!("Invalid '{HEADER_PARAM}' header: the tag `{name}` is given twice."),
                ));
            }
        }
    }
    Ok(tags)
}

/// Tags a request carries in its body: `metadata` (string values; empty values are not
/// tags) and `user`.
#[derive(Debug, Default)]
pub struct BodyTags {
    pub metadata: Vec<(String, String)>,
    pub user: Option<String>,
}

/// The effective tags: `user`, then `metadata`, then the header, then the key's forced tags
/// on top. Checks the caller's part.
pub fn effective(header: Tags, body: BodyTags, forced: &Tags) -> Result<Tags, ApiError> {
    if header.is_empty() && body.metadata.is_empty() && body.user.is_none() {
        // The common case: no caller tags, nothing to check.
        return Ok(forced.clone());
    }
    let mut tags = Tags::new();
    if let Some(user) = body.user.filter(|u| !u.is_empty()) {
        check("user", "user", &user)?;
        tags.insert("user".to_owned(), user);
    }
    for (name, value) in body.metadata {
        if value.is_empty() {
            continue;
        }
        check("metadata", &name, &value)?;
        tags.insert(name, value);
    }
    tags.extend(header);
    if tags.len() > MAX_TAGS {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "Too many tags: {} given (from '{HEADER_PARAM}', 'metadata' and 'user' together), at most {MAX_TAGS} are allowed.",
                tags.len()
            ),
            param: None,
        });
    }
    tags.extend(forced.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn header(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_static(v));
        }
        h
    }

    fn message(e: ApiError) -> String {
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        e.to_string()
    }

    #[test]
    fn header_pairs_are_parsed() {
        let tags = from_headers(&header(&[
            " workflow = review-123 ,env=prod,",
            "team:sub=a b",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            [
                ("env".to_owned(), "prod".to_owned()),
                ("team:sub".to_owned(), "a b".to_owned()),
                ("workflow".to_owned(), "review-123".to_owned()),
            ]
        );
        assert!(from_headers(&HeaderMap::new()).is_ok_and(|t| t.is_empty()));
    }

    #[test]
    fn bad_header_syntax_is_a_clear_400() {
        for (value, expect) in [
            ("workflow", "is not of the form name=value"),
            ("=x", "must not be empty"),
            ("a=", "empty value"),
            ("a=1,a=2", "given twice"),
        ] {
            let got = from_headers(&header(&[value]))
                .err()
                .map(message)
                .unwrap_or_default();
            assert!(got.contains(expect), "{value}: {got}");
        }
        let long = format!("{}=1", "n".repeat(MAX_NAME_CHARS + 1));
        let mut h = HeaderMap::new();
        h.insert(
            HEADER,
            HeaderValue::from_str(&long).unwrap_or(HeaderValue::from_static("")),
        );
        assert!(from_headers(&h)
            .err()
            .map(message)
            .unwrap_or_default()
            .contains("longer than"));
    }

    #[test]
    fn precedence_and_forced_tags() {
        let header = from_headers(&header(&["env=prod,workflow=h"])).unwrap_or_default();
        let body = BodyTags {
            metadata: vec![
                ("workflow".into(), "m".into()),
                ("user".into(), "meta-user".into()),
                ("skip".into(), String::new()),
            ],
            user: Some("u-1".into()),
        };
        let forced = Tags::from([("env".to_owned(), "forced".to_owned())]);
        let tags = effective(header, body, &forced).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tags["workflow"], "h", "header beats metadata");
        assert_eq!(tags["user"], "meta-user", "metadata beats the user field");
        assert_eq!(tags["env"], "forced", "the key's tags beat the caller's");
        assert!(!tags.contains_key("skip"));
        let only_user = effective(
            Tags::new(),
            BodyTags {
                metadata: vec![],
                user: Some("alice".into()),
            },
            &Tags::new(),
        )
        .unwrap_or_default();
        assert_eq!(only_user["user"], "alice");
    }

    #[test]
    fn too_many_or_bad_body_tags_are_refused() {
        let metadata = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let got = effective(
            Tags::new(),
            BodyTags {
                metadata,
                user: None,
            },
            &Tags::new(),
        );
        assert!(got
            .err()
            .map(message)
            .unwrap_or_default()
            .contains("Too many tags"));
        let bad_value = BodyTags {
            metadata: vec![("k".into(), "a\nb".into())],
            user: None,
        };
        let got = effective(Tags::new(), bad_value, &Tags::new());
        assert!(got
            .err()
            .map(message)
            .unwrap_or_default()
            .contains("control character"));
        let forced_only = Tags::from([("a".to_owned(), "b".to_owned())]);
        assert_eq!(
            effective(Tags::new(), BodyTags::default(), &forced_only).unwrap_or_default(),
            forced_only
        );
    }
}
