//! Teams: the unit of ownership and isolation. Keys, providers, routes, budgets and admin
//! tokens may belong to a team; a team-scoped admin token sees only its team's resources.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Aggregate, Check, Ctx, DomainError, EventName};

/// Current state of a team stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub live: bool,
}

#[derive(Debug)]
pub enum TeamCommand {
    Create {
        id: Uuid,
        name: String,
        metadata: BTreeMap<String, String>,
    },
    Update {
        name: Option<String>,
        metadata: Option<BTreeMap<String, String>>,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TeamEvent {
    #[serde(rename = "team.created")]
    Created {
        id: Uuid,
        name: String,
        metadata: BTreeMap<String, String>,
    },
    #[serde(rename = "team.updated")]
    Updated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<BTreeMap<String, String>>,
    },
    #[serde(rename = "team.deleted")]
    Deleted,
}

impl EventName for TeamEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "team.created",
            Self::Updated { .. } => "team.updated",
            Self::Deleted => "team.deleted",
        }
    }
}

fn check_metadata(check: &mut Check, metadata: &BTreeMap<String, String>) {
    if metadata.len() > 64 {
        check.fail("metadata", "at most 64 entries");
    }
    for (k, v) in metadata {
        if k.is_empty() || k.len() > 128 || v.len() > 1024 {
            check.fail(
                &format!("metadata.{k}"),
                "keys are 1-128 characters, values at most 1024",
            );
        }
    }
}

impl Aggregate for Team {
    const KIND: &'static str = "team";
    type Command = TeamCommand;
    type Event = TeamEvent;

    fn decide(&self, command: TeamCommand, _ctx: &Ctx) -> Result<Vec<TeamEvent>, DomainError> {
        match command {
            TeamCommand::Create { id, name, metadata } => {
                if self.live {
                    return Err(DomainError::Conflict(format!("team {id} already exists")));
                }
                let mut check = Check::new();
                check.name("name", &name);
                check_metadata(&mut check, &metadata);
                check.done()?;
                Ok(vec![TeamEvent::Created { id, name, metadata }])
            }
            TeamCommand::Update { name, metadata } => {
                if !self.live {
                    return Err(DomainError::NotFound("team"));
                }
                let mut check = Check::new();
                if let Some(n) = &name {
                    check.name("name", n);
                }
                if let Some(m) = &metadata {
                    check_metadata(&mut check, m);
                }
                check.done()?;
                let name = name.filter(|n| *n != self.name);
                let metadata = metadata.filter(|m| *m != self.metadata);
                if name.is_none() && metadata.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![TeamEvent::Updated { name, metadata }])
            }
            TeamCommand::Delete => {
                if !self.live {
                    return Err(DomainError::NotFound("team"));
                }
                Ok(vec![TeamEvent::Deleted])
            }
        }
    }

    fn evolve(&mut self, event: &TeamEvent, at: DateTime<Utc>) {
        match event {
            TeamEvent::Created { id, name, metadata } => {
                *self = Team {
                    id: *id,
                    name: name.clone(),
                    metadata: metadata.clone(),
                    created_at: Some(at),
                    updated_at: Some(at),
                    live: true,
                };
            }
            TeamEvent::Updated { name, metadata } => {
                if let Some(n) = name {
                    self.name = n.clone();
                }
                if let Some(m) = metadata {
                    self.metadata = m.clone();
                }
                self.updated_at = Some(at);
            }
            TeamEvent::Deleted => {
                self.live = false;
                self.updated_at = Some(at);
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

    fn ctx() -> Ctx {
        Ctx { now: Utc::now() }
    }

    #[test]
    fn create_update_delete() {
        let id = Uuid::now_v7();
        let mut team = Team::default();
        let events = team
            .decide(
                TeamCommand::Create {
                    id,
                    name: "payments".into(),
                    metadata: BTreeMap::new(),
                },
                &ctx(),
            )
            .unwrap();
        team.evolve(&events[0], Utc::now());
        assert!(team.live);
        let again = team.decide(
            TeamCommand::Create {
                id,
                name: "x".into(),
                metadata: BTreeMap::new(),
            },
            &ctx(),
        );
        assert!(matches!(again, Err(DomainError::Conflict(_))));
        let same = team
            .decide(
                TeamCommand::Update {
                    name: Some("payments".into()),
                    metadata: None,
                },
                &ctx(),
            )
            .unwrap();
        assert!(
            same.is_empty(),
            "an update that changes nothing records nothing"
        );
        let bad = team.decide(
            TeamCommand::Update {
                name: Some(" ".into()),
                metadata: None,
            },
            &ctx(),
        );
        assert_eq!(
            bad,
            Err(DomainError::invalid(
                "name",
                "must be 1-128 characters without control characters"
            ))
        );
        let events = team.decide(TeamCommand::Delete, &ctx()).unwrap();
        team.evolve(&events[0], Utc::now());
        assert!(matches!(
            team.decide(TeamCommand::Delete, &ctx()),
            Err(DomainError::NotFound("team"))
        ));
    }
}
