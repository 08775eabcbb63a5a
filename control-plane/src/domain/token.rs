//! Admin tokens: who may call the admin API. Global tokens manage everything; team-scoped
//! tokens only their team. Only the SHA-256 of a token is ever recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Aggregate, Check, Ctx, DomainError, EventName};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdminToken {
    pub id: Uuid,
    pub name: String,
    pub team_id: Option<Uuid>,
    pub sha256: String,
    pub prefix: String,
    pub created_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub live: bool,
}

#[derive(Debug)]
pub enum TokenCommand {
    Create {
        id: Uuid,
        name: String,
        team_id: Option<Uuid>,
        sha256: String,
        prefix: String,
    },
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TokenEvent {
    #[serde(rename = "admin_token.created")]
    Created {
        id: Uuid,
        name: String,
        team_id: Option<Uuid>,
        sha256: String,
        prefix: String,
    },
    #[serde(rename = "admin_token.revoked")]
    Revoked,
}

impl EventName for TokenEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "admin_token.created",
            Self::Revoked => "admin_token.revoked",
        }
    }
}

impl Aggregate for AdminToken {
    const KIND: &'static str = "admin_token";
    type Command = TokenCommand;
    type Event = TokenEvent;

    fn decide(&self, command: TokenCommand, _ctx: &Ctx) -> Result<Vec<TokenEvent>, DomainError> {
        match command {
            TokenCommand::Create {
                id,
                name,
                team_id,
                sha256,
                prefix,
            } => {
                if self.live || self.revoked_at.is_some() {
                    return Err(DomainError::Conflict(format!(
                        "admin token {id} already exists"
                    )));
                }
                let mut check = Check::new();
                check.name("name", &name);
                check.done()?;
                Ok(vec![TokenEvent::Created {
                    id,
                    name,
                    team_id,
                    sha256,
                    prefix,
                }])
            }
            TokenCommand::Revoke => {
                if !self.live {
                    return Err(DomainError::NotFound("admin token"));
                }
                Ok(vec![TokenEvent::Revoked])
            }
        }
    }

    fn evolve(&mut self, event: &TokenEvent, at: DateTime<Utc>) {
        match event {
            TokenEvent::Created {
                id,
                name,
                team_id,
                sha256,
                prefix,
            } => {
                *self = AdminToken {
                    id: *id,
                    name: name.clone(),
                    team_id: *team_id,
                    sha256: sha256.clone(),
                    prefix: prefix.clone(),
                    created_at: Some(at),
                    revoked_at: None,
                    live: true,
                };
            }
            TokenEvent::Revoked => {
                self.live = false;
                self.revoked_at = Some(at);
            }
        }
    }

    fn exists(&self) -> bool {
        self.live
    }
}
