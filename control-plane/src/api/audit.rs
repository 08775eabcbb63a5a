//! `/admin/audit`: the event log, read as the audit trail.
//!
//! Events are returned in log order, paginated by position. A team-scoped token sees only the
//! events recorded against its team. Payloads hold no secrets (keys are stored as hashes,
//! provider credentials sealed), and sealed values are masked here as well.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::extract::Page;
use super::{ApiError, AppState, List, Principal};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(list))
}

/// One recorded event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Global position in the log; the pagination cursor.
    pub position: i64,
    /// e.g. `provider-openai`, `team-0190...`.
    pub stream_id: String,
    /// Version of the stream after this event.
    pub version: i32,
    /// e.g. `route.updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `bootstrap` or `admin_token:<id>`.
    pub actor: String,
    pub team_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

/// The filters of one audit query.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    stream: Option<String>,
    event_type: Option<String>,
    actor: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: i64,
}

impl Filter {
    fn from_page(page: &Page) -> Result<Self, ApiError> {
        let after = match &page.after {
            Some(a) => a
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| ApiError::invalid("after", "not a cursor from this list"))?,
            None => 0,
        };
        Ok(Self {
            stream: page.text("stream"),
            event_type: page.text("type"),
            actor: page.text("actor"),
            since: page.time("since")?,
            until: page.time("until")?,
            after,
        })
    }
}

/// Replaces every sealed credential value in a payload with `"sealed"`.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "sealed" && v.is_string() {
                    *v = Value::String("sealed".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[utoipa::path(get, path = "/admin/audit",
    operation_id = "list_audit_events", tag = "audit", security(("bearer" = [])),
    params(
        ("stream" = Option<String>, Query, description = "exact stream id, e.g. `provider-openai`"),
        ("type" = Option<String>, Query, description = "event type, e.g. `key.rotated`"),
        ("actor" = Option<String>, Query, description = "`bootstrap` or `admin_token:<id>`"),
        ("since" = Option<String>, Query, description = "RFC 3339; events recorded at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; events recorded before"),
        ("limit" = Option<i64>, Query, description = "1-1000, default 100"),
        ("after" = Option<String>, Query, description = "cursor from `next` (a position)")),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<axum::Json<List<AuditEvent>>, ApiError> {
    let f = Filter::from_page(&page)?;
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            "SELECT position, stream_id, version, event_type, payload, actor, team_id, recorded_at FROM events
             WHERE position > $1 AND ($2::uuid IS NULL OR team_id = $2) AND ($3::text IS NULL OR stream_id = $3)
               AND ($4::text IS NULL OR event_type = $4) AND ($5::text IS NULL OR actor = $5)
               AND ($6::timestamptz IS NULL OR recorded_at >= $6) AND ($7::timestamptz IS NULL OR recorded_at < $7)
             ORDER BY position LIMIT $8",
            &[&f.after, &who.team, &f.stream, &f.event_type, &f.actor, &f.since, &f.until, &(page.limit + 1)],
        )
        .await?;
    let events = rows
        .iter()
        .map(|r| {
            let mut payload: Value = r.get(4);
            redact(&mut payload);
            AuditEvent {
                position: r.get(0),
                stream_id: r.get(1),
                version: r.get(2),
                event_type: r.get(3),
                payload,
                actor: r.get(5),
                team_id: r.get(6),
                recorded_at: r.get(7),
            }
        })
        .collect();
    Ok(axum::Json(List::page(
        events,
        page.limit,
        |e: &AuditEvent| e.position.to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn page(pairs: &[(&str, &str)]) -> Page {
        let params: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Page {
            limit: 100,
            after: params.get("after").cloned(),
            params,
        }
    }

    #[test]
    fn sealed_values_are_masked_wherever_they_are() {
        let mut payload = serde_json::json!({
            "type": "provider.created", "id": "openai",
            "spec": {"credential": {"sealed": "v1:abc"}, "headers": {"x": "y"}},
            "list": [{"sealed": "v1:def"}]
        });
        redact(&mut payload);
        assert_eq!(payload["spec"]["credential"]["sealed"], "sealed");
        assert_eq!(payload["list"][0]["sealed"], "sealed");
        assert_eq!(payload["spec"]["headers"]["x"], "y");
    }

    #[test]
    fn filters_parse_or_name_the_bad_parameter() {
        let f = Filter::from_page(&page(&[
            ("type", "key.created"),
            ("since", "2026-01-01T00:00:00 01:00"),
            ("after", "42"),
        ]))
        .unwrap();
        assert_eq!(f.event_type.as_deref(), Some("key.created"));
        assert_eq!(
            f.since.map(|t| t.to_rfc3339()).as_deref(),
            Some("2025-12-31T23:00:00+00:00")
        );
        assert_eq!(f.after, 42);
        for (param, value) in [
            ("since", "yesterday"),
            ("until", "2026-01-01"),
            ("after", "abc"),
            ("after", "-1"),
        ] {
            let err = Filter::from_page(&page(&[(param, value)]));
            assert!(
                matches!(err, Err(ApiError::Invalid(ref d)) if d[0].path == param),
                "{param}={value}"
            );
        }
    }
}
