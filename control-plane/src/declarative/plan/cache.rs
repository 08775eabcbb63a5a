//! Cache policies: the file's `cache_policies`, global, matched by id. A policy's `applies_to`
//! may name teams by name (resolved to their ids here, or when the apply creates them) or by
//! id. Its `epoch` is the store's: a file never un-purges a cache, so the epoch it states is
//! ignored and the current one kept.

use std::collections::HashSet;

use super::resources::spec_errors;
use super::{Change, Current, Desired};
use crate::domain::cache_policy::CachePolicySpec;
use crate::domain::FieldError;

/// The file's policies in store terms (epoch left at 0: see [`plan_cache_policies`]).
pub(super) fn desired_policies(
    policies: &[proto::CachePolicy],
    errors: &mut Vec<FieldError>,
) -> Vec<(String, CachePolicySpec)> {
    let specs: Vec<(String, CachePolicySpec)> = policies
        .iter()
        .map(|p| {
            let spec = CachePolicySpec {
                epoch: 0,
                ..CachePolicySpec::from_proto(p)
            };
            (p.id.clone(), spec)
        })
        .collect();
    errors.extend(spec_errors(&specs, "cache_policies"));
    specs
}

/// A put for each policy that is missing or differs (teams by id where known, the stored
/// epoch kept); a delete for each stored one the file does not list.
pub(super) fn plan_cache_policies(current: &Current, desired: &Desired, out: &mut Vec<Change>) {
    for (id, spec) in &desired.cache_policies {
        let mut spec = spec.clone();
        for team in &mut spec.applies_to.teams {
            if let Some(known) = current.teams.get(team.as_str()) {
                *team = known.to_string();
            }
        }
        let cur = current.cache_policies.get(id);
        spec.epoch = cur.map_or(0, |c| c.epoch);
        if cur != Some(&spec) {
            out.push(Change::PutCachePolicy {
                id: id.clone(),
                spec,
                create: cur.is_none(),
            });
        }
    }
    let listed: HashSet<&str> = desired
        .cache_policies
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let gone = current
        .cache_policies
        .keys()
        .filter(|id| !listed.contains(id.as_str()));
    out.extend(gone.map(|id| Change::DeleteCachePolicy { id: id.clone() }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn team_names_resolve_the_epoch_is_kept_and_unlisted_policies_go() {
        let team = Uuid::now_v7();
        let mut current = Current::default();
        current.teams.insert("payments".into(), team);
        let mut stored = CachePolicySpec::default();
        stored.applies_to.teams = vec![team.to_string()];
        stored.epoch = 3;
        current.cache_policies.insert("p".into(), stored);
        current
            .cache_policies
            .insert("old".into(), CachePolicySpec::default());
        let mut file = proto::CachePolicy::new("p");
        file.applies_to.teams = vec!["payments".into()];
        let mut errors = Vec::new();
        let desired = Desired {
            cache_policies: desired_policies(&[file], &mut errors),
            ..Desired::default()
        };
        assert!(errors.is_empty());
        let mut changes = Vec::new();
        plan_cache_policies(&current, &desired, &mut changes);
        assert_eq!(changes, [Change::DeleteCachePolicy { id: "old".into() }]);
    }
}
