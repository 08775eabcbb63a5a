//! Small pieces every admin handler module shares: path ids, PATCH-style optional fields,
//! loading a resource the caller may see, and listing spec resources.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::extract::Page;
use super::{ApiError, AppState, Principal};
use crate::domain::resource::{Resource, Spec};
use crate::store::{Project, StoreError};

/// Parses a path id; an id that is not a UUID names nothing (404).
pub fn parse_id(id: &str, what: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(what.to_owned()))
}

/// Deserializes a field that distinguishes absent (`None`, with `#[serde(default)]`) from
/// `null` (`Some(None)`, "clear it").
pub fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Loads a live spec resource the caller may see; anything else is a 404.
pub async fn load_visible<S: Spec>(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(Resource<S>, i32), ApiError>
where
    Resource<S>: Project,
{
    let (resource, version) = state.store().load::<Resource<S>>(id).await?;
    if !resource.live || !who.can_see(resource.team_id) {
        return Err(ApiError::NotFound(S::KIND.to_owned()));
    }
    Ok((resource, version))
}

/// A new resource's owner team must exist (422 on `team_id` otherwise).
pub async fn ensure_team(state: &AppState, team: Option<Uuid>) -> Result<(), ApiError> {
    let Some(team) = team else { return Ok(()) };
    let client = state.store().pool().get().await?;
    match client
        .query_opt("SELECT 1 FROM teams WHERE id = $1", &[&team])
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid("team_id", "no such team")),
    }
}

/// A projection row that no longer parses is a store fault, not the client's.
pub fn corrupt(what: &str, id: &str, e: &serde_json::Error) -> ApiError {
    StoreError::Corrupt(format!("{what} {id}: {e}")).into()
}

/// One projection row of a spec resource.
#[derive(Debug)]
pub struct SpecRow<S> {
    pub id: String,
    pub team_id: Option<Uuid>,
    pub spec: S,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A page of a spec-resource table keyed by text (`providers` by `id`, `routes` by `alias`),
/// restricted to what the caller may see; one row more than the limit says there is more.
pub async fn spec_rows<S: Spec + DeserializeOwned>(
    state: &AppState,
    who: &Principal,
    page: &Page,
    table: &str,
    key: &str,
) -> Result<Vec<SpecRow<S>>, ApiError> {
    let client = state.store().pool().get().await?;
    let sql = format!(
        "SELECT {key}, team_id, spec, version, created_at, updated_at FROM {table}
         WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::text IS NULL OR {key} > $2) ORDER BY {key} LIMIT $3"
    );
    let rows = client
        .query(&sql, &[&who.team, &page.after, &(page.limit + 1)])
        .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.get(0);
            let spec = serde_json::from_value(r.get(2)).map_err(|e| corrupt(S::KIND, &id, &e))?;
            Ok(SpecRow {
                id,
                team_id: r.get(1),
                spec,
                version: r.get(3),
                created_at: r.get(4),
                updated_at: r.get(5),
            })
        })
        .collect()
}
