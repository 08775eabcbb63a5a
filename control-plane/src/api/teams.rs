//! `/admin/teams`: create, list, read, update, delete.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::{double_option, parse_id};
use super::crud::{self, AdminResource, Command, Deletable, Listed, Updatable};
use super::extract::{JsonBody, Page};
use super::{ApiError, AppState, List, Principal};
use crate::domain::team::{Team, TeamCommand};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/teams", get(list).post(create))
        .route("/admin/teams/{id}", get(read).patch(update).delete(remove))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// Requests per minute across all of the team's keys (null: no limit).
    pub rpm: Option<u64>,
    /// Tokens per minute across all of the team's keys (null: no limit).
    pub tpm: Option<u64>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl TeamView {
    fn of(t: &Team, version: i32) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            metadata: t.metadata.clone(),
            rpm: t.rpm,
            tpm: t.tpm,
            version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
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
}

#[utoipa::path(operation_id = "create_team", post, path = "/admin/teams", tag = "teams", request_body = CreateTeam, security(("bearer" = [])),
    responses((status = 201, body = TeamView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body): JsonBody<CreateTeam>,
) -> Result<Response, ApiError> {
    who.require_global()?;
    let id = Uuid::now_v7();
    let command = TeamCommand::Create {
        id,
        name: body.name,
        metadata: body.metadata,
        rpm: body.rpm,
        tpm: body.tpm,
    };
    let stream = id.to_string();
    crud::run::<Teams>(&state, &who, &stream, Some(0), command, StatusCode::CREATED).await
}

/// Teams for the generic admin operations. A team-scoped token sees only its own team, and
/// only global tokens change or remove teams.
pub struct Teams;

impl AdminResource for Teams {
    type State = Team;
    type View = TeamView;
    const WHAT: &'static str = "team";

    fn stream_id(id: &str) -> Result<String, ApiError> {
        Ok(parse_id(id, "team")?.to_string())
    }

    fn visible(team: &Team, who: &Principal) -> bool {
        team.live && who.can_see(Some(team.id))
    }

    fn view(team: &Team, version: i32) -> TeamView {
        TeamView::of(team, version)
    }
}

impl Updatable for Teams {
    type Patch = UpdateTeam;
    /// The command carries only the changed fields; the aggregate applies them.
    const PIN: bool = false;

    async fn merge(
        _: &AppState,
        who: &Principal,
        _: &str,
        _: Team,
        body: UpdateTeam,
    ) -> Result<Command<Self>, ApiError> {
        who.require_global()?;
        Ok(TeamCommand::Update {
            name: body.name,
            metadata: body.metadata,
            rpm: body.rpm,
            tpm: body.tpm,
        })
    }
}

impl Deletable for Teams {
    /// Refused while the team still owns anything.
    async fn delete(
        app: &AppState,
        who: &Principal,
        team: &Team,
    ) -> Result<Command<Self>, ApiError> {
        who.require_global()?;
        if app.store().team_holdings(team.id).await? > 0 {
            return Err(ApiError::Conflict(
                "the team still owns live keys, providers, routes or budgets; remove them first"
                    .into(),
            ));
        }
        Ok(TeamCommand::Delete)
    }
}

impl Listed for Teams {
    type Row = TeamView;

    async fn page(app: &AppState, who: &Principal, page: &Page) -> Result<Vec<TeamView>, ApiError> {
        let after = page.after_uuid()?;
        let rows = app
            .store()
            .team_page(who.team, after, page.limit + 1)
            .await?;
        Ok(rows.iter().map(|(t, v)| TeamView::of(t, *v)).collect())
    }

    fn cursor(row: &TeamView) -> String {
        row.id.to_string()
    }
}

crud::handlers!(Teams, TeamView, "teams";
    list("list_teams", "/admin/teams", params(("limit" = Option<i64>, Query, description = "1-1000, default 100"), ("after" = Option<String>, Query, description = "cursor from `next`"))),
    read("read_team", "/admin/teams/{id}", params(("id" = String, Path))),
    update("update_team", "/admin/teams/{id}", UpdateTeam, params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag")),
        (status = 403, body = super::error::ErrorBody)),
    remove("remove_team", "/admin/teams/{id}", params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
        (status = 403, body = super::error::ErrorBody)),
);
