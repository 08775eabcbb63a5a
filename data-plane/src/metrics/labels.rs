//! Caps on label values a client can reach: a `provider/model` name (see `snapshot::direct`)
//! puts the model a caller typed into the route, model and deployment labels, so each of those
//! labels keeps at most [`MAX_VALUES`] distinct values per process and reports later newcomers
//! as [`OTHER`]. Values from configured routes arrive first in practice and stay themselves.

use std::collections::HashSet;
use std::sync::{LazyLock, PoisonError, RwLock};

/// Distinct values kept per capped label before newcomers become [`OTHER`].
pub const MAX_VALUES: usize = 1000;
/// The value reported for a label past its cap.
pub const OTHER: &str = "other";

/// Route aliases (`route` label).
pub static ROUTES: LazyLock<LabelCap> = LazyLock::new(LabelCap::default);
/// Upstream model names (`gen_ai_request_model` label).
pub static MODELS: LazyLock<LabelCap> = LazyLock::new(LabelCap::default);
/// `provider/model` deployment ids (`deployment` label).
pub static DEPLOYMENTS: LazyLock<LabelCap> = LazyLock::new(LabelCap::default);

/// One label's admitted values.
#[derive(Debug, Default)]
pub struct LabelCap {
    seen: RwLock<HashSet<String>>,
}

impl LabelCap {
    /// The value to export for `value`: itself while the cap has room or once admitted, else
    /// [`OTHER`]. The common case (a value seen before) takes only a read lock.
    pub fn label(&self, value: &str) -> String {
        let seen = self.seen.read().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_owned();
        }
        drop(seen);
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if seen.len() < MAX_VALUES || seen.contains(value) {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_cap_are_other() {
        let cap = LabelCap::default();
        for i in 0..MAX_VALUES {
            assert_eq!(cap.label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(cap.label("newcomer"), OTHER);
        assert_eq!(cap.label("m7"), "m7");
    }
}
