//! Guardrail policies: which personal data and secrets the proxies look for in what a
//! provider would see, for which keys, teams and routes, and what they do with each class.

use std::collections::{BTreeMap, BTreeSet};

use proto::{CustomPattern, GuardAction, GuardClass, GuardScope};
use serde::{Deserialize, Serialize};

use super::resource::{Resource, Spec};
use super::{Check, DomainError};

pub type Guardrail = Resource<GuardrailSpec>;

/// Most targets one policy may name, and most custom patterns it may carry.
const MAX_TARGETS: usize = 1_000;
const MAX_CUSTOM: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailSpec {
    pub name: String,
    /// Key ids, team ids and route aliases the policy applies to.
    #[serde(default)]
    pub applies_to: GuardScope,
    /// The action of every built-in class not listed in `classes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<GuardAction>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub classes: BTreeMap<GuardClass, GuardAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<CustomPattern>,
    /// Also check answers.
    #[serde(default)]
    pub output: bool,
}

impl GuardrailSpec {
    /// The policy on the wire.
    pub fn to_proto(&self, id: &str) -> proto::GuardrailPolicy {
        proto::GuardrailPolicy {
            id: id.to_owned(),
            name: self.name.clone(),
            applies_to: self.applies_to.clone(),
            default_action: self.default_action,
            classes: self.classes.clone(),
            custom: self.custom.clone(),
            output: self.output,
        }
    }
}

impl Spec for GuardrailSpec {
    const KIND: &'static str = "guardrail";
    const EVENTS: [&'static str; 3] = [
        "guardrail.created",
        "guardrail.updated",
        "guardrail.deleted",
    ];

    fn validate(&self) -> Result<(), DomainError> {
        let mut check = Check::new();
        check.name("name", &self.name);
        let scope = &self.applies_to;
        let targets = scope.keys.len() + scope.teams.len() + scope.routes.len();
        if targets == 0 {
            check.fail("applies_to", "must name at least one key, team or route");
        }
        if targets > MAX_TARGETS {
            check.fail(
                "applies_to",
                "must name at most 1000 keys, teams and routes",
            );
        }
        if self.default_action.is_none() && self.classes.is_empty() && self.custom.is_empty() {
            check.fail(
                "classes",
                "the policy looks for nothing: set default_action, classes or custom",
            );
        }
        if self.custom.len() > MAX_CUSTOM {
            check.fail("custom", "at most 32 patterns");
        }
        let mut names = BTreeSet::new();
        for (i, c) in self.custom.iter().enumerate() {
            if !proto::valid_custom_name(&c.name) {
                check.fail(
                    &format!("custom[{i}].name"),
                    "1-32 lowercase letters, digits or `_`, not a built-in class name",
                );
            }
            if !names.insert(c.name.as_str()) {
                check.fail(&format!("custom[{i}].name"), "names must be unique");
            }
            if c.regex.is_empty() || c.regex.len() > 1_000 {
                check.fail(&format!("custom[{i}].regex"), "must be 1-1000 characters");
            } else if let Err(e) = regex::bytes::RegexBuilder::new(&c.regex)
                .size_limit(1 << 22)
                .build()
            {
                let first = e.to_string().lines().last().unwrap_or_default().to_owned();
                check.fail(
                    &format!("custom[{i}].regex"),
                    format!("does not compile: {first}"),
                );
            }
        }
        check.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> GuardrailSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_policy_must_apply_to_someone_look_for_something_and_compile() {
        let ok = spec(
            r#"{"name":"pii","applies_to":{"teams":["t"]},"default_action":"redact","custom":[{"name":"emp","regex":"EMP-\\d+","action":"block"}]}"#,
        );
        assert!(ok.validate().is_ok());
        for bad in [
            r#"{"name":"x","default_action":"redact"}"#,
            r#"{"name":"x","applies_to":{"keys":["k"]}}"#,
            r#"{"name":"x","applies_to":{"keys":["k"]},"custom":[{"name":"emp","regex":"(","action":"redact"}]}"#,
            r#"{"name":"x","applies_to":{"keys":["k"]},"custom":[{"name":"email","regex":"a","action":"redact"}]}"#,
        ] {
            assert!(spec(bad).validate().is_err(), "{bad}");
        }
    }
}
