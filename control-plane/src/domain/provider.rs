//! Providers: where requests go and with which credential. The credential is write-only: it
//! is stored and published sealed (or as an environment-variable reference), never returned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resource::{from_snapshot_errors, Resource, Spec};
use super::DomainError;

pub type Provider = Resource<ProviderSpec>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSpec {
    pub kind: proto::ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub stream_usage: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_ms: Option<u64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Kind-specific settings, e.g. Vertex `project` and `location`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Sealed value or environment reference; never plaintext.
    #[serde(default)]
    pub credential: Option<proto::Credential>,
}

impl Default for ProviderSpec {
    fn default() -> Self {
        Self {
            kind: proto::ProviderKind::OpenaiCompatible,
            base_url: None,
            api_version: None,
            timeout_ms: None,
            stream_usage: None,
            health_check_ms: None,
            headers: BTreeMap::new(),
            settings: BTreeMap::new(),
            credential: None,
        }
    }
}

impl ProviderSpec {
    /// The snapshot entry for this provider.
    pub fn to_proto(&self, id: &str) -> proto::Provider {
        proto::Provider {
            id: id.to_owned(),
            kind: self.kind,
            base_url: self.base_url.clone(),
            api_key: self.credential.clone(),
            api_version: self.api_version.clone(),
            timeout_ms: self.timeout_ms,
            stream_usage: self.stream_usage,
            health_check_ms: self.health_check_ms,
            headers: self.headers.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl Spec for ProviderSpec {
    const KIND: &'static str = "provider";
    const EVENTS: [&'static str; 3] = ["provider.created", "provider.updated", "provider.deleted"];

    fn validate(&self) -> Result<(), DomainError> {
        let snapshot = proto::Snapshot {
            providers: vec![self.to_proto("p")],
            ..Default::default()
        };
        let mut errors = snapshot.validate().err().unwrap_or_default();
        for (k, v) in &self.settings {
            if k.is_empty() || k.len() > 64 || v.len() > 1024 {
                errors.push(proto::ValidationError {
                    path: format!("providers[0].settings.{k}"),
                    reason: "names are 1-64 characters, values at most 1024".into(),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(from_snapshot_errors(errors, "providers[0]"))
        }
    }
}
