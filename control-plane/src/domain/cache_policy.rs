//! Response-cache policies: whether, for how long and for whom answers are cached, for the
//! keys, routes or teams a policy names (see `proto::CachePolicy`). A purge is an update that
//! raises the policy's `epoch`, which every entry's key contains: the log records it like any
//! change, and every proxy stops answering from older entries once the snapshot arrives.

use serde::{Deserialize, Serialize};

use super::resource::{from_snapshot_errors, Resource, Spec};
use super::DomainError;

pub type CachePolicy = Resource<CachePolicySpec>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicySpec {
    pub enabled: bool,
    #[serde(default)]
    pub applies_to: proto::CacheTargets,
    pub ttl_secs: u64,
    pub max_entry_bytes: u64,
    pub finish_reasons: Vec<String>,
    #[serde(default)]
    pub shared: bool,
    /// Raised by each purge.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<proto::SemanticSettings>,
}

impl Default for CachePolicySpec {
    fn default() -> Self {
        Self::from_proto(&proto::CachePolicy::new(""))
    }
}

impl CachePolicySpec {
    /// The snapshot entry for this policy, owned by `team` (a team id) if any.
    pub fn to_proto(&self, id: &str, team: Option<String>) -> proto::CachePolicy {
        proto::CachePolicy {
            id: id.to_owned(),
            team,
            enabled: self.enabled,
            applies_to: self.applies_to.clone(),
            ttl_secs: self.ttl_secs,
            max_entry_bytes: self.max_entry_bytes,
            finish_reasons: self.finish_reasons.clone(),
            shared: self.shared,
            epoch: self.epoch,
            semantic: self.semantic.clone(),
        }
    }

    /// The spec of a policy as a snapshot (or a declarative file) states it.
    pub fn from_proto(p: &proto::CachePolicy) -> Self {
        Self {
            enabled: p.enabled,
            applies_to: p.applies_to.clone(),
            ttl_secs: p.ttl_secs,
            max_entry_bytes: p.max_entry_bytes,
            finish_reasons: p.finish_reasons.clone(),
            shared: p.shared,
            epoch: p.epoch,
            semantic: p.semantic.clone(),
        }
    }
}

impl Spec for CachePolicySpec {
    const KIND: &'static str = "cache_policy";
    const EVENTS: [&'static str; 3] = [
        "cache_policy.created",
        "cache_policy.updated",
        "cache_policy.deleted",
    ];

    fn validate(&self) -> Result<(), DomainError> {
        let at = "cache_policies[0]";
        let mut errors = self.to_proto("p", None).problems(at);
        let targets = &self.applies_to;
        let names = targets
            .keys
            .iter()
            .chain(&targets.teams)
            .chain(&targets.routes);
        if targets.keys.len() + targets.teams.len() + targets.routes.len() > 1000
            || names.clone().any(|n| n.is_empty() || n.len() > 256)
        {
            errors.push(proto::ValidationError {
                path: format!("{at}.applies_to"),
                reason: "at most 1000 names, each 1-256 characters".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(from_snapshot_errors(errors, at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_is_valid_and_bad_fields_are_named() {
        assert!(CachePolicySpec::default().validate().is_ok());
        let bad = CachePolicySpec {
            ttl_secs: proto::CACHE_MAX_TTL_SECS + 1,
            ..CachePolicySpec::default()
        };
        match bad.validate() {
            Err(DomainError::Invalid(errors)) => assert_eq!(errors[0].path, "ttl_secs"),
            other => panic!("{other:?}"),
        }
    }
}
