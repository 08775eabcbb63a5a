//! Routes: a public model alias and the deployments that serve it.

use serde::{Deserialize, Serialize};

use super::resource::{from_snapshot_errors, Resource, Spec};
use super::{Check, DomainError};

pub type Route = Resource<RouteSpec>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub deployments: Vec<proto::Deployment>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<proto::Strategy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<proto::RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<proto::RouteRule>,
}

impl RouteSpec {
    pub fn to_proto(&self, alias: &str) -> proto::Route {
        proto::Route {
            alias: alias.to_owned(),
            deployments: self.deployments.clone(),
            timeout_ms: self.timeout_ms,
            reserve_output_tokens: self.reserve_output_tokens,
            strategy: self.strategy,
            fallbacks: self.fallbacks.clone(),
            retry: self.retry.clone(),
            context_window: self.context_window,
            rules: self.rules.clone(),
        }
    }
}

impl Spec for RouteSpec {
    const KIND: &'static str = "route";
    const EVENTS: [&'static str; 3] = ["route.created", "route.updated", "route.deleted"];

    fn validate(&self) -> Result<(), DomainError> {
        // Provider references are checked by the caller against the providers that exist;
        // here: shape only. Validate as a snapshot with stand-in providers.
        let providers = self
            .deployments
            .iter()
            .map(|d| proto::Provider {
                id: d.provider.clone(),
                kind: proto::ProviderKind::Openai,
                base_url: None,
                api_key: None,
                api_version: None,
                timeout_ms: None,
                stream_usage: None,
                headers: Default::default(),
                settings: Default::default(),
                health_check_ms: None,
            })
            .collect::<Vec<_>>();
        let mut unique = providers;
        unique.sort_by(|a, b| a.id.cmp(&b.id));
        unique.dedup_by(|a, b| a.id == b.id);
        // Fallback aliases are checked by the caller against the routes that exist; stand-ins
        // here.
        let mut routes = vec![self.to_proto("r")];
        let targets = self.rules.iter().map(|r| &r.route);
        for f in self.fallbacks.iter().chain(targets) {
            if f != "r" && !routes.iter().any(|r| &r.alias == f) {
                routes.push(proto::Route {
                    fallbacks: Vec::new(),
                    retry: None,
                    rules: Vec::new(),
                    ..self.to_proto(f)
                });
            }
        }
        let snapshot = proto::Snapshot {
            providers: unique,
            routes,
            ..Default::default()
        };
        let errors: Vec<_> = snapshot
            .validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.path.starts_with("routes[0]"))
            .collect();
        let mut check = Check::new();
        for (i, d) in self.deployments.iter().enumerate() {
            if d.weight == Some(0) {
                check.fail(&format!("deployments[{i}].weight"), "must be at least 1");
            }
        }
        if !errors.is_empty() {
            return Err(from_snapshot_errors(errors, "routes[0]"));
        }
        check.done()
    }
}
