//! `PUT /admin/config`: declarative configuration (global tokens only).
//!
//! The body is a snapshot-shaped file (providers, routes, keys, teams, budgets, pricing) in
//! YAML or JSON. Unknown fields are refused rather than silently ignored, so a typo never turns
//! into a deleted setting; the file is then validated as a whole and applied by
//! `declarative::apply`.

use axum::body::Body;
use axum::extract::State;
use axum::routing::put;
use axum::{Json, Router};
use http::HeaderMap;
use http_body_util::BodyExt;
use proto::Snapshot;

use super::{ApiError, AppState, Principal};
use crate::declarative::{self, ApplyReport};
use crate::domain::FieldError;

/// Largest config body (a file with 100k keys fits).
const MAX_BODY: usize = 64 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/config", put(apply))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

/// JSON when declared as JSON; YAML when declared as YAML or not declared (YAML reads JSON too).
fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Ok(Format::Yaml);
    };
    let mime = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Format::Json),
        m if m.ends_with("+json") => Ok(Format::Json),
        // Form encoding is what `curl --data-binary @file` declares when not told otherwise.
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "text/x-yaml"
        | "application/x-www-form-urlencoded"
        | "" => Ok(Format::Yaml),
        other => Err(ApiError::BadRequest(format!(
            "unsupported content type `{other}`; send application/yaml or application/json"
        ))),
    }
}

/// The path of an ignored field, written like validation paths (`providers[0].typo`).
fn path_of(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_of(parent)),
        Path::Map { parent, key } => match path_of(parent) {
            base if base.is_empty() => key.clone(),
            base => format!("{base}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_of(parent),
    }
}

/// Parses the body, refusing unknown fields (422 with their paths).
fn parse(format: Format, bytes: &[u8]) -> Result<Snapshot, ApiError> {
    let mut unknown = Vec::new();
    let parsed = match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            serde_ignored::deserialize(&mut de, |p| unknown.push(path_of(&p)))
                .and_then(|s| de.end().map(|()| s))
                .map_err(|e| match e.classify() {
                    serde_json::error::Category::Data => ApiError::invalid("body", e.to_string()),
                    _ => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
                })
        }
        Format::Yaml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
            serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |p| {
                unknown.push(path_of(&p))
            })
            .map_err(|e| ApiError::invalid("body", format!("not a valid config: {e}")))
        }
    }?;
    super::extract::reject_nul(&parsed)?;
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(
            unknown
                .into_iter()
                .map(|p| FieldError::new(p, "unknown field"))
                .collect(),
        ));
    }
    Ok(parsed)
}

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(ApiError::BadRequest(
            "the request body could not be read (or exceeds 64 MiB)".into(),
        )),
    }
}

#[utoipa::path(put, path = "/admin/config",
    operation_id = "apply_config", tag = "config", security(("bearer" = [])),
    params(("prune" = Option<bool>, Query, description = "delete and revoke what the file leaves out (default true)")),
    request_body(description = "The whole desired configuration: providers, routes and keys (keys by SHA-256; `team` is a team name, \
        created if missing; keys without one go to team `default`), team limits and log policies, budgets (identified by `name`; `target` is a team name, \
        a key name or a tag; a key's `budget` names one) and price overrides (an entry equal to the built-in price is not an override). \
        What the store holds beyond it is deleted or revoked.",
        content(("application/yaml"), ("application/json"))),
    responses((status = 200, body = ApplyReport, description = "what changed; applying the same file again appends no events"),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "unknown fields or invalid config, with paths")))]
pub async fn apply(
    State(state): State<AppState>,
    who: Principal,
    page: super::extract::Page,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ApplyReport>, ApiError> {
    who.require_global()?;
    let prune = match page.params.get("prune").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(ApiError::invalid("prune", "must be true or false")),
    };
    let format = format_of(&headers)?;
    let bytes = read_body(body).await?;
    let desired = parse(format, &bytes)?;
    let report =
        declarative::apply(state.store(), state.seal(), &who.actor, &desired, prune).await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Invalid(d) => d.into_iter().map(|f| f.path).collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_paths() {
        let yaml = "providers:\n  - { id: p, kind: openai, tiemout_ms: 5 }\nroutes: []\nextra: 1\n";
        assert_eq!(
            paths(parse(Format::Yaml, yaml.as_bytes()).unwrap_err()),
            ["providers[0].tiemout_ms", "extra"]
        );
        let json = r#"{"routes": [{"alias": "a", "deployments": [{"provider": "p", "model": "m", "wieght": 1}]}]}"#;
        assert_eq!(
            paths(parse(Format::Json, json.as_bytes()).unwrap_err()),
            ["routes[0].deployments[0].wieght"]
        );
    }

    #[test]
    fn yaml_and_json_both_parse() {
        let yaml = "providers: [{ id: p, kind: openai }]\n";
        assert_eq!(
            parse(Format::Yaml, yaml.as_bytes()).unwrap().providers[0].id,
            "p"
        );
        let json = r#"{"providers": [{"id": "p", "kind": "openai"}]}"#;
        assert_eq!(
            parse(Format::Yaml, json.as_bytes()).unwrap(),
            parse(Format::Json, json.as_bytes()).unwrap()
        );
        assert!(matches!(
            parse(Format::Json, b"{"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse(Format::Json, br#"{"providers": 1}"#),
            Err(ApiError::Invalid(_))
        ));
    }

    #[test]
    fn content_types_choose_the_parser() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_str(ct).unwrap(),
            );
            format_of(&h)
        };
        assert_eq!(format_of(&HeaderMap::new()).unwrap(), Format::Yaml);
        assert_eq!(
            with("application/json; charset=utf-8").unwrap(),
            Format::Json
        );
        assert_eq!(with("text/yaml").unwrap(), Format::Yaml);
        assert!(matches!(with("text/html"), Err(ApiError::BadRequest(_))));
    }
}
