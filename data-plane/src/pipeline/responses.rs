//! The Responses API around the stateless chat pipeline: stored conversations.
//!
//! - `POST /v1/responses`: a `previous_response_id` the gateway stored (for this key's team)
//!   is replaced, before the dialect reads the body, by the conversation it continues (that
//!   response's input and output items, then this turn's input); the request then runs the
//!   chat pipeline like any other. Unless `store` is `false`, the translated answer (whole,
//!   as the client got it, streamed or not) is stored with that conversation
//!   ([`crate::stored`]). A deployment that speaks the Responses wire natively stores its own
//!   answers (OpenAI); an id the gateway does not know is left for it, and is OpenAI's "not
//!   found" on every other deployment.
//! - `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`,
//!   `GET /v1/responses/{id}/input_items`: the stored response, its removal, its input
//!   items; another team's id is "not found", exactly like an unknown or expired one.
//! - `POST /v1/responses/compact`: the same continuation, then the chat pipeline in the
//!   compaction dialect (`dialect::responses::compact`): the client's body passed through to a
//!   deployment that serves compaction itself (OpenAI, Azure OpenAI), a summary by the routed
//!   model on every other. Nothing is stored.
//! - `POST /v1/responses/input_tokens`: the gateway's estimate of the input (stages 1–4, no
//!   provider call, nothing metered; `x-switchyard-token-count: estimate`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body;
use super::chat::{self, Keep};
use super::prepare::{Arrived, Inbound};
use crate::dialect::responses::compact::Compact;
use crate::dialect::responses::Responses;
use crate::dialect::ChatDialect;
use crate::error::ApiError;
use crate::metrics;
use crate::state::App;
use crate::stored::{Record, StoredResponses};

/// Metric label of the stored-response endpoints.
const ENDPOINT: &str = "responses";

/// `POST /v1/responses`.
pub async fn create(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let serve = async |arrived: Arrived<'_>| -> Result<Response, ApiError> {
        let (headers, trace) = (arrived.headers, arrived.trace);
        let mut inbound = Inbound::read(&app, arrived).await?;
        let team = inbound.key.team.clone();
        let turn = Turn::read(&inbound.bytes, true)?;
        let stored = &app.parts().stored;
        let mut conversation = turn.resume(&app, &mut inbound).await?;
        conversation.extend(turn.input);
        let keep = turn
            .store
            .then(|| keeper(&app, Arc::clone(stored), team, conversation));
        chat::serve_read::<Responses>(&app, headers, trace, inbound, keep).await
    };
    super::handle(
        &app,
        &headers,
        body,
        Responses::ENDPOINT,
        Responses::error,
        serve,
    )
    .await
}

/// `POST /v1/responses/compact`.
pub async fn compact(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let serve = async |arrived: Arrived<'_>| -> Result<Response, ApiError> {
        let (headers, trace) = (arrived.headers, arrived.trace);
        let mut inbound = Inbound::read(&app, arrived).await?;
        let turn = Turn::read(&inbound.bytes, false)?;
        turn.resume(&app, &mut inbound).await?;
        chat::serve_read::<Compact>(&app, headers, trace, inbound, None).await
    };
    super::handle(
        &app,
        &headers,
        body,
        Compact::ENDPOINT,
        Compact::error,
        serve,
    )
    .await
}

/// What this turn says about stored state.
struct Turn {
    previous: Option<String>,
    /// `store` (OpenAI's default is `true`).
    store: bool,
    /// This turn's input as items (a string input is one user message).
    input: Vec<Value>,
}

impl Turn {
    /// Reads the turn; its input items are parsed only when something uses them (a turn the
    /// endpoint `stores` and the client did not mark `store: false`, or one continuing
    /// another): a `store: false` turn, as Codex sends, pays for no second parse of its
    /// conversation.
    fn read(bytes: &[u8], stores: bool) -> Result<Self, ApiError> {
        let body = body::parse_object(bytes)?;
        let value = |name: &str| -> Option<Value> {
            body.get(name)
                .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                .filter(|v| !v.is_null())
        };
        let previous = match value("previous_response_id") {
            None => None,
            Some(Value::String(id)) => Some(id),
            Some(_) => {
                return Err(ApiError::invalid(
                    "previous_response_id",
                    "'previous_response_id' must be a string.",
                ))
            }
        };
        let store = value("store") != Some(Value::Bool(false));
        let needed = (stores && store) || previous.is_some();
        let input = match needed.then(|| value("input")).flatten() {
            Some(Value::String(text)) => {
                vec![json!({"type": "message", "role": "user", "content": text})]
            }
            Some(Value::Array(items)) => items,
            // The dialect reports a missing or malformed input.
            _ => Vec::new(),
        };
        Ok(Self {
            previous,
            store,
            input,
        })
    }

    /// The conversation `previous_response_id` continues, if the gateway stored it for the
    /// caller's team (empty without one, or for an id the gateway does not know); the body in
    /// `inbound` then continues it in place of the id.
    async fn resume(&self, app: &App, inbound: &mut Inbound) -> Result<Vec<Value>, ApiError> {
        let Some(id) = &self.previous else {
            return Ok(Vec::new());
        };
        let team = inbound.key.team.as_deref();
        let record = app
            .parts()
            .stored
            .get(id, team)
            .await
            .map_err(store_error)?;
        let conversation = record.map(|r| r.conversation()).unwrap_or_default();
        if !conversation.is_empty() {
            inbound.bytes = self.continued(&inbound.bytes, &conversation)?;
        }
        Ok(conversation)
    }

    /// The client's body with `previous_response_id` replaced by the conversation it
    /// continues, placed before this turn's input.
    fn continued(&self, bytes: &[u8], conversation: &[Value]) -> Result<Bytes, ApiError> {
        let mut body = body::parse_object(bytes)?;
        body.remove("previous_response_id");
        let items: Vec<&Value> = conversation.iter().chain(&self.input).collect();
        let raw = serde_json::value::to_raw_value(&items)
            .map_err(|_| ApiError::invalid("input", "The input could not be continued."))?;
        body.insert("input".into(), raw);
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|_| ApiError::invalid("input", "The input could not be continued."))
    }
}

/// Stores a finished answer with the conversation that led to it, off the request path.
fn keeper(
    app: &App,
    stored: Arc<StoredResponses>,
    team: Option<String>,
    input: Vec<Value>,
) -> Keep {
    let tasks = app.parts().tasks.clone();
    Keep::new(move |answer: Bytes| {
        tasks.spawn(async move {
            let Ok(response) = serde_json::from_slice::<Value>(&answer) else {
                return;
            };
            let Some(id) = response["id"].as_str().map(str::to_owned) else {
                return;
            };
            let record = Record {
                team,
                input,
                response,
            };
            if let Err(e) = stored.put(&id, &record).await {
                ::metrics::counter!("switchyard_responses_store_errors_total").increment(1);
                tracing::warn!(response_id = %id, error = %e, "a response could not be stored");
            }
        });
    })
}

fn store_error(e: crate::stored::StoreError) -> ApiError {
    tracing::warn!(error = %e, "stored responses unavailable");
    ApiError::StoreUnavailable
}

/// The stored record of `id` for the caller's team, or OpenAI's 404.
async fn lookup(app: &App, headers: &HeaderMap, id: &str) -> Result<Record, ApiError> {
    let parts = app.parts();
    let snapshot = parts.snapshots.get().ok_or(ApiError::NotReady)?;
    let key = super::auth::authenticate(&snapshot, headers)?;
    parts
        .stored
        .get(id, key.team.as_deref())
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::ResponseNotFound(id.to_owned()))
}

/// `GET /v1/responses/{id}`.
pub async fn retrieve(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = lookup(&app, &headers, &id)
        .await
        .map(|record| Json(record.response).into_response());
    answered(result)
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let team = lookup(&app, &headers, &id).await?.team;
        app.parts()
            .stored
            .delete(&id, team.as_deref())
            .await
            .map_err(store_error)?;
        Ok(Json(json!({"id": id, "object": "response", "deleted": true})).into_response())
    }
    .await;
    answered(result)
}

/// `order` of `input_items` (OpenAI's default is newest first).
#[derive(Debug, Deserialize)]
pub struct ItemsQuery {
    #[serde(default)]
    order: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`.
pub async fn input_items(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ItemsQuery>,
) -> Response {
    let result = async {
        let record = lookup(&app, &headers, &id).await?;
        let mut items: Vec<Value> = record
            .input
            .into_iter()
            .enumerate()
            .map(|(i, mut item)| {
                if item.get("id").is_none() {
                    item["id"] = json!(format!("item_{}_{i}", id.trim_start_matches("resp_")));
                }
                item
            })
            .collect();
        match query.order.as_deref() {
            None | Some("desc") => items.reverse(),
            Some("asc") => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "order",
                    "'order' must be \"asc\" or \"desc\".",
                ))
            }
        }
        let first = items.first().map(|i| i["id"].clone());
        let last = items.last().map(|i| i["id"].clone());
        Ok(Json(json!({"object": "list", "data": items, "first_id": first, "last_id": last, "has_more": false})).into_response())
    }
    .await;
    answered(result)
}

/// `POST /v1/responses/input_tokens`: `{"object": "response.input_tokens", "input_tokens": N}`.
pub async fn input_tokens(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let serve = async |arrived: Arrived<'_>| -> Result<Response, ApiError> {
        let (headers, trace) = (arrived.headers, arrived.trace);
        let read = Inbound::read(&app, arrived).await?;
        let json = Responses::request(body::parse_object(&read.bytes)?)?;
        let fields = body::chat(&json)?;
        let prepared =
            super::prepare::Prepared::chat("input_tokens", &read, headers, &json, &fields, trace)?;
        let n = prepared.prompt_tokens;
        let mut response =
            Json(json!({"object": "response.input_tokens", "input_tokens": n})).into_response();
        response.headers_mut().insert(
            super::count::TOKEN_COUNT,
            http::HeaderValue::from_static("estimate"),
        );
        Ok(response)
    };
    super::handle(
        &app,
        &headers,
        body,
        "input_tokens",
        Responses::error,
        serve,
    )
    .await
}

fn answered(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| {
        metrics::error(ENDPOINT, e.kind());
        e.into_response()
    })
}
