//! Guardrails: personal data and secrets found in what a provider would see, and redacted,
//! masked, refused or swapped for placeholders that are put back in the answer.
//!
//! - [`detect`]: the patterns (built-in classes and the policies' own), compiled once per
//!   snapshot into one `Regex` each, run only where `scope` finds that a class's value can be
//!   (around a literal, or in a run of digits long enough); [`check`] the validators (Luhn,
//!   mod-97, number plans, address parsing, entropy).
//! - [`Guards`] (this file): the snapshot's policies compiled, indexed by key id, team and
//!   route; [`Guards::effective`] merges those that apply to a request into one
//!   [`Effective`] (per class, the strictest action).
//! - [`redact`]: a request body, in its own dialect, rewritten (stage 6 of the pipeline); the
//!   texts looked at are the system prompt, messages, tool calls' arguments, tool results and
//!   Responses input items, wherever they sit in the body (`body` walks the body's bytes
//!   once and writes replacements in place; `strings` decodes its string literals).
//! - [`restore`]: the answer, whole or streamed, with reversible placeholders put back (and,
//!   with output checks, values redacted), a placeholder split across stream events included.
//!
//! A request no policy applies to costs one map lookup per scope; a request a policy applies to
//! but whose body has nothing to find costs one pass over its bytes and a few scans of its
//! texts (no regex runs on ordinary text).

mod body;
pub mod check;
pub mod detect;
pub mod redact;
pub mod restore;
mod scope;
mod strings;

use std::collections::HashMap;
use std::sync::Arc;

use proto::{GuardAction, GuardClass, GuardrailPolicy, ValidationError};

pub use detect::{Detector, Kind};
pub use redact::{Outcome, Session};

/// Number of built-in classes.
const BUILTINS: usize = GuardClass::ALL.len();

fn slot(class: GuardClass) -> usize {
    GuardClass::ALL
        .iter()
        .position(|c| *c == class)
        .unwrap_or_default()
}

/// One policy, compiled.
#[derive(Debug)]
struct Policy {
    actions: [Option<GuardAction>; BUILTINS],
    /// (custom pattern index in the detector, action).
    custom: Vec<(usize, GuardAction)>,
    output: bool,
}

/// The snapshot's guardrail policies, ready for lookups.
#[derive(Debug, Default)]
pub struct Guards {
    /// `None` when the snapshot has no policy (nothing is compiled).
    detector: Option<Arc<Detector>>,
    policies: Vec<Policy>,
    by_key: HashMap<String, Vec<usize>>,
    by_team: HashMap<String, Vec<usize>>,
    by_route: HashMap<String, Vec<usize>>,
    /// What they were compiled from (a snapshot with the same policies reuses them).
    pub source: Vec<GuardrailPolicy>,
}

/// What applies to one request: the merged action per class and whether answers are checked.
#[derive(Debug, Clone)]
pub struct Effective {
    pub detector: Arc<Detector>,
    actions: [Option<GuardAction>; BUILTINS],
    custom: Vec<(usize, GuardAction)>,
    pub output: bool,
}

impl Effective {
    /// The action on values of `kind`, if the request's policies look for it.
    pub fn action(&self, kind: Kind) -> Option<GuardAction> {
        match kind {
            Kind::Builtin(c) => self.actions[slot(c)],
            Kind::Custom(i) => self
                .custom
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, action)| *action),
        }
    }

    /// The class name of `kind` (metric label, placeholder, block message).
    pub fn name(&self, kind: Kind) -> &str {
        match kind {
            Kind::Builtin(c) => c.name(),
            Kind::Custom(i) => self
                .detector
                .custom_names
                .get(i)
                .map_or("custom", String::as_str),
        }
    }
}

impl Guards {
    /// Compiles `policies`; a custom pattern that does not compile invalidates the snapshot.
    pub fn compile(policies: Vec<GuardrailPolicy>) -> Result<Self, Vec<ValidationError>> {
        if policies.is_empty() {
            return Ok(Self::default());
        }
        let mut custom = Vec::new();
        let mut compiled = Vec::with_capacity(policies.len());
        let mut guards = Self::default();
        for (i, p) in policies.iter().enumerate() {
            let mut actions = [None; BUILTINS];
            for class in GuardClass::ALL {
                actions[slot(class)] = p.action(class);
            }
            let mut own = Vec::new();
            for c in &p.custom {
                own.push((custom.len(), c.action));
                custom.push((c.name.clone(), c.regex.clone()));
            }
            compiled.push(Policy {
                actions,
                custom: own,
                output: p.output,
            });
            let scope = &p.applies_to;
            for (map, names) in [
                (&mut guards.by_key, &scope.keys),
                (&mut guards.by_team, &scope.teams),
                (&mut guards.by_route, &scope.routes),
            ] {
                for name in names {
                    map.entry(name.clone()).or_default().push(i);
                }
            }
        }
        let detector = Detector::new(&custom).map_err(|e| {
            vec![ValidationError {
                path: "guardrails".into(),
                reason: e.to_string(),
            }]
        })?;
        guards.detector = Some(Arc::new(detector));
        guards.policies = compiled;
        guards.source = policies;
        Ok(guards)
    }

    /// Whether the snapshot has any policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies that apply to a request of key `key_id` of `team` on `route`, merged;
    /// `None` if none applies.
    pub fn effective(
        &self,
        key_id: Option<&str>,
        team: Option<&str>,
        route: &str,
    ) -> Option<Effective> {
        let detector = self.detector.as_ref()?;
        let mut ids: Vec<usize> = Vec::new();
        let lookups = [
            key_id.and_then(|k| self.by_key.get(k)),
            team.and_then(|t| self.by_team.get(t)),
            self.by_route.get(route),
        ];
        for list in lookups.into_iter().flatten() {
            ids.extend(list);
        }
        if ids.is_empty() {
            return None;
        }
        let mut e = Effective {
            detector: Arc::clone(detector),
            actions: [None; BUILTINS],
            custom: Vec::new(),
            output: false,
        };
        for p in ids.iter().filter_map(|&i| self.policies.get(i)) {
            for (mine, theirs) in e.actions.iter_mut().zip(p.actions) {
                *mine = stricter(*mine, theirs);
            }
            for &(i, action) in &p.custom {
                if !e.custom.iter().any(|(j, _)| *j == i) {
                    e.custom.push((i, action));
                }
            }
            e.output |= p.output;
        }
        Some(e)
    }
}

fn stricter(a: Option<GuardAction>, b: Option<GuardAction>) -> Option<GuardAction> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.strictness() > a.strictness() {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> GuardrailPolicy {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn policies_of_key_team_and_route_merge_to_the_strictest_action() {
        let g = Guards::compile(vec![
            policy("{id: a, applies_to: {keys: [k1]}, classes: {email: mask, phone: redact}}"),
            policy("{id: b, applies_to: {teams: [t1]}, classes: {email: block}, output: true}"),
            policy("{id: c, applies_to: {routes: [chat]}, default_action: reversible, custom: [{name: emp, regex: 'EMP-\\d+', action: redact}]}"),
        ])
        .unwrap();
        assert!(g.effective(Some("k9"), Some("t9"), "other").is_none());
        let e = g.effective(Some("k1"), Some("t1"), "chat").unwrap();
        let email = Kind::Builtin(GuardClass::Email);
        assert_eq!(e.action(email), Some(GuardAction::Block));
        assert_eq!(
            e.action(Kind::Builtin(GuardClass::Phone)),
            Some(GuardAction::Redact)
        );
        assert_eq!(
            e.action(Kind::Builtin(GuardClass::Jwt)),
            Some(GuardAction::Reversible)
        );
        assert_eq!(e.action(Kind::Custom(0)), Some(GuardAction::Redact));
        assert_eq!(e.name(Kind::Custom(0)), "emp");
        assert!(e.output);
        let k = g.effective(Some("k1"), None, "x").unwrap();
        assert_eq!(k.action(email), Some(GuardAction::Mask));
        assert_eq!(k.action(Kind::Builtin(GuardClass::Jwt)), None);
        assert!(!k.output);
        assert!(Guards::compile(vec![policy(
            "{id: d, custom: [{name: bad, regex: '(', action: redact}]}"
        )])
        .is_err());
    }
}
