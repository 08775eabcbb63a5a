//! Teams: the unit of ownership and isolation. Keys, providers, routes, budgets and admin
//! tokens may belong to a team; a team-scoped admin token sees only its team's resources.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::LogPayloads;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::key::nullable;
use super::{Aggregate, Check, Ctx, DomainError, EventName};

/// Current state of a team stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// Requests per minute across all of the team's keys, enforced by every proxy together.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute across all of the team's keys.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// What the request log keeps of the requests of the team's keys that set none themselves
    /// (`None`: `metadata`).
    #[serde(default)]
    pub log_payloads: Option<LogPayloads>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub live: bool,
}

/// The most a team limit may be: it is stored as a BIGINT, and no real limit comes near it.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// A new team as its create command asks for it and its created event records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTeam {
    pub id: Uuid,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    // Defaults keep events recorded before teams had limits or a log policy readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_payloads: Option<LogPayloads>,
}

/// A partial update: `None` keeps a field; for the limits and the log policy `Some(None)`
/// removes it.
/// Recorded as it is (flat under the event's type): an absent field reads as `None`, a `null`
/// one as `Some(None)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeamPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "nullable")]
    pub rpm: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "nullable")]
    pub tpm: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "nullable")]
    pub log_payloads: Option<Option<LogPayloads>>,
}

impl TeamPatch {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Drops the fields that would not change `t`.
    fn minus(mut self, t: &Team) -> Self {
        super::drop_unchanged!(self, t; name, metadata, rpm, tpm, log_payloads);
        self
    }

    fn apply(&self, t: &mut Team) {
        let patch = self.clone();
        super::assign_present!(t, patch; name, metadata, rpm, tpm, log_payloads);
    }
}

#[derive(Debug)]
pub enum TeamCommand {
    Create(NewTeam),
    Update(TeamPatch),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TeamEvent {
    #[serde(rename = "team.created")]
    Created(NewTeam),
    #[serde(rename = "team.updated")]
    Updated(TeamPatch),
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

/// Checks team limits; `at` prefixes the field paths (`""` or e.g. `"teams[0]."`).
pub fn check_limits(check: &mut Check, at: &str, rpm: Option<u64>, tpm: Option<u64>) {
    for (field, v) in [("rpm", rpm), ("tpm", tpm)] {
        let path = format!("{at}{field}");
        match v {
            Some(0) => check.fail(&path, "must be at least 1 (omit it for no limit)"),
            Some(n) if n > MAX_LIMIT => check.fail(&path, format!("must be at most {MAX_LIMIT}")),
            _ => {}
        }
    }
}

impl Aggregate for Team {
    const KIND: &'static str = "team";
    type Command = TeamCommand;
    type Event = TeamEvent;

    fn decide(&self, command: TeamCommand, _ctx: &Ctx) -> Result<Vec<TeamEvent>, DomainError> {
        match command {
            TeamCommand::Create(new) => {
                if self.live {
                    return Err(DomainError::Conflict(format!(
                        "team {} already exists",
                        new.id
                    )));
                }
                let mut check = Check::new();
                check.name("name", &new.name);
                check_metadata(&mut check, &new.metadata);
                check_limits(&mut check, "", new.rpm, new.tpm);
                check.done()?;
                Ok(vec![TeamEvent::Created(new)])
            }
            TeamCommand::Update(patch) => {
                DomainError::unless_live(self.live, "team")?;
                let mut check = Check::new();
                if let Some(n) = &patch.name {
                    check.name("name", n);
                }
                if let Some(m) = &patch.metadata {
                    check_metadata(&mut check, m);
                }
                check_limits(&mut check, "", patch.rpm.flatten(), patch.tpm.flatten());
                check.done()?;
                let patch = patch.minus(self);
                if patch.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![TeamEvent::Updated(patch)])
            }
            TeamCommand::Delete => {
                DomainError::unless_live(self.live, "team")?;
                Ok(vec![TeamEvent::Deleted])
            }
        }
    }

    fn evolve(&mut self, event: &TeamEvent, at: DateTime<Utc>) {
        match event {
            TeamEvent::Created(new) => {
                *self = Team {
                    id: new.id,
                    name: new.name.clone(),
                    metadata: new.metadata.clone(),
                    rpm: new.rpm,
                    tpm: new.tpm,
                    log_payloads: new.log_payloads,
                    created_at: Some(at),
                    updated_at: Some(at),
                    live: true,
                };
            }
            TeamEvent::Updated(patch) => {
                patch.apply(self);
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
                TeamCommand::Create(NewTeam {
                    id,
                    name: "payments".into(),
                    metadata: BTreeMap::new(),
                    rpm: None,
                    tpm: None,
                    log_payloads: None,
                }),
                &ctx(),
            )
            .unwrap();
        team.evolve(&events[0], Utc::now());
        assert!(team.live);
        let again = team.decide(
            TeamCommand::Create(NewTeam {
                id,
                name: "x".into(),
                metadata: BTreeMap::new(),
                rpm: None,
                tpm: None,
                log_payloads: None,
            }),
            &ctx(),
        );
        assert!(matches!(again, Err(DomainError::Conflict(_))));
        let same = team
            .decide(
                TeamCommand::Update(TeamPatch {
                    name: Some("payments".into()),
                    ..Default::default()
                }),
                &ctx(),
            )
            .unwrap();
        assert!(
            same.is_empty(),
            "an update that changes nothing records nothing"
        );
        let bad = team.decide(
            TeamCommand::Update(TeamPatch {
                name: Some(" ".into()),
                ..Default::default()
            }),
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

    #[test]
    fn limits_are_validated_set_and_cleared_and_old_events_still_read() {
        let id = Uuid::now_v7();
        let mut team = Team::default();
        let bad = team.decide(
            TeamCommand::Create(NewTeam {
                id,
                name: "t".into(),
                metadata: BTreeMap::new(),
                rpm: Some(0),
                tpm: Some(MAX_LIMIT + 1),
                log_payloads: None,
            }),
            &ctx(),
        );
        assert!(
            matches!(bad, Err(DomainError::Invalid(ref e)) if e.len() == 2),
            "{bad:?}"
        );
        let created = team
            .decide(
                TeamCommand::Create(NewTeam {
                    id,
                    name: "t".into(),
                    metadata: BTreeMap::new(),
                    rpm: Some(100),
                    tpm: None,
                    log_payloads: None,
                }),
                &ctx(),
            )
            .unwrap();
        team.evolve(&created[0], Utc::now());
        assert_eq!((team.rpm, team.tpm), (Some(100), None));
        let clear = team
            .decide(
                TeamCommand::Update(TeamPatch {
                    rpm: Some(None),
                    tpm: Some(Some(5000)),
                    ..Default::default()
                }),
                &ctx(),
            )
            .unwrap();
        // The event goes through JSON as the store keeps it: `null` must still mean "clear".
        let json = serde_json::to_value(&clear[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "team.updated", "rpm": null, "tpm": 5000}),
            "stored flat under its type, only the changed fields"
        );
        let replayed: TeamEvent = serde_json::from_value(json).unwrap();
        assert_eq!(replayed, clear[0]);
        team.evolve(&replayed, Utc::now());
        assert_eq!((team.rpm, team.tpm), (None, Some(5000)));
        let old: TeamEvent = serde_json::from_str(
            r#"{"type":"team.created","id":"0190a6a4-0000-7000-8000-000000000000","name":"n","metadata":{}}"#,
        )
        .unwrap();
        assert!(matches!(
            old,
            TeamEvent::Created(NewTeam {
                rpm: None,
                tpm: None,
                log_payloads: None,
                ..
            })
        ));
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"type":"team.created","id":"0190a6a4-0000-7000-8000-000000000000","name":"n","metadata":{}}"#,
            "stored flat under its type, as before"
        );
    }

    #[test]
    fn the_log_policy_is_set_changed_cleared_and_absent_from_old_events() {
        let mut team = Team::default();
        let new = NewTeam {
            id: Uuid::now_v7(),
            name: "t".into(),
            metadata: BTreeMap::new(),
            rpm: None,
            tpm: None,
            log_payloads: Some(LogPayloads::Off),
        };
        let run = |team: &mut Team, command| {
            let events = team.decide(command, &ctx()).unwrap();
            for e in &events {
                // Through JSON, as the store keeps it.
                let json = serde_json::to_value(e).unwrap();
                team.evolve(&serde_json::from_value(json).unwrap(), Utc::now());
            }
            events.len()
        };
        assert_eq!(run(&mut team, TeamCommand::Create(new)), 1);
        assert_eq!(team.log_payloads, Some(LogPayloads::Off));
        let policy = |p| {
            TeamCommand::Update(TeamPatch {
                log_payloads: Some(p),
                ..Default::default()
            })
        };
        assert_eq!(
            run(&mut team, policy(Some(LogPayloads::Off))),
            0,
            "unchanged"
        );
        assert_eq!(run(&mut team, policy(Some(LogPayloads::Full))), 1);
        assert_eq!(team.log_payloads, Some(LogPayloads::Full));
        assert_eq!(run(&mut team, policy(None)), 1);
        assert_eq!(team.log_payloads, None, "cleared: `null` survives the log");
        // Events recorded before the policy existed replay with none, and change none.
        team.log_payloads = Some(LogPayloads::Full);
        let old: TeamEvent =
            serde_json::from_str(r#"{"type":"team.updated","rpm":null,"name":"renamed"}"#).unwrap();
        team.evolve(&old, Utc::now());
        assert_eq!(
            (team.name.as_str(), team.log_payloads),
            ("renamed", Some(LogPayloads::Full))
        );
    }
}
