//! Admin authentication and team scoping.
//!
//! A bearer token is either the bootstrap token from the environment (global scope) or an
//! admin token created through the API (global or scoped to one team). Tokens are compared
//! by SHA-256 digest: the bootstrap digest in constant time, stored tokens by lookup of the
//! digest (the secret itself is never stored).

use axum::extract::FromRequestParts;
use http::request::Parts;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::ApiError;
use super::AppState;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Recorded as the actor of every event this caller causes.
    pub actor: String,
    /// `None` for global tokens.
    pub team: Option<Uuid>,
}

impl Principal {
    /// Whether this caller may see a resource owned by `team` (`None` = global resource).
    pub fn can_see(&self, team: Option<Uuid>) -> bool {
        self.team.is_none() || self.team == team
    }

    /// 404 (not 403: another team's resources are not acknowledged to exist) unless visible.
    pub fn check(&self, team: Option<Uuid>, what: &str) -> Result<(), ApiError> {
        if self.can_see(team) {
            Ok(())
        } else {
            Err(ApiError::NotFound(what.to_owned()))
        }
    }

    /// The owner of a new resource: a team-scoped caller may only create in its team.
    pub fn owner(&self, requested: Option<Uuid>) -> Result<Option<Uuid>, ApiError> {
        match (self.team, requested) {
            (None, r) => Ok(r),
            (Some(own), None) => Ok(Some(own)),
            (Some(own), Some(r)) if r == own => Ok(Some(own)),
            (Some(_), Some(_)) => Err(ApiError::Forbidden(
                "a team-scoped token can only manage its own team".into(),
            )),
        }
    }

    /// Only global tokens may do this.
    pub fn require_global(&self) -> Result<(), ApiError> {
        if self.team.is_none() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this operation needs a global admin token".into(),
            ))
        }
    }
}

/// SHA-256 of a token, lowercase hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two digests.
fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = header
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map(|_| header[7..].trim())
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let digest = Sha256::digest(token.as_bytes());
        if digest_eq(&digest, &state.inner.bootstrap) {
            return Ok(Principal {
                actor: "bootstrap".into(),
                team: None,
            });
        }
        let client = state.inner.store.pool().get().await?;
        let row = client
            .query_opt(
                "SELECT id, team_id FROM admin_tokens WHERE sha256 = $1 AND revoked_at IS NULL",
                &[&hex::encode(digest)],
            )
            .await?;
        match row {
            Some(row) => {
                let id: Uuid = row.get(0);
                Ok(Principal {
                    actor: format!("admin_token:{id}"),
                    team: row.get(1),
                })
            }
            None => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoping_rules() {
        let team = Uuid::now_v7();
        let other = Uuid::now_v7();
        let global = Principal {
            actor: "g".into(),
            team: None,
        };
        let scoped = Principal {
            actor: "t".into(),
            team: Some(team),
        };
        assert!(global.can_see(Some(other)) && global.can_see(None));
        assert!(
            scoped.can_see(Some(team)) && !scoped.can_see(Some(other)) && !scoped.can_see(None)
        );
        assert_eq!(scoped.owner(None).ok(), Some(Some(team)));
        assert!(scoped.owner(Some(other)).is_err());
        assert!(scoped.require_global().is_err());
        assert!(
            digest_eq(b"abc", b"abc") && !digest_eq(b"abc", b"abd") && !digest_eq(b"ab", b"abc")
        );
    }
}
