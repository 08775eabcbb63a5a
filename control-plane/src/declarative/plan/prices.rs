//! Price overrides: the file's prices, checked like the API's, and the overrides to set or
//! remove (a built-in price repeated without an override is none).

use std::collections::{HashMap, HashSet};

use super::{prefixed, Change, Current, Desired};
use crate::domain::pricing::{built_in, PriceSpec};
use crate::domain::resource::Spec;
use crate::domain::{Check, DomainError, FieldError};

/// The file's prices, checked like `PUT /admin/pricing/{model}`; a model listed twice is an
/// error.
pub(super) fn desired_prices(
    prices: &[proto::ModelPrice],
    errors: &mut Vec<FieldError>,
) -> Vec<(String, PriceSpec)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, p) in prices.iter().enumerate() {
        let at = format!("pricing[{i}]");
        let mut check = Check::new();
        if p.model.is_empty()
            || p.model.len() > 256
            || p.model.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            check.fail(
                &format!("{at}.model"),
                "must be 1-256 characters without whitespace",
            );
        }
        if !seen.insert(p.model.as_str()) {
            check.fail(
                &format!("{at}.model"),
                format!("duplicate model `{}`", p.model),
            );
        }
        if let Err(DomainError::Invalid(list)) = check.done() {
            errors.extend(list);
        }
        let spec = PriceSpec::of(p);
        if let Err(e) = spec.validate() {
            errors.extend(prefixed(e, &at));
        }
        out.push((p.model.clone(), spec));
    }
    out
}

/// Price overrides to set, except where the file repeats a built-in price that has no override
/// (files made from a published snapshot list the whole table), and overrides of models the
/// file does not list, to remove.
pub(super) fn plan_prices(current: &Current, desired: &Desired, changes: &mut Vec<Change>) {
    let built: HashMap<String, PriceSpec> = built_in().into_iter().collect();
    for (model, spec) in &desired.prices {
        let cur = current.prices.get(model);
        if cur.or_else(|| built.get(model)) != Some(spec) {
            changes.push(Change::SetPrice {
                model: model.clone(),
                spec: spec.clone(),
                create: cur.is_none(),
            });
        }
    }
    let listed: HashSet<&str> = desired.prices.iter().map(|(m, _)| m.as_str()).collect();
    changes.extend(
        current
            .prices
            .keys()
            .filter(|m| !listed.contains(m.as_str()))
            .map(|m| Change::RemovePrice { model: m.clone() }),
    );
}
