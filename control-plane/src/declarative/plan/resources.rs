//! Providers and routes: their specs from the file, sealed credentials that must open, and the
//! puts that make the store's match.

use std::collections::BTreeMap;

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
    let providers = puts(
        &current.providers,
        &desired.providers,
        |id, spec, create| Change::PutProvider { id, spec, create },
    );
    let routes = puts(&current.routes, &desired.routes, |alias, spec, create| {
        Change::PutRoute {
            alias,
            spec,
            create,
        }
    });
    providers.chain(routes).collect()
}

/// A put for each desired spec that is missing from `current` (`create`) or differs from it.
fn puts<'a, S: Clone + PartialEq>(
    current: &'a BTreeMap<String, S>,
    desired: &'a [(String, S)],
    put: impl Fn(String, S, bool) -> Change + 'a,
) -> impl Iterator<Item = Change> + 'a {
    desired.iter().filter_map(move |(id, spec)| {
        let cur = current.get(id);
        (cur != Some(spec)).then(|| put(id.clone(), spec.clone(), cur.is_none()))
    })
}
