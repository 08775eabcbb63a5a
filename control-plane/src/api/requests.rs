//! `GET /admin/requests` and `GET /admin/requests/{id}`: the request log.
//!
//! Every request whose key or team logs `metadata` or `full` is listed (its usage event:
//! caller, model, provider, tokens, cost, latency, status, the route decision and attempts),
//! newest first, paginated by `(time, id)`; `off` requests are metered but never listed. A
//! `full` request's detail adds its bodies (`request_payloads`): the request as the client sent
//! it (headers that can carry credentials never leave the proxy) and what the client received,
//! a stream's bytes in order, each cut at the proxy's cap (`truncated`). Text is returned as
//! text, other bytes as base64. A team-scoped token sees only its own team's requests.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde::Serialize;

use super::extract::Page;
use super::usage::{self, Filters, UsageView};
use super::{ApiError, AppState, List, Principal};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/requests", get(list))
        .route("/admin/requests/{id}", get(detail))
}

/// One request in the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    #[serde(flatten)]
    pub usage: UsageView,
    /// `metadata` or `full`: whether its bodies are kept.
    pub log_payloads: String,
}

/// A body as the log kept it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BodyView {
    /// The bytes kept: text, or base64 when they are not UTF-8 (`base64`).
    pub body: String,
    pub base64: bool,
    /// The body's whole length.
    pub bytes: i64,
    /// Only the first bytes (the proxy's cap) were kept.
    pub truncated: bool,
}

/// A `full` request's bodies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayloadView {
    /// The request's headers, without any that can carry a credential.
    pub request_headers: BTreeMap<String, String>,
    pub request: BodyView,
    /// What the client received; null when the gateway answered with its own error.
    pub response: Option<BodyView>,
    pub streamed: bool,
}

/// One request with its bodies when they are kept.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub request: RequestView,
    /// The bodies: null for a `metadata` request, or while a `full` one's are on their way.
    pub payload: Option<PayloadView>,
}

fn request_view(row: &tokio_postgres::Row) -> RequestView {
    RequestView {
        usage: usage::view(row),
        log_payloads: row.get(usage::COLUMN_COUNT),
    }
}

#[utoipa::path(get, path = "/admin/requests",
    operation_id = "list_requests", tag = "requests", security(("bearer" = [])),
    params(
        ("team_id" = Option<String>, Query), ("key_id" = Option<String>, Query),
        ("model" = Option<String>, Query), ("provider" = Option<String>, Query),
        ("status" = Option<i32>, Query, description = "the HTTP status the client got"),
        ("tag" = Option<String>, Query, description = "`k=v`: requests carrying tag k with value v"),
        ("outcome" = Option<String>, Query, description = "`ok`, `upstream_error` or `refused`"),
        ("from" = Option<String>, Query, description = "RFC 3339; requests at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339; requests before"),
        ("limit" = Option<i64>, Query, description = "1-1000, default 100"),
        ("after" = Option<String>, Query, description = "cursor from `next`")),
    responses((status = 200, body = List<RequestView>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<Json<List<RequestView>>, ApiError> {
    let status = match page.text("status") {
        None => None,
        Some(s) => Some(
            s.parse::<i32>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| ApiError::invalid("status", "must be an HTTP status, 100-599"))?,
        ),
    };
    let tag = match page.text("tag") {
        None => None,
        Some(t) => {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| ApiError::invalid("tag", "must be `name=value`"))?;
            Some(serde_json::json!({ k: v }))
        }
    };
    let filters = Filters {
        provider: page.text("provider"),
        status,
        tag,
        logged: true,
    };
    let rows = usage::query(&state, &who, &page, &filters).await?;
    let requests = rows.iter().map(request_view).collect();
    Ok(Json(List::page(requests, page.limit, |r: &RequestView| {
        usage::cursor(&r.usage)
    })))
}

#[utoipa::path(get, path = "/admin/requests/{id}",
    operation_id = "get_request", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "the request id (`x-request-id`)")),
    responses((status = 200, body = RequestDetail), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn detail(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<RequestDetail>, ApiError> {
    let id = super::common::parse_id(&id, "request")?;
    let own_team = who.team.map(|t| t.to_string());
    let client = state.store().pool().get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {}, log_policy FROM usage_events
                 WHERE id = $1 AND log_policy <> 'off' AND ($2::text IS NULL OR team_id = $2)",
                usage::COLUMNS
            ),
            &[&id, &own_team],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("request".to_owned()))?;
    let request = request_view(&row);
    let payload = if request.log_payloads == "full" {
        client
            .query_opt(
                "SELECT request_headers, request_body, request_bytes, request_truncated,
                        response_body, response_bytes, response_truncated, streamed
                 FROM request_payloads WHERE id = $1 AND time = $2",
                &[&id, &request.usage.time],
            )
            .await?
            .map(|r| payload_view(&r))
    } else {
        None
    };
    Ok(Json(RequestDetail { request, payload }))
}

fn payload_view(r: &tokio_postgres::Row) -> PayloadView {
    let headers: serde_json::Value = r.get(0);
    let response: Option<Vec<u8>> = r.get(4);
    PayloadView {
        request_headers: serde_json::from_value(headers).unwrap_or_default(),
        request: body_view(r.get(1), r.get(2), r.get(3)),
        response: response.map(|b| {
            body_view(
                b,
                r.get::<_, Option<i64>>(5).unwrap_or(0),
                r.get::<_, Option<bool>>(6).unwrap_or(false),
            )
        }),
        streamed: r.get(7),
    }
}

fn body_view(bytes: Vec<u8>, total: i64, truncated: bool) -> BodyView {
    match String::from_utf8(bytes) {
        Ok(body) => BodyView {
            body,
            base64: false,
            bytes: total,
            truncated,
        },
        Err(e) => BodyView {
            body: base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            base64: true,
            bytes: total,
            truncated,
        },
    }
}
