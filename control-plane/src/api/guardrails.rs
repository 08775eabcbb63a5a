//! `/admin/guardrails`: PII and secret redaction policies for keys, teams and routes.
//!
//! A policy names whom it applies to (`applies_to`: key ids, team ids, route aliases), the
//! action per built-in class (or one for all, `default_action`), custom patterns and whether
//! answers are checked too. Keys and teams it names must exist and be visible to the caller;
//! a team-scoped token may only guard its own team and its own keys (never a route, which all
//! teams share). Proxies get the policies in the snapshot.

use std::collections::BTreeMap;

use axum::response::Response;
use chrono::{DateTime, Utc};
use http::StatusCode;
use proto::{CustomPattern, GuardAction, GuardClass, GuardScope};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::ensure_team;
use super::crud::{self, AdminResource, Creatable, Cx, Decided, Deletable, Tabled, Updatable};
use super::{ApiError, List};
use crate::domain::guardrail::{Guardrail, GuardrailSpec};
use crate::domain::resource::ResourceCommand;
use crate::store::admin::{SpecTable, GUARDRAILS};

crud::handlers!(Guardrail, GuardrailView, "guardrails";
    create("create_guardrail", "/admin/guardrails", CreateGuardrail, responses((status = 201, body = GuardrailView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_guardrails", "/admin/guardrails"), read("get_guardrail", "/admin/guardrails/{id}", params(("id" = String, Path))),
    update("update_guardrail", "/admin/guardrails/{id}", UpdateGuardrail, params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag"))),
    remove("delete_guardrail", "/admin/guardrails/{id}", params(("id" = String, Path), ("If-Match" = Option<String>, Header))));

impl AdminResource for Guardrail {
    type View = GuardrailView;
    const UUID_IDS: bool = true;

    fn view(g: &Guardrail, version: i32) -> GuardrailView {
        let s = &g.spec;
        GuardrailView {
            id: g.id.parse().unwrap_or_default(),
            team_id: g.team_id,
            name: s.name.clone(),
            applies_to: s.applies_to.clone(),
            default_action: s.default_action,
            classes: s.classes.clone(),
            custom: s.custom.clone(),
            output: s.output,
            version,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

/// A guardrail policy as responses show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GuardrailView {
    pub id: Uuid,
    pub team_id: Option<Uuid>,
    pub name: String,
    /// `{"keys": [key id], "teams": [team id], "routes": [alias]}`.
    #[schema(value_type = Object, example = json!({"teams": ["0193..."]}))]
    pub applies_to: GuardScope,
    /// `redact`, `mask`, `block` or `reversible`: the action of every class not in `classes`.
    #[schema(value_type = Option<String>, example = "redact")]
    pub default_action: Option<GuardAction>,
    /// Action per built-in class (`email`, `phone`, `credit_card`, `iban`, `us_ssn`, `ipv4`,
    /// `ipv6`, `aws_access_key`, `github_token`, `gitlab_token`, `slack_token`, `openai_key`,
    /// `anthropic_key`, `private_key`, `jwt`, `secret_assignment`).
    #[schema(value_type = Object, example = json!({"aws_access_key": "block"}))]
    pub classes: BTreeMap<GuardClass, GuardAction>,
    /// `[{"name", "regex", "action"}]`.
    #[schema(value_type = Vec<Object>)]
    pub custom: Vec<CustomPattern>,
    /// Answers are checked too.
    pub output: bool,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGuardrail {
    pub name: String,
    #[schema(value_type = Object, example = json!({"keys": [], "teams": ["0193..."], "routes": ["chat"]}))]
    pub applies_to: GuardScope,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "redact")]
    pub default_action: Option<GuardAction>,
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"aws_access_key": "block"}))]
    pub classes: BTreeMap<GuardClass, GuardAction>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub custom: Vec<CustomPattern>,
    #[serde(default)]
    pub output: bool,
    pub team_id: Option<Uuid>,
}

/// A partial update: absent fields are kept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGuardrail {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub applies_to: Option<GuardScope>,
    #[serde(default, deserialize_with = "super::common::double_option")]
    #[schema(value_type = Option<String>)]
    pub default_action: Option<Option<GuardAction>>,
    #[schema(value_type = Option<Object>)]
    pub classes: Option<BTreeMap<GuardClass, GuardAction>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub custom: Option<Vec<CustomPattern>>,
    pub output: Option<bool>,
}

/// Checks that the keys and teams `scope` names exist and that the policy's owner may guard
/// them: an owned policy names only its team, its team's keys, and no route.
async fn check_scope(cx: Cx<'_>, owner: Option<Uuid>, scope: &GuardScope) -> Result<(), ApiError> {
    for (i, team) in scope.teams.iter().enumerate() {
        let field = format!("applies_to.teams[{i}]");
        let id: Uuid = team
            .parse()
            .map_err(|_| ApiError::invalid(&field, "must be a team id"))?;
        if owner.is_some_and(|o| o != id) || !cx.who.can_see(Some(id)) {
            return Err(ApiError::invalid(
                &field,
                "a team's policy guards only that team",
            ));
        }
        if ensure_team(cx.app, Some(id)).await.is_err() {
            return Err(ApiError::invalid(&field, "no such team"));
        }
    }
    for (i, key) in scope.keys.iter().enumerate() {
        let field = format!("applies_to.keys[{i}]");
        let id: Uuid = key
            .parse()
            .map_err(|_| ApiError::invalid(&field, "must be a key id"))?;
        match cx.app.store().live_key_team(id).await? {
            Some(team) if cx.who.can_see(Some(team)) => {
                if owner.is_some_and(|o| o != team) {
                    return Err(ApiError::invalid(
                        &field,
                        "a team's policy guards only its keys",
                    ));
                }
            }
            _ => return Err(ApiError::invalid(&field, "no such key")),
        }
    }
    if owner.is_some() && !scope.routes.is_empty() {
        return Err(ApiError::invalid(
            "applies_to.routes",
            "routes are shared: only a global policy may guard them",
        ));
    }
    Ok(())
}

impl Creatable for Guardrail {
    type Body = CreateGuardrail;

    async fn create(cx: Cx<'_>, body: CreateGuardrail) -> Result<Response, ApiError> {
        let team_id = cx.who.owner(body.team_id)?;
        ensure_team(cx.app, team_id).await?;
        check_scope(cx, team_id, &body.applies_to).await?;
        let spec = GuardrailSpec {
            name: body.name,
            applies_to: body.applies_to,
            default_action: body.default_action,
            classes: body.classes,
            custom: body.custom,
            output: body.output,
        };
        let id = Uuid::now_v7().to_string();
        let command = ResourceCommand::Create {
            id: id.clone(),
            team_id,
            spec,
        };
        crud::run::<Self>(cx, &id, Some(0), command, StatusCode::CREATED).await
    }
}

impl Updatable for Guardrail {
    type Patch = UpdateGuardrail;

    async fn merge(cx: Cx<'_>, current: Guardrail, body: UpdateGuardrail) -> Decided<Self> {
        let mut spec = current.spec;
        if let Some(scope) = body.applies_to {
            check_scope(cx, current.team_id, &scope).await?;
            spec.applies_to = scope;
        }
        spec.name = body.name.unwrap_or(spec.name);
        spec.default_action = body.default_action.unwrap_or(spec.default_action);
        spec.classes = body.classes.unwrap_or(spec.classes);
        spec.custom = body.custom.unwrap_or(spec.custom);
        spec.output = body.output.unwrap_or(spec.output);
        Ok(ResourceCommand::Update(spec))
    }
}

impl Deletable for Guardrail {
    async fn delete(_: Cx<'_>, _: &Guardrail) -> Decided<Self> {
        Ok(ResourceCommand::Delete)
    }
}

impl Tabled for GuardrailSpec {
    const TABLE: SpecTable = GUARDRAILS;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_reads_classes_and_refuses_unknown_ones() {
        let body: CreateGuardrail = serde_json::from_str(
            r#"{"name":"n","applies_to":{"routes":["chat"]},"classes":{"email":"mask","jwt":"block"}}"#,
        )
        .unwrap();
        assert_eq!(body.classes[&GuardClass::Jwt], GuardAction::Block);
        assert!(serde_json::from_str::<CreateGuardrail>(
            r#"{"name":"n","applies_to":{},"classes":{"passport":"mask"}}"#
        )
        .is_err());
    }
}
