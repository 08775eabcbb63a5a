//! Providers and routes: their specs from the file, sealed credentials that must open, and the
//! puts that make the store's match.

use proto::{Credential, Snapshot};

use super::{prefixed, Change, Current, Desired};
use crate::domain::provider::ProviderSpec;
use crate::domain::resource::Spec;
use crate::domain::FieldError;
use crate::seal::SealKey;

/// Sealed credentials must open with this control plane's key (when it has one), or the data
/// planes, which share the key, could not use them either.
pub fn sealed_errors(seal: Option<&SealKey>, s: &Snapshot) -> Vec<FieldError> {
    let Some(key) = seal else { return Vec::new() };
    s.providers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.api_key {
            Some(Credential::Sealed { sealed }) if key.open(&p.id, sealed).is_none() => Some(FieldError::new(
                format!("providers[{i}].api_key"),
                "this sealed value does not open with the control plane's SWITCHYARD_SEAL_KEY for this provider id",
            )),
            _ => None,
        })
        .collect()
}

/// Each spec's own validation, with paths under `list[i]`.
pub(super) fn spec_errors<S: Spec>(items: &[(String, S)], list: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, (_, spec)) in items.iter().enumerate() {
        if let Err(e) = spec.validate() {
            errors.extend(prefixed(e, &format!("{list}[{i}]")));
        }
    }
    errors
}

pub(super) fn provider_spec(p: &proto::Provider) -> ProviderSpec {
    ProviderSpec {
        kind: p.kind,
        base_url: p.base_url.clone(),
        api_version: p.api_version.clone(),
        timeout_ms: p.timeout_ms,
        stream_usage: p.stream_usage,
        health_check_ms: p.health_check_ms,
        headers: p.headers.clone(),
        settings: p.settings.clone(),
        credential: p.api_key.clone(),
    }
}

/// Providers, then routes, that are missing or differ.
pub(super) fn plan_puts(current: &Current, desired: &Desired) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, spec) in &desired.providers {
        let cur = current.providers.get(id);
        if cur != Some(spec) {
            changes.push(Change::PutProvider {
                id: id.clone(),
                spec: spec.clone(),
                create: cur.is_none(),
            });
        }
    }
    for (alias, spec) in &desired.routes {
        let cur = current.routes.get(alias);
        if cur != Some(spec) {
            changes.push(Change::PutRoute {
                alias: alias.clone(),
                spec: spec.clone(),
                create: cur.is_none(),
            });
        }
    }
    changes
}
