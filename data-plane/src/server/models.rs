//! `GET /v1/models`: the aliases the calling key may use, in OpenAI's list shape.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Serialize;

use crate::error::ApiError;
use crate::pipeline::respond::Trace;
use crate::pipeline::{self, auth};
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

pub async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
    let trace = Trace::start();
    let mut response = (|| {
        let snapshot = app.parts().snapshots.get().ok_or(ApiError::NotReady)?;
        let key = auth::authenticate(&snapshot, &headers)?;
        let data: Vec<Model<'_>> = snapshot
            .aliases()
            .iter()
            .filter(|a| key.allows(a))
            .map(|a| model(a))
            .collect();
        Ok::<_, ApiError>(Json(serde_json::json!({"object": "list", "data": data})).into_response())
    })()
    .unwrap_or_else(IntoResponse::into_response);
    trace.tag(&mut response);
    response
}

pub async fn retrieve(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let trace = Trace::start();
    let mut response = (|| {
        let snapshot = app.parts().snapshots.get().ok_or(ApiError::NotReady)?;
        let key = auth::authenticate(&snapshot, &headers)?;
        let route = pipeline::resolve(&snapshot, &key, &id)?;
        Ok::<_, ApiError>(Json(model(&route.alias)).into_response())
    })()
    .unwrap_or_else(IntoResponse::into_response);
    trace.tag(&mut response);
    response
}
