//! A generic aggregate for resources whose whole configuration is one validated spec
//! (providers, routes, budgets, prices): created, replaced, deleted.
//!
//! Updates carry the complete new spec, and only when it differs from the current one, so the
//! log shows exactly what changed to what, and re-applying the same spec records nothing.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Aggregate, Ctx, DomainError, EventName};

/// The configuration of one kind of spec resource.
pub trait Spec:
    Clone + PartialEq + Default + Serialize + DeserializeOwned + Send + Sync + std::fmt::Debug + 'static
{
    /// Stream kind, e.g. `provider`.
    const KIND: &'static str;
    /// Event types: created, updated, deleted.
    const EVENTS: [&'static str; 3];
    /// Checks the spec on its own (cross-resource references are checked by the caller).
    fn validate(&self) -> Result<(), DomainError>;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource<S> {
    pub id: String,
    pub team_id: Option<Uuid>,
    pub spec: S,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub live: bool,
}

#[derive(Debug)]
pub enum ResourceCommand<S> {
    Create {
        id: String,
        team_id: Option<Uuid>,
        spec: S,
    },
    /// Create if missing, replace if different (declarative apply).
    Put {
        id: String,
        team_id: Option<Uuid>,
        spec: S,
    },
    Update(S),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceEvent<S> {
    Created {
        id: String,
        team_id: Option<Uuid>,
        spec: S,
    },
    Updated {
        spec: S,
    },
    Deleted,
}

impl<S: Spec> EventName for ResourceEvent<S> {
    fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => S::EVENTS[0],
            Self::Updated { .. } => S::EVENTS[1],
            Self::Deleted => S::EVENTS[2],
        }
    }
}

impl<S: Spec> Aggregate for Resource<S> {
    const KIND: &'static str = S::KIND;
    type Command = ResourceCommand<S>;
    type Event = ResourceEvent<S>;

    fn decide(
        &self,
        command: ResourceCommand<S>,
        _ctx: &Ctx,
    ) -> Result<Vec<ResourceEvent<S>>, DomainError> {
        match command {
            ResourceCommand::Create { id, team_id, spec } => {
                if self.live {
                    return Err(DomainError::Conflict(format!(
                        "{} `{id}` already exists",
                        S::KIND
                    )));
                }
                spec.validate()?;
                Ok(vec![ResourceEvent::Created { id, team_id, spec }])
            }
            ResourceCommand::Put { id, team_id, spec } => {
                if !self.live {
                    return self.decide(ResourceCommand::Create { id, team_id, spec }, _ctx);
                }
                self.decide(ResourceCommand::Update(spec), _ctx)
            }
            ResourceCommand::Update(spec) => {
                DomainError::unless_live(self.live, S::KIND)?;
                spec.validate()?;
                if spec == self.spec {
                    return Ok(vec![]);
                }
                Ok(vec![ResourceEvent::Updated { spec }])
            }
            ResourceCommand::Delete => {
                DomainError::unless_live(self.live, S::KIND)?;
                Ok(vec![ResourceEvent::Deleted])
            }
        }
    }

    fn evolve(&mut self, event: &ResourceEvent<S>, at: DateTime<Utc>) {
        match event {
            ResourceEvent::Created { id, team_id, spec } => {
                *self = Resource {
                    id: id.clone(),
                    team_id: *team_id,
                    spec: spec.clone(),
                    created_at: Some(at),
                    updated_at: Some(at),
                    live: true,
                };
            }
            ResourceEvent::Updated { spec } => {
                self.spec = spec.clone();
                self.updated_at = Some(at);
            }
            ResourceEvent::Deleted => {
                self.live = false;
                self.updated_at = Some(at);
            }
        }
    }

    fn exists(&self) -> bool {
        self.live
    }
}

/// Turns a snapshot validation error list into a domain error, dropping `prefix` from paths.
pub fn from_snapshot_errors(errors: Vec<proto::ValidationError>, prefix: &str) -> DomainError {
    DomainError::Invalid(
        errors
            .into_iter()
            .map(|e| {
                super::FieldError::new(
                    e.path
                        .strip_prefix(prefix)
                        .unwrap_or(&e.path)
                        .trim_start_matches('.'),
                    e.reason,
                )
            })
            .collect(),
    )
}
