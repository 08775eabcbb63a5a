//! Guardrail policies on the wire: which kinds of personal data and secrets a proxy looks for
//! in the text a provider would see, and what it does with each.
//!
//! A policy applies to the keys, teams and routes it names; a request is checked against every
//! policy that applies to its key, its key's team or its route, and where two policies set an
//! action for the same class the stricter one wins ([`GuardAction::strictness`]). A request no
//! policy applies to is not looked at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The built-in detector classes, by wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardClass {
    Email,
    Phone,
    /// Card numbers that pass the Luhn check and start with a card network's prefix.
    CreditCard,
    /// IBANs whose mod-97 checksum holds.
    Iban,
    /// US Social Security numbers written `123-45-6789`.
    UsSsn,
    Ipv4,
    Ipv6,
    AwsAccessKey,
    GithubToken,
    GitlabToken,
    SlackToken,
    OpenaiKey,
    AnthropicKey,
    /// A PEM `-----BEGIN … PRIVATE KEY-----` block.
    PrivateKey,
    Jwt,
    /// A high-entropy value assigned to a name such as `password`, `secret`, `token` or
    /// `api_key`.
    SecretAssignment,
}

impl GuardClass {
    /// Every built-in class, in detection priority order (a span two classes claim goes to
    /// the one listed first).
    pub const ALL: [GuardClass; 16] = [
        GuardClass::PrivateKey,
        GuardClass::AnthropicKey,
        GuardClass::OpenaiKey,
        GuardClass::AwsAccessKey,
        GuardClass::GithubToken,
        GuardClass::GitlabToken,
        GuardClass::SlackToken,
        GuardClass::Jwt,
        GuardClass::SecretAssignment,
        GuardClass::Email,
        GuardClass::Iban,
        GuardClass::CreditCard,
        GuardClass::UsSsn,
        GuardClass::Ipv6,
        GuardClass::Ipv4,
        GuardClass::Phone,
    ];

    /// The wire name (`credit_card`).
    pub fn name(self) -> &'static str {
        match self {
            GuardClass::Email => "email",
            GuardClass::Phone => "phone",
            GuardClass::CreditCard => "credit_card",
            GuardClass::Iban => "iban",
            GuardClass::UsSsn => "us_ssn",
            GuardClass::Ipv4 => "ipv4",
            GuardClass::Ipv6 => "ipv6",
            GuardClass::AwsAccessKey => "aws_access_key",
            GuardClass::GithubToken => "github_token",
            GuardClass::GitlabToken => "gitlab_token",
            GuardClass::SlackToken => "slack_token",
            GuardClass::OpenaiKey => "openai_key",
            GuardClass::AnthropicKey => "anthropic_key",
            GuardClass::PrivateKey => "private_key",
            GuardClass::Jwt => "jwt",
            GuardClass::SecretAssignment => "secret_assignment",
        }
    }

    /// The class with wire name `name`.
    pub fn from_name(name: &str) -> Option<GuardClass> {
        GuardClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What a proxy does with a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Replaced by a typed placeholder (`[EMAIL_1]`).
    Redact,
    /// All but the last 4 characters replaced by `*`.
    Mask,
    /// The request is refused with a 400 naming the class (never the value).
    Block,
    /// Replaced by a placeholder, which is put back in the answer (streamed answers too).
    Reversible,
}

impl GuardAction {
    /// Higher is stricter: block, then redact, then reversible (the provider sees the
    /// placeholder, the client the value), then mask (the provider sees the last 4).
    pub fn strictness(self) -> u8 {
        match self {
            GuardAction::Mask => 0,
            GuardAction::Reversible => 1,
            GuardAction::Redact => 2,
            GuardAction::Block => 3,
        }
    }

    /// The wire name, also the metric label.
    pub fn name(self) -> &'static str {
        match self {
            GuardAction::Redact => "redact",
            GuardAction::Mask => "mask",
            GuardAction::Block => "block",
            GuardAction::Reversible => "reversible",
        }
    }
}

/// Whom a policy applies to; empty lists name no one. Keys by key id, teams by team id,
/// routes by alias.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardScope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// A pattern of the policy's own, a class of its own name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomPattern {
    /// Class name: lowercase letters, digits and `_` (the placeholder is its upper case).
    pub name: String,
    /// A Rust `regex` pattern.
    pub regex: String,
    pub action: GuardAction,
}

/// One guardrail policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailPolicy {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub applies_to: GuardScope,
    /// The action of every built-in class the policy does not list in `classes`; `None`:
    /// only the listed classes are looked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<GuardAction>,
    /// Action per built-in class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub classes: BTreeMap<GuardClass, GuardAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<CustomPattern>,
    /// Also look at the answers: detected values are redacted (or masked) before the client
    /// gets them.
    #[serde(default)]
    pub output: bool,
}

impl GuardrailPolicy {
    /// The action this policy takes on `class`, if it looks for it.
    pub fn action(&self, class: GuardClass) -> Option<GuardAction> {
        self.classes.get(&class).copied().or(self.default_action)
    }
}

/// A custom class name: 1-32 lowercase letters, digits or `_`, not a built-in name.
pub fn valid_custom_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && GuardClass::from_name(name).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_with_defaults_and_names_round_trip() {
        let p: GuardrailPolicy = serde_json::from_str(
            r#"{"id":"g1","applies_to":{"keys":["k"]},"default_action":"redact","classes":{"aws_access_key":"block"}}"#,
        )
        .unwrap();
        assert_eq!(p.action(GuardClass::Email), Some(GuardAction::Redact));
        assert_eq!(p.action(GuardClass::AwsAccessKey), Some(GuardAction::Block));
        assert!(!p.output && p.custom.is_empty());
        for c in GuardClass::ALL {
            assert_eq!(GuardClass::from_name(c.name()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
        assert!(valid_custom_name("employee_id") && !valid_custom_name("email"));
    }
}
