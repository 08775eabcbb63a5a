//! `GET /v1/models` and `GET /v1/models/{id}`: the names the calling key may address
//! (`pipeline::route::visible`), in OpenAI's shape, or in Anthropic's when the request carries
//! `anthropic-version` (Claude Code's model discovery, the `anthropic` SDK).

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Serialize;

use crate::dialect::anthropic::{self, models as anthropic_models};
use crate::error::ApiError;
use crate::pipeline::respond::Trace;
use crate::pipeline::{self, auth, route};
use crate::snapshot::{CompiledSnapshot, KeyPolicy};
use crate::state::App;

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

fn model(id: &str) -> Model<'_> {
    Model {
        id,
        object: "model",
        created: 0,
        owned_by: "switchyard",
    }
}

/// Whether the client speaks Anthropic's API (every Anthropic client sends the version).
fn anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

pub async fn list(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond(&app, &headers, |snapshot, key, anthropic| {
        let names = route::visible(snapshot, key);
        if anthropic {
            let page = anthropic_models::Page::parse(query.as_deref())?;
            return Ok(Json(anthropic_models::list(&names, &page)).into_response());
        }
        let data: Vec<Model<'_>> = names.into_iter().map(model).collect();
        Ok(Json(serde_json::json!({"object": "list", "data": data})).into_response())
    })
}

pub async fn retrieve(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(&app, &headers, |snapshot, key, anthropic| {
        let route = pipeline::resolve(snapshot, key, &id)?;
        if anthropic {
            return Ok(Json(anthropic_models::model(&route.alias)).into_response());
        }
        Ok(Json(model(&route.alias)).into_response())
    })
}

/// `answer(snapshot, the caller's key, whether the client speaks Anthropic's API)` for an
/// authenticated caller, or the error in the client's dialect; tagged with the request id.
fn respond(
    app: &App,
    headers: &HeaderMap,
    answer: impl FnOnce(&CompiledSnapshot, &KeyPolicy, bool) -> Result<Response, ApiError>,
) -> Response {
    let trace = Trace::start();
    let anthropic = anthropic(headers);
    let authenticated = || {
        let snapshot = app.parts().snapshots.get().ok_or(ApiError::NotReady)?;
        let key = auth::authenticate(&snapshot, headers)?;
        answer(&snapshot, &key, anthropic)
    };
    let mut response = authenticated().unwrap_or_else(|e| {
        if anthropic {
            anthropic::error::into_response(e)
        } else {
            e.into_response()
        }
    });
    trace.tag(&mut response);
    response
}
