//! Price overrides: the file's prices, checked like the API's, and the overrides to set or
//! remove (a built-in price repeated without an override is none).

use std::collections::{HashMap, HashSet};

use super::{prefixed, unique_items, Change, Current, Desired};
use crate::domain::pricing::{built_in, PriceSpec};
use crate::domain::resource::Spec;
use crate::domain::{Check, FieldError};

/// The file's prices, checked like `PUT /admin/pricing/{model}`; a model listed twice is an
/// error.
pub(super) fn desired_prices(
    prices: &[proto::ModelPrice],
    errors: &mut Vec<FieldError>,
) -> Vec<(String, PriceSpec)> {
    let keys = ["pricing", "model", "model"];
    let spec = |check: &mut Check, at: &str, p: &proto::ModelPrice| {
        let spec = PriceSpec::of(p);
        if let Err(e) = spec.validate() {
            check.extend(prefixed(e, at));
        }
        spec
    };
    unique_items(prices, keys, |p| &p.model, Check::model, spec, errors)
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
