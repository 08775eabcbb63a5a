//! Structural validation of a [`Snapshot`], shared by both planes.
//!
//! Pure checks only (uniqueness, references, formats). A snapshot that passes can be compiled
//! by a proxy without further surprises, except for environment-dependent facts such as a
//! credential variable being unset, which the proxy reports per request.

use std::collections::HashSet;
use std::fmt;

use crate::{KeyView, ProviderKind, Snapshot, VirtualKey, SCHEMA_VERSION};

/// One problem with a snapshot: where it is and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Field path, e.g. `routes[2].deployments[0].provider`.
    pub path: String,
    /// Human-readable reason.
    pub reason: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl Snapshot {
    /// Checks the snapshot and returns every problem found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut push = |path: String, reason: String| errors.push(ValidationError { path, reason });

        if self.schema_version > SCHEMA_VERSION {
            push(
                "schema_version".into(),
                format!(
                    "{} is newer than this build understands ({SCHEMA_VERSION})",
                    self.schema_version
                ),
            );
        }

        let mut provider_ids = HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = PathPrefix("providers", i);
            if !is_identifier(&p.id) {
                push(format!("{at}.id"), ident_reason(&p.id));
            } else if !provider_ids.insert(p.id.as_str()) {
                push(
                    format!("{at}.id"),
                    format!("duplicate provider id `{}`", p.id),
                );
            }
            match (&p.base_url, p.kind.default_base_url()) {
                (Some(url), _) if !is_http_url(url) => push(
                    format!("{at}.base_url"),
                    format!("`{url}` is not an http:// or https:// URL"),
                ),
                (None, None) if !p.kind.derives_base_url() => push(
                    format!("{at}.base_url"),
                    format!("required for kind `{}`", p.kind.as_str()),
                ),
                _ => {}
            }
            if p.kind == ProviderKind::AzureOpenai
                && p.api_version.as_deref().is_none_or(str::is_empty)
            {
                push(
                    format!("{at}.api_version"),
                    "required for kind `azure_openai`".into(),
                );
            }
            for name in p.kind.required_settings() {
                if p.settings.get(*name).is_none_or(|v| v.trim().is_empty()) {
                    push(
                        format!("{at}.settings.{name}"),
                        format!("required for kind `{}`", p.kind.as_str()),
                    );
                }
            }
            if p.health_check_ms.is_some_and(|ms| ms < 100) {
                push(
                    format!("{at}.health_check_ms"),
                    "must be at least 100".into(),
                );
            }
            if p.timeout_ms == Some(0) {
                push(format!("{at}.timeout_ms"), "must be greater than 0".into());
            }
            for name in p.headers.keys() {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    push(
                        format!("{at}.headers"),
                        format!("`{name}` is not a valid header name"),
                    );
                }
            }
        }

        let mut aliases = HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let at = PathPrefix("routes", i);
            if r.alias.is_empty() || r.alias.len() > 256 || r.alias.chars().any(char::is_whitespace)
            {
                push(
                    format!("{at}.alias"),
                    "must be 1-256 characters without whitespace".into(),
                );
            } else if !aliases.insert(r.alias.as_str()) {
                push(
                    format!("{at}.alias"),
                    format!("duplicate alias `{}`", r.alias),
                );
            }
            if r.deployments.is_empty() {
                push(
                    format!("{at}.deployments"),
                    "at least one deployment is required".into(),
                );
            }
            for (j, d) in r.deployments.iter().enumerate() {
                if !provider_ids.contains(d.provider.as_str()) {
                    push(
                        format!("{at}.deployments[{j}].provider"),
                        format!("unknown provider `{}`", d.provider),
                    );
                }
                if d.timeout_ms == Some(0) {
                    push(
                        format!("{at}.deployments[{j}].timeout_ms"),
                        "must be greater than 0".into(),
                    );
                }
                if d.model.is_empty() {
                    push(
                        format!("{at}.deployments[{j}].model"),
                        "must not be empty".into(),
                    );
                }
            }
            if r.timeout_ms == Some(0) {
                push(format!("{at}.timeout_ms"), "must be greater than 0".into());
            }
            for (j, f) in r.fallbacks.iter().enumerate() {
                if f == &r.alias {
                    push(
                        format!("{at}.fallbacks[{j}]"),
                        "a route cannot fall back to itself".into(),
                    );
                } else if !self.routes.iter().any(|o| &o.alias == f) {
                    push(
                        format!("{at}.fallbacks[{j}]"),
                        format!("unknown route `{f}`"),
                    );
                }
            }
            if let Some(retry) = &r.retry {
                if retry.max_attempts.is_some_and(|n| n == 0 || n > 10) {
                    push(format!("{at}.retry.max_attempts"), "must be 1-10".into());
                }
                if retry.retries.is_some_and(|n| n > 5) {
                    push(format!("{at}.retry.retries"), "must be 0-5".into());
                }
                if retry.deadline_ms == Some(0) {
                    push(
                        format!("{at}.retry.deadline_ms"),
                        "must be greater than 0".into(),
                    );
                }
            }
            for (j, rule) in r.rules.iter().enumerate() {
                let at = format!("{at}.rules[{j}]");
                if rule.route == r.alias {
                    push(
                        format!("{at}.route"),
                        "a rule cannot send a route to itself".into(),
                    );
                } else if !self.routes.iter().any(|o| o.alias == rule.route) {
                    push(
                        format!("{at}.route"),
                        format!("unknown route `{}`", rule.route),
                    );
                }
                if rule.team.is_none()
                    && rule.key.is_none()
                    && rule.tags.is_empty()
                    && rule.min_prompt_tokens.is_none()
                {
                    push(at, "needs at least one condition".into());
                }
            }
            if r.context_window == Some(0) {
                push(
                    format!("{at}.context_window"),
                    "must be greater than 0".into(),
                );
            }
        }

        errors.extend(
            VirtualKey::validate_all(&self.keys)
                .err()
                .unwrap_or_default(),
        );

        let mut policy_ids = HashSet::new();
        for (i, policy) in self.cache_policies.iter().enumerate() {
            let at = PathPrefix("cache_policies", i).to_string();
            if !is_identifier(&policy.id) {
                errors.push(ValidationError {
                    path: format!("{at}.id"),
                    reason: ident_reason(&policy.id),
                });
            } else if !policy_ids.insert(policy.id.as_str()) {
                errors.push(ValidationError {
                    path: format!("{at}.id"),
                    reason: format!("duplicate cache policy id `{}`", policy.id),
                });
            }
            errors.extend(policy.problems(&at));
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl VirtualKey {
    /// Checks a list of keys (a snapshot's, or one part of them) and returns every problem.
    pub fn validate_all(keys: &[VirtualKey]) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut push = |path: String, reason: String| errors.push(ValidationError { path, reason });
        let mut hashes = HashSet::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let at = PathPrefix("keys", i);
            key_fields(i, &k.name, k.models.iter().map(String::as_str), &mut push);
            if k.sha256.len() != 64
                || !k
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                push(
                    format!("{at}.sha256"),
                    "must be 64 lowercase hex characters".into(),
                );
            } else if !hashes.insert(k.sha256.as_str()) {
                push(format!("{at}.sha256"), "duplicate key hash".into());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl KeyView<'_> {
    /// Problems of the key's own fields, at `keys[index]` (a binary part's hash is 32 bytes by
    /// construction; whether it is unique and in the right part is the reader's to check).
    pub fn problems(&self, index: usize) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        key_fields(
            index,
            self.name,
            self.models.iter().copied(),
            &mut |path, reason| errors.push(ValidationError { path, reason }),
        );
        errors
    }
}

/// The checks of a key's name and models, wherever the key comes from.
fn key_fields<'m>(
    index: usize,
    name: &str,
    models: impl Iterator<Item = &'m str>,
    push: &mut impl FnMut(String, String),
) {
    let at = PathPrefix("keys", index);
    if name.is_empty() {
        push(format!("{at}.name"), "must not be empty".into());
    }
    for (j, m) in models.enumerate() {
        if m.is_empty() {
            push(format!("{at}.models[{j}]"), "must not be empty".into());
        }
    }
}

/// `keys[3]`-style path prefix, formatted only when an error is reported (validating 100,000
/// keys must not allocate a path per key).
#[derive(Clone, Copy)]
struct PathPrefix(&'static str, usize);

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn ident_reason(s: &str) -> String {
    format!("`{s}` must be 1-128 characters of letters, digits, `-`, `_` or `.`")
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Snapshot {
        match serde_yaml::from_str(yaml) {
            Ok(s) => s,
            Err(e) => panic!("fixture does not parse: {e}"),
        }
    }

    const GOOD: &str = r#"
providers:
  - id: openai
    kind: openai
    api_key: { env: OPENAI_API_KEY }
  - id: azure
    kind: azure_openai
    base_url: https://example.openai.azure.com
    api_version: "2024-10-21"
    api_key: { env: AZURE_KEY }
routes:
  - alias: gpt-4o-mini
    deployments: [{ provider: openai, model: gpt-4o-mini }]
keys:
  - name: demo
    sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
    models: ["*"]
"#;

    #[test]
    fn a_good_snapshot_validates() {
        let s = parse(GOOD);
        assert_eq!(s.schema_version, SCHEMA_VERSION);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let s = parse(
            r#"
providers:
  - { id: a, kind: openai_compatible }
  - { id: a, kind: azure_openai, base_url: "ftp://x" }
routes:
  - { alias: x, deployments: [{ provider: nope, model: m }] }
  - { alias: x, deployments: [] }
keys:
  - { name: k, sha256: ABC }
"#,
        );
        let errors = s.validate().err().unwrap_or_default();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "providers[0].base_url",
                "providers[1].id",
                "providers[1].base_url",
                "providers[1].api_version",
                "routes[0].deployments[0].provider",
                "routes[1].alias",
                "routes[1].deployments",
                "keys[0].sha256",
            ]
        );
    }

    #[test]
    fn json_shape_is_locked() {
        let s = parse(GOOD);
        let json = serde_json::to_value(&s).unwrap_or_default();
        let expected = serde_json::json!({
            "schema_version": 3,
            "version": 0,
            "providers": [
                {"id": "openai", "kind": "openai", "api_key": {"env": "OPENAI_API_KEY"}},
                {"id": "azure", "kind": "azure_openai", "base_url": "https://example.openai.azure.com",
                 "api_key": {"env": "AZURE_KEY"}, "api_version": "2024-10-21"}
            ],
            "routes": [{"alias": "gpt-4o-mini", "deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
            "keys": [{"name": "demo", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "models": ["*"]}]
        });
        assert_eq!(json, expected);
    }
}
