//! `/admin/teams`: create, list, read, update, delete.
//!
//! A team-scoped token sees only its own team; only global tokens create, change or remove
//! teams.

use std::collections::BTreeMap;

use axum::response::Response;
use chrono::{DateTime, Utc};
use http::StatusCode;
use proto::LogPayloads;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::double_option;
use super::crud::{
    self, AdminResource, Creatable, Cx, Decided, Deletable, Listed, Rows, Updatable, Visible,
};
use super::extract::Page;
use super::{ApiError, List, Principal};
use crate::domain::log_payloads::LogPayloadsSchema;
use crate::domain::team::{NewTeam, Team, TeamCommand, TeamPatch};

crud::handlers!(Team, TeamView, "teams";
    create("create_team", "/admin/teams", CreateTeam, responses((status = 201, body = TeamView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_teams", "/admin/teams"), read("read_team", "/admin/teams/{id}", params(("id" = String, Path))),
    update("update_team", "/admin/teams/{id}", UpdateTeam, params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag")), (status = 403, body = super::error::ErrorBody)),
    remove("remove_team", "/admin/teams/{id}", params(("id" = String, Path), ("If-Match" = Option<String>, Header)), (status = 403, body = super::error::ErrorBody)));

impl AdminResource for Team {
    type View = TeamView;
    const UUID_IDS: bool = true;

    fn view(t: &Team, version: i32) -> TeamView {
        TeamView {
            id: t.id,
            name: t.name.clone(),
            metadata: t.metadata.clone(),
            rpm: t.rpm,
            tpm: t.tpm,
            log_payloads: t.log_payloads,
            version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A team with its limits and request-log policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// Requests per minute across all of the team's keys (null: no limit).
    pub rpm: Option<u64>,
    /// Tokens per minute across all of the team's keys (null: no limit).
    pub tpm: Option<u64>,
    /// What the request log keeps of the requests of the team's keys that set none themselves
    /// (null: `metadata`).
    #[schema(value_type = Option<LogPayloadsSchema>)]
    pub log_payloads: Option<LogPayloads>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A team is seen by global tokens and by its own.
impl Visible for Team {
    fn visible_to(&self, who: &Principal) -> bool {
        self.live && who.can_see(Some(self.id))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Requests per minute across all of the team's keys, 1-1000000000000.
    pub rpm: Option<u64>,
    /// Tokens per minute across all of the team's keys, 1-1000000000000.
    pub tpm: Option<u64>,
    /// What the request log keeps of the requests of the team's keys that set none themselves.
    /// Default: `metadata`.
    #[schema(value_type = Option<LogPayloadsSchema>)]
    pub log_payloads: Option<LogPayloads>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    pub name: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub rpm: Option<Option<u64>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub tpm: Option<Option<u64>>,
    /// `null` removes the team's policy (its keys without one get `metadata`).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LogPayloadsSchema>)]
    pub log_payloads: Option<Option<LogPayloads>>,
}

impl Creatable for Team {
    type Body = CreateTeam;

    async fn create(cx: Cx<'_>, body: CreateTeam) -> Result<Response, ApiError> {
        cx.who.require_global()?;
        let id = Uuid::now_v7();
        let command = TeamCommand::Create(NewTeam {
            id,
            name: body.name,
            metadata: body.metadata,
            rpm: body.rpm,
            tpm: body.tpm,
            log_payloads: body.log_payloads,
        });
        crud::run::<Self>(cx, &id.to_string(), Some(0), command, StatusCode::CREATED).await
    }
}

impl Updatable for Team {
    type Patch = UpdateTeam;
    /// The command carries only the changed fields; the aggregate applies them.
    const PIN: bool = false;

    async fn merge(cx: Cx<'_>, _: Team, body: UpdateTeam) -> Decided<Self> {
        cx.who.require_global()?;
        Ok(TeamCommand::Update(TeamPatch {
            name: body.name,
            metadata: body.metadata,
            rpm: body.rpm,
            tpm: body.tpm,
            log_payloads: body.log_payloads,
        }))
    }
}

impl Deletable for Team {
    /// Refused while the team still owns anything.
    async fn delete(cx: Cx<'_>, team: &Team) -> Decided<Self> {
        cx.who.require_global()?;
        if cx.app.store().team_holdings(team.id).await? > 0 {
            return Err(ApiError::Conflict(
                "the team still owns live keys, providers, routes or budgets; remove them first"
                    .into(),
            ));
        }
        Ok(TeamCommand::Delete)
    }
}

impl Listed for Team {
    type Row = TeamView;

    async fn page(cx: Cx<'_>, page: &Page) -> Rows<TeamView> {
        let store = cx.app.store();
        let rows = store
            .team_page(cx.who.team, page.after_uuid()?, page.limit + 1)
            .await?;
        Ok(crud::keyed::<Self>(&rows, |t| t.id.to_string()))
    }
}
