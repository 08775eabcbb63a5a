//! `GET /admin/usage`: folded usage events, newest first, paginated by `(time, id)`.
//!
//! Filters: `team_id`, `key_id`, `model`, `outcome`, `from` (inclusive), `to` (exclusive). A
//! team-scoped token only sees its own team's events. `cost_usd` is what the ledger charged
//! (each token class at its own rate, at the price valid at the event's time),
//! `proxy_cost_usd` what the proxy estimated.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::extract::Page;
use super::{ApiError, AppState, List, Principal};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/usage", get(list))
}

/// One folded usage event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub proxy: String,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub team_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub endpoint: String,
    pub alias: String,
    pub provider: Option<String>,
    pub deployment: Option<String>,
    pub model: Option<String>,
    /// Every input token, cache reads and writes included.
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input_tokens: i64,
    pub reasoning_tokens: i64,
    /// Prompt tokens written to the provider's cache for 5 minutes.
    pub cache_write_5m_tokens: i64,
    /// Prompt tokens written to the provider's cache for 1 hour.
    pub cache_write_1h_tokens: i64,
    pub usage_estimated: bool,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "0.00125")]
    pub cost_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "0.00125")]
    pub proxy_cost_usd: Decimal,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub status: i32,
    /// `ok`, `upstream_error` or `refused`.
    pub outcome: String,
    pub refused_code: Option<String>,
    pub refused_limit: Option<String>,
    pub streamed: bool,
    pub abandoned: bool,
    pub attempts: i32,
    pub fallbacks: i32,
    /// Answered from the gateway's response cache (no provider call, no cost).
    pub cache_hit: bool,
    /// What a cache hit saved: its stored answer's cost.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "0.00125")]
    pub saved_usd: Decimal,
    /// Why the deployment that answered was chosen (`weighted`, `rule`, `fallback`, ...).
    pub route_reason: Option<String>,
    pub folded_at: DateTime<Utc>,
    /// Guardrail detections per class (counts, never values); absent when there were none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"email": 2}))]
    pub guardrail: Option<std::collections::BTreeMap<String, u64>>,
}

/// The `after` cursor: the last row's time (µs since the epoch) and id.
pub fn cursor(v: &UsageView) -> String {
    format!("{}_{}", v.time.timestamp_micros(), v.id)
}

fn parse_cursor(after: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::invalid("after", "not a cursor from this list");
    let (t, id) = after.split_once('_').ok_or_else(bad)?;
    // Within years 1970-9999, which Postgres can compare against.
    let t = t
        .parse::<i64>()
        .ok()
        .filter(|us| (0..253_402_300_800_000_000).contains(us))
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((t, id.parse().map_err(|_| bad())?))
}

/// The columns [`view`] reads, in its order; [`query`] appends `log_policy` after them.
pub const COLUMNS: &str =
    "id, time, proxy, key_id, key_name, team_id, tags, endpoint, alias, provider,
    deployment, model, prompt_tokens, completion_tokens, cached_input_tokens, reasoning_tokens,
    usage_estimated, cost_usd, proxy_cost_usd, latency_ms, ttft_ms, status, outcome, refused_code,
    refused_limit, streamed, abandoned, attempts, fallbacks, cache_hit, folded_at, route_reason,
    cache_write_5m_tokens, cache_write_1h_tokens, saved_usd, guardrail";

/// How many columns [`COLUMNS`] names.
pub const COLUMN_COUNT: usize = 36;

pub fn view(r: &tokio_postgres::Row) -> UsageView {
    let tags: serde_json::Value = r.get(6);
    UsageView {
        id: r.get(0),
        time: r.get(1),
        proxy: r.get(2),
        key_id: r.get(3),
        key_name: r.get(4),
        team_id: r.get(5),
        tags: serde_json::from_value(tags).unwrap_or_default(),
        endpoint: r.get(7),
        alias: r.get(8),
        provider: r.get(9),
        deployment: r.get(10),
        model: r.get(11),
        prompt_tokens: r.get(12),
        completion_tokens: r.get(13),
        cached_input_tokens: r.get(14),
        reasoning_tokens: r.get(15),
        cache_write_5m_tokens: r.get(32),
        cache_write_1h_tokens: r.get(33),
        usage_estimated: r.get(16),
        cost_usd: r.get::<_, Decimal>(17).normalize(),
        proxy_cost_usd: r.get::<_, Decimal>(18).normalize(),
        latency_ms: r.get(19),
        ttft_ms: r.get(20),
        status: r.get(21),
        outcome: r.get(22),
        refused_code: r.get(23),
        refused_limit: r.get(24),
        streamed: r.get(25),
        abandoned: r.get(26),
        attempts: r.get(27),
        fallbacks: r.get(28),
        cache_hit: r.get(29),
        saved_usd: r.get::<_, Decimal>(34).normalize(),
        folded_at: r.get(30),
        route_reason: r.get(31),
        guardrail: r
            .get::<_, Option<serde_json::Value>>(35)
            .and_then(|g| serde_json::from_value(g).ok()),
    }
}

#[utoipa::path(get, path = "/admin/usage",
    operation_id = "list_usage_events", tag = "spend", security(("bearer" = [])),
    params(
        ("team_id" = Option<String>, Query), ("key_id" = Option<String>, Query),
        ("model" = Option<String>, Query),
        ("outcome" = Option<String>, Query, description = "`ok`, `upstream_error` or `refused`"),
        ("from" = Option<String>, Query, description = "RFC 3339; events at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339; events before"),
        ("limit" = Option<i64>, Query, description = "1-1000, default 100"),
        ("after" = Option<String>, Query, description = "cursor from `next`")),
    responses((status = 200, body = List<UsageView>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<Json<List<UsageView>>, ApiError> {
    let rows = query(&state, &who, &page, &Filters::default()).await?;
    let events = rows.iter().map(view).collect();
    Ok(Json(List::page(events, page.limit, cursor)))
}

/// What a list of events is narrowed to beyond `/admin/usage`'s filters.
#[derive(Debug, Default)]
pub struct Filters {
    pub provider: Option<String>,
    /// The HTTP status the client got.
    pub status: Option<i32>,
    /// Events carrying this tag (`{name: value}`).
    pub tag: Option<serde_json::Value>,
    /// Only events the request log lists (its policy is not `off`).
    pub logged: bool,
}

/// The page of events (`COLUMNS`, then `log_policy`) the query parameters (`team_id`,
/// `key_id`, `model`, `outcome`, `from`, `to`, `after`) and `filters` select, newest first,
/// `limit + 1` rows at most. A team-scoped token only sees its own team's events.
pub async fn query(
    state: &AppState,
    who: &Principal,
    page: &Page,
    filters: &Filters,
) -> Result<Vec<tokio_postgres::Row>, ApiError> {
    let text = |n: &str| page.text(n);
    let time = |n: &str| page.time(n);
    let outcome = text("outcome");
    if let Some(o) = &outcome {
        if !["ok", "upstream_error", "refused"].contains(&o.as_str()) {
            return Err(ApiError::invalid(
                "outcome",
                "must be ok, upstream_error or refused",
            ));
        }
    }
    let (after_time, after_id) = match page.after.as_deref().map(parse_cursor).transpose()? {
        Some((t, id)) => (Some(t), Some(id)),
        None => (None, None),
    };
    let own_team = who.team.map(|t| t.to_string());
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, log_policy FROM usage_events
                 WHERE ($1::text IS NULL OR team_id = $1) AND ($2::text IS NULL OR team_id = $2)
                   AND ($3::text IS NULL OR key_id = $3) AND ($4::text IS NULL OR model = $4)
                   AND ($5::text IS NULL OR outcome = $5)
                   AND ($6::timestamptz IS NULL OR time >= $6) AND ($7::timestamptz IS NULL OR time < $7)
                   AND ($8::timestamptz IS NULL OR (time, id) < ($8, $9::uuid))
                   AND ($11::text IS NULL OR provider = $11) AND ($12::int4 IS NULL OR status = $12)
                   AND ($13::jsonb IS NULL OR tags @> $13) AND (NOT $14 OR log_policy <> 'off')
                 ORDER BY time DESC, id DESC LIMIT $10"
            ),
            &[
                &own_team,
                &text("team_id"),
                &text("key_id"),
                &text("model"),
                &outcome,
                &time("from")?,
                &time("to")?,
                &after_time,
                &after_id,
                &(page.limit + 1),
                &filters.provider,
                &filters.status,
                &filters.tag,
                &filters.logged,
            ],
        )
        .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        let t = DateTime::from_timestamp_micros(1_795_275_000_123_456).unwrap();
        let (pt, pid) = parse_cursor(&format!("{}_{id}", t.timestamp_micros())).unwrap();
        assert_eq!((pt, pid), (t, id));
        for bad in ["", "x_y", "12", "12_notauuid", "-99999999999999999_0190"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
