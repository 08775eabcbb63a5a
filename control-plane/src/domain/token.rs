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

/// A new token as its create command asks for it and its created event records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewToken {
    pub id: Uuid,
    pub name: String,
    pub team_id: Option<Uuid>,
    pub sha256: String,
    pub prefix: String,
}

#[derive(Debug)]
pub enum TokenCommand {
    Create(NewToken),
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TokenEvent {
    #[serde(rename = "admin_token.created")]
    Created(NewToken),
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
            TokenCommand::Create(new) => {
                if self.live || self.revoked_at.is_some() {
                    return Err(DomainError::Conflict(format!(
                        "admin token {} already exists",
                        new.id
                    )));
                }
                let mut check = Check::new();
                check.name("name", &new.name);
                check.done()?;
                Ok(vec![TokenEvent::Created(new)])
            }
            TokenCommand::Revoke => {
                DomainError::unless_live(self.live, "admin token")?;
                Ok(vec![TokenEvent::Revoked])
            }
        }
    }

    fn evolve(&mut self, event: &TokenEvent, at: DateTime<Utc>) {
        match event {
            TokenEvent::Created(new) => {
                *self = AdminToken {
                    id: new.id,
                    name: new.name.clone(),
                    team_id: new.team_id,
                    sha256: new.sha256.clone(),
                    prefix: new.prefix.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_created_event_is_stored_flat_under_its_type() {
        let json = r#"{"type":"admin_token.created","id":"0190a6a4-0000-7000-8000-000000000000","name":"ci","team_id":null,"sha256":"ab","prefix":"sk-sy-adm"}"#;
        let event: TokenEvent = serde_json::from_str(json).unwrap();
        let TokenEvent::Created(new) = &event else {
            panic!("{event:?}")
        };
        assert_eq!((new.name.as_str(), new.team_id), ("ci", None));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}
