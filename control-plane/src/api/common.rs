//! Small pieces every admin handler module shares: path ids, PATCH-style optional fields and
//! the owner team of a new resource.

use uuid::Uuid;

use super::{ApiError, AppState};

/// Parses a path id; an id that is not a UUID names nothing (404).
pub fn parse_id(id: &str, what: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(what.to_owned()))
}

/// Deserializes a field that distinguishes absent (`None`, with `#[serde(default)]`) from
/// `null` (`Some(None)`, "clear it"): the rule the domain's patches are replayed with.
pub use crate::domain::key::nullable as double_option;

/// A new resource's owner team must exist (422 on `team_id` otherwise).
pub async fn ensure_team(state: &AppState, team: Option<Uuid>) -> Result<(), ApiError> {
    let Some(team) = team else { return Ok(()) };
    if state.store().team_exists(team).await? {
        Ok(())
    } else {
        Err(ApiError::invalid("team_id", "no such team"))
    }
}
