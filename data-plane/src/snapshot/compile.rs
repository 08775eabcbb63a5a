//! Compiling a [`proto::Snapshot`] into lookup-ready form.
//!
//! Key hashes become maps from the 32-byte digest, split into the same parts the control plane
//! publishes ([`KeyTable`]), so a new snapshot shares every unchanged part with the one it
//! replaces; aliases become a map to routes whose deployments hold ready-built adapters and
//! URLs. A request does lookups only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proto::{ModelPrice, Snapshot, ValidationError};

use super::direct::{Direct, ProviderEntry};
use super::keys::{KeyPart, KeyPolicy, KeyTable};
use super::Context;
use crate::providers::{Adapter, Deployment};
use crate::routing::select::Candidate;

/// A snapshot ready to serve.
#[derive(Debug)]
pub struct CompiledSnapshot {
    pub version: u64,
    keys: KeyTable,
    routes: HashMap<String, Arc<Route>>,
    /// Aliases in name order, for `/v1/models`.
    aliases: Vec<String>,
    /// Team-wide limits by team id.
    pub teams: HashMap<String, proto::TeamPolicy>,
    /// Every budget (hard and soft).
    pub budgets: Vec<Arc<proto::Budget>>,
    /// Response-cache policies, in snapshot order (`crate::cache::policy` picks one).
    pub cache_policies: Vec<proto::CachePolicy>,
    /// What the routes were compiled from.
    sources: RouteSources,
    /// `provider/model` names served without a route (see [`super::direct`]).
    direct: Direct,
    /// Guardrail policies, compiled (shared with the next snapshot while they do not change).
    pub guards: Arc<crate::guard::Guards>,
}

/// What a snapshot's routes were compiled from, so that the next snapshot reuses every route
/// whose definition, providers and prices did not change (with its adapters, and their caches
/// such as an OAuth token) instead of building it again.
#[derive(Debug, Default)]
struct RouteSources {
    providers: Vec<proto::Provider>,
    pricing: Vec<ModelPrice>,
    specs: HashMap<String, proto::Route>,
}

/// A public alias and its deployments.
#[derive(Debug)]
pub struct Route {
    pub alias: String,
    pub deployments: Vec<Deployment>,
    pub timeout: Option<Duration>,
    /// Completion tokens reserved when a request sets no `max_tokens`.
    pub reserve_output_tokens: Option<u64>,
    /// How a deployment is picked within the best available priority tier.
    pub strategy: proto::Strategy,
    /// Aliases tried in order once this route's deployments are exhausted.
    pub fallbacks: Vec<String>,
    /// Attempts, retries, deadline and triggers, with defaults filled in.
    pub retry: crate::routing::attempts::Policy,
    /// Largest prompt (tokens) the route's models accept, if known.
    pub context_window: Option<u64>,
    /// Rules that send matching requests to another route (see `pipeline::apply_rules`).
    pub rules: Vec<proto::RouteRule>,
}

impl Route {
    /// The route's first deployment (what a request gets when nothing else is known).
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments.first()
    }

    /// The deployment for the next attempt, skipping those `ruled_out` and those whose breaker
    /// is open; `None` when none is left.
    pub fn pick(
        &self,
        ruled_out: impl Fn(usize) -> bool,
        now: std::time::Instant,
        rng: &mut crate::routing::rng::Rng,
    ) -> Option<(usize, crate::routing::select::Reason)> {
        let candidates: Vec<Candidate<'_>> = self
            .deployments
            .iter()
            .map(|d| Candidate {
                weight: d.weight,
                priority: d.priority,
                price: d
                    .price
                    .as_ref()
                    .map(|p| p.input_per_mtok + p.output_per_mtok),
                stats: &d.stats,
            })
            .collect();
        crate::routing::select::pick(self.strategy, &candidates, ruled_out, now, rng)
    }
}

impl CompiledSnapshot {
    /// What the request log keeps of `key`'s requests: its own setting, else its team's, else
    /// metadata.
    pub fn log_payloads(&self, key: &KeyPolicy) -> proto::LogPayloads {
        let team = key.team.as_ref().and_then(|t| self.teams.get(t));
        proto::LogPayloads::effective(key.log_payloads, team.and_then(|t| t.log_payloads))
    }

    /// The key whose SHA-256 digest is `digest`.
    pub fn key(&self, digest: &[u8; 32]) -> Option<&Arc<KeyPolicy>> {
        self.keys.get(digest)
    }

    /// The route for a public alias.
    pub fn route(&self, alias: &str) -> Option<&Arc<Route>> {
        self.routes.get(alias)
    }

    /// Number of virtual keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The keys, to share their parts with the next snapshot.
    pub fn key_table(&self) -> &KeyTable {
        &self.keys
    }

    /// All aliases in name order.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The route serving `name` as `provider/model` when no alias is `name` (see
    /// [`super::direct`]). Route choice itself stays in `pipeline::route`.
    pub fn direct_route(&self, name: &str) -> Option<Arc<Route>> {
        self.direct.route(name)
    }

    /// Whether `name` reads as `provider/model` of a configured provider.
    pub fn addresses_directly(&self, name: &str) -> bool {
        self.direct.addresses(name)
    }

    /// The `provider/model` names `/v1/models` offers besides the aliases, in name order.
    pub fn direct_names(&self) -> &[String] {
        self.direct.listed()
    }

    /// The configured provider `id`'s adapter.
    pub fn provider(&self, id: &str) -> Option<&Arc<Adapter>> {
        self.direct.provider(id).map(|p| &p.adapter)
    }
}

/// Validates and compiles a snapshot with its keys inline; `seal_key` opens sealed provider
/// credentials. Takes the snapshot by value so key names and teams move into the lookup table
/// instead of being copied (a 100,000-key snapshot compiles in tens of milliseconds).
pub fn compile(
    mut snapshot: Snapshot,
    ctx: &Context,
) -> Result<CompiledSnapshot, Vec<ValidationError>> {
    snapshot.validate()?;
    let keys = KeyTable::single(KeyPart::build(std::mem::take(&mut snapshot.keys)));
    compile_validated(snapshot, ctx, keys, None)
}

/// Validates and compiles a snapshot body whose keys arrived as parts, already compiled, reusing
/// the unchanged routes of `previous` (the snapshot it replaces).
pub fn compile_with_keys(
    snapshot: Snapshot,
    ctx: &Context,
    keys: KeyTable,
    previous: Option<&CompiledSnapshot>,
) -> Result<CompiledSnapshot, Vec<ValidationError>> {
    if !snapshot.keys.is_empty() {
        return Err(vec![ValidationError {
            path: "keys".into(),
            reason: "a body whose keys travel as parts must carry none itself".into(),
        }]);
    }
    snapshot.validate()?;
    compile_validated(snapshot, ctx, keys, previous)
}

fn compile_validated(
    mut snapshot: Snapshot,
    ctx: &Context,
    keys: KeyTable,
    previous: Option<&CompiledSnapshot>,
) -> Result<CompiledSnapshot, Vec<ValidationError>> {
    ctx.health
        .apply_reported(&std::mem::take(&mut snapshot.health));
    let policies = std::mem::take(&mut snapshot.guardrails);
    let guards = match previous.filter(|p| p.guards.source == policies) {
        Some(p) => Arc::clone(&p.guards),
        None => Arc::new(crate::guard::Guards::compile(policies)?),
    };
    let reusable = previous.filter(|p| {
        p.sources.providers == snapshot.providers && p.sources.pricing == snapshot.pricing
    });
    let providers: HashMap<String, ProviderEntry> = snapshot
        .providers
        .iter()
        .map(|p| {
            let entry = ProviderEntry {
                adapter: Arc::new(Adapter::new(p, ctx.seal_key.as_ref())),
                kind: p.kind,
                health_check: p.health_check_ms.map(Duration::from_millis),
            };
            (p.id.clone(), entry)
        })
        .collect();
    let prices: HashMap<String, Arc<ModelPrice>> = snapshot
        .pricing
        .iter()
        .map(|p| (p.model.clone(), Arc::new(p.clone())))
        .collect();
    let mut routes = HashMap::with_capacity(snapshot.routes.len());
    for (i, r) in snapshot.routes.iter().enumerate() {
        let same = reusable.and_then(|p| {
            p.sources
                .specs
                .get(&r.alias)
                .filter(|spec| *spec == r)
                .and(p.routes.get(&r.alias))
        });
        if let Some(route) = same {
            routes.insert(r.alias.clone(), Arc::clone(route));
            continue;
        }
        let mut deployments = Vec::with_capacity(r.deployments.len());
        for (j, d) in r.deployments.iter().enumerate() {
            // Validation guarantees the provider exists.
            let Some(ProviderEntry {
                adapter,
                health_check,
                ..
            }) = providers.get(d.provider.as_str())
            else {
                continue;
            };
            let invalid = |reason: String| {
                vec![ValidationError {
                    path: format!("routes[{i}].deployments[{j}]"),
                    reason,
                }]
            };
            let model_json =
                serde_json::value::to_raw_value(&d.model).map_err(|e| invalid(e.to_string()))?;
            let id = format!("{}/{}", d.provider, d.model);
            deployments.push(Deployment {
                stats: ctx.health.stats_for(&id),
                timeout: d.timeout_ms.map(Duration::from_millis),
                health_check: *health_check,
                weight: d.weight.unwrap_or(1),
                priority: d.priority.unwrap_or(0),
                id,
                provider: Arc::clone(adapter),
                endpoints: adapter
                    .endpoints(&d.model)
                    .map_err(|e| invalid(e.to_string()))?,
                model: d.model.clone(),
                model_json,
                rpm: d.rpm,
                tpm: d.tpm,
                price: prices.get(d.model.as_str()).cloned(),
            });
        }
        let route = Route {
            alias: r.alias.clone(),
            deployments,
            timeout: r.timeout_ms.map(Duration::from_millis),
            reserve_output_tokens: r.reserve_output_tokens,
            strategy: r.strategy.unwrap_or_default(),
            fallbacks: r.fallbacks.clone(),
            retry: crate::routing::attempts::Policy::from(r.retry.as_ref()),
            context_window: r.context_window,
            rules: r.rules.clone(),
        };
        routes.insert(r.alias.clone(), Arc::new(route));
    }

    let mut aliases: Vec<String> = routes.keys().cloned().collect();
    aliases.sort_unstable();
    let deployed: Vec<(String, String)> = snapshot
        .routes
        .iter()
        .flat_map(|r| r.deployments.iter())
        .map(|d| (d.provider.clone(), d.model.clone()))
        .collect();
    let direct = Direct::new(
        providers,
        prices,
        Arc::clone(&ctx.health),
        &deployed,
        &aliases,
    );
    let sources = RouteSources {
        specs: snapshot
            .routes
            .into_iter()
            .map(|r| (r.alias.clone(), r))
            .collect(),
        providers: snapshot.providers,
        pricing: snapshot.pricing,
    };
    Ok(CompiledSnapshot {
        version: snapshot.version,
        sources,
        keys,
        routes,
        aliases,
        direct,
        teams: snapshot
            .teams
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect(),
        budgets: snapshot.budgets.into_iter().map(Arc::new).collect(),
        cache_policies: snapshot.cache_policies,
        guards,
    })
}

#[cfg(test)]
mod tests {
    use super::super::keys::*;
    use super::*;

    #[test]
    fn key_model_patterns() {
        let s: Snapshot = serde_yaml::from_str(
            r#"
providers: [{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}]
routes:
  - {alias: gpt-4o, deployments: [{provider: p, model: m}]}
  - {alias: gpt-4o-mini, deployments: [{provider: p, model: m}]}
  - {alias: embed, deployments: [{provider: p, model: e}]}
keys:
  - {name: all, sha256: "0000000000000000000000000000000000000000000000000000000000000001", models: ["*"]}
  - {name: some, sha256: "0000000000000000000000000000000000000000000000000000000000000002", models: ["gpt-*", "embed"]}
  - {name: none, sha256: "0000000000000000000000000000000000000000000000000000000000000003"}
"#,
        )
        .unwrap_or_default();
        let c =
            compile(s, &crate::snapshot::Context::default()).unwrap_or_else(|e| panic!("{e:?}"));
        let key = |n: u8| {
            let mut d = [0u8; 32];
            d[31] = n;
            c.key(&d).cloned()
        };
        let (all, some, none) = (key(1), key(2), key(3));
        assert!(all.is_some_and(|k| k.allows("anything")));
        let some = some.unwrap_or_else(|| panic!("key 2 missing"));
        assert!(
            some.allows("gpt-4o-mini")
                && some.allows("embed")
                && !some.allows("embedding")
                && !some.allows("claude")
        );
        assert!(none.is_some_and(|k| !k.allows("gpt-4o")));
        assert_eq!(c.aliases(), ["embed", "gpt-4o", "gpt-4o-mini"]);
        assert_eq!(
            c.route("gpt-4o")
                .and_then(|r| r.primary())
                .map(|d| d.id.as_str()),
            Some("p/m")
        );
    }

    #[test]
    fn unchanged_routes_are_reused_and_a_provider_change_rebuilds_them() {
        let parse = |yaml: &str| -> Snapshot { serde_yaml::from_str(yaml).unwrap() };
        let v1 = parse(
            r#"
providers: [{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}]
routes:
  - {alias: a, deployments: [{provider: p, model: m}]}
  - {alias: b, deployments: [{provider: p, model: m}]}
"#,
        );
        let keys = || KeyTable::single(KeyPart::default());
        let first = compile_with_keys(
            v1.clone(),
            &crate::snapshot::Context::default(),
            keys(),
            None,
        )
        .unwrap();
        let mut v2 = v1.clone();
        v2.routes[1].deployments[0].model = "m2".into();
        let second = compile_with_keys(
            v2.clone(),
            &crate::snapshot::Context::default(),
            keys(),
            Some(&first),
        )
        .unwrap();
        let same = |x: &CompiledSnapshot, y: &CompiledSnapshot, alias: &str| {
            Arc::ptr_eq(x.route(alias).unwrap(), y.route(alias).unwrap())
        };
        assert!(same(&first, &second, "a"), "route a did not change");
        assert!(!same(&first, &second, "b"), "route b changed");
        assert_eq!(second.route("b").unwrap().primary().unwrap().model, "m2");

        let mut v3 = v2.clone();
        v3.providers[0].base_url = Some("http://127.0.0.1:2/v1".into());
        let third = compile_with_keys(
            v3,
            &crate::snapshot::Context::default(),
            keys(),
            Some(&second),
        )
        .unwrap();
        assert!(!same(&second, &third, "a"), "the provider changed");
    }
}
