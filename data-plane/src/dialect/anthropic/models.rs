//! Anthropic's Models API shapes (`GET /v1/models`, `GET /v1/models/{id}`), for clients that
//! discover models the Anthropic way (Claude Code's gateway model discovery, the `anthropic`
//! SDK's `models.list()`). Pure code: the handler decides which names a key may see.
//!
//! The list pages as Anthropic's does: `limit` (1–1000, default 20), then `after_id` or
//! `before_id` (the names are in one sorted order, so an id that is not listed still marks a
//! position). The gateway knows no creation time for a model: `created_at` is the Unix epoch.

use serde_json::{json, Value};

use crate::error::ApiError;

/// Page size when the client sets none (Anthropic's default).
const DEFAULT_LIMIT: usize = 20;
/// Largest page Anthropic serves.
const MAX_LIMIT: usize = 1000;
/// `created_at` of every model: the gateway knows no creation time.
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// Which page of the list the client asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

impl Page {
    /// Reads `limit`, `after_id` and `before_id` from a raw query string; other parameters
    /// are ignored. A bad `limit` is the client's 400.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut page = Self::default();
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return Ok(page);
        };
        let url = reqwest::Url::parse(&format!("http://q/?{query}")).map_err(|_| bad("query"))?;
        for (name, value) in url.query_pairs() {
            match &*name {
                "limit" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n));
                    page.limit = Some(n.ok_or_else(|| bad("limit"))?);
                }
                "after_id" => page.after_id = Some(value.into_owned()),
                "before_id" => page.before_id = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(page)
    }
}

fn bad(param: &str) -> ApiError {
    let message = if param == "limit" {
        format!("limit: must be an integer between 1 and {MAX_LIMIT}")
    } else {
        "the query string could not be read".to_owned()
    };
    ApiError::InvalidRequest {
        message,
        param: Some(param.to_owned()),
    }
}

/// One model object.
pub fn model(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT})
}

/// The page of `ids` (sorted) that `page` asks for, as Anthropic's list object.
pub fn list(ids: &[&str], page: &Page) -> Value {
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    let (chosen, has_more): (&[&str], bool) = if let Some(before) = &page.before_id {
        let end = ids.partition_point(|id| *id < before.as_str());
        let start = end.saturating_sub(limit);
        (&ids[start..end], start > 0)
    } else {
        let start = page
            .after_id
            .as_ref()
            .map_or(0, |after| ids.partition_point(|id| *id <= after.as_str()));
        let end = (start + limit).min(ids.len());
        (&ids[start..end], end < ids.len())
    };
    json!({
        "data": chosen.iter().map(|id| model(id)).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": chosen.first(),
        "last_id": chosen.last(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &Value) -> Vec<&str> {
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .collect()
    }

    #[test]
    fn the_list_pages_forward_and_back_like_anthropics() {
        let all = ["a", "b", "c", "d", "e"];
        let page = |q: &str| Page::parse(Some(q)).unwrap_or_else(|e| panic!("{q}: {e}"));
        let first = list(&all, &page("limit=2"));
        assert_eq!(ids(&first), ["a", "b"]);
        assert_eq!(
            (&first["has_more"], &first["first_id"], &first["last_id"]),
            (&json!(true), &json!("a"), &json!("b"))
        );
        assert_eq!(ids(&list(&all, &page("limit=2&after_id=b"))), ["c", "d"]);
        let last = list(&all, &page("limit=2&after_id=d"));
        assert_eq!((ids(&last), &last["has_more"]), (vec!["e"], &json!(false)));
        let back = list(&all, &page("limit=2&before_id=e"));
        assert_eq!(
            (ids(&back), &back["has_more"]),
            (vec!["c", "d"], &json!(true))
        );
        let whole = list(&all, &Page::default());
        assert_eq!((ids(&whole).len(), &whole["has_more"]), (5, &json!(false)));
        let empty = list(&[], &Page::default());
        assert_eq!(empty["first_id"], Value::Null);
        assert_eq!(empty["data"], json!([]));
    }

    #[test]
    fn models_have_anthropics_fields_and_a_bad_limit_is_a_400() {
        assert_eq!(
            model("m"),
            json!({"type": "model", "id": "m", "display_name": "m", "created_at": "1970-01-01T00:00:00Z"})
        );
        for q in ["limit=0", "limit=1001", "limit=x"] {
            let e = Page::parse(Some(q))
                .err()
                .map(|e| (e.status(), e.to_string()));
            assert!(
                e.as_ref()
                    .is_some_and(|(s, m)| s.as_u16() == 400 && m.contains("limit")),
                "{q}: {e:?}"
            );
        }
        assert_eq!(Page::parse(Some("beta=true")).ok(), Some(Page::default()));
    }
}
