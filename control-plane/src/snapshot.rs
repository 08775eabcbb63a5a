//! Building the data-plane snapshot from the projections.
//!
//! Read in one repeatable-read transaction, so the snapshot is the state as of exactly one
//! position of the log, and that position is its version. Besides providers, routes and keys it
//! carries what admission needs: teams with limits or a request-log policy, every budget (the
//! data plane enforces hard ones through leases), and prices (the built-in table with the API's
//! overrides on top); and the deployments some proxy saw go down in the last few minutes.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;

use chrono::{DateTime, Utc};
use proto::Snapshot;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::budget::{self, BudgetSpec};
use crate::domain::cache_policy::CachePolicySpec;
use crate::domain::guardrail::GuardrailSpec;
use crate::domain::key::KeySettings;
use crate::domain::pricing::built_in;
use crate::domain::provider::ProviderSpec;
use crate::domain::route::RouteSpec;
use crate::store::admin::log_payloads;
use crate::store::{Store, StoreError};
use crate::usage::pricing::{spec_from_row, PRICE_COLUMNS};

type Transaction<'a> = deadpool_postgres::Transaction<'a>;

/// The snapshot of everything committed so far.
pub async fn build(store: &Store) -> Result<Snapshot, StoreError> {
    let mut client = store.pool().get().await?;
    let tx = crate::store::consistent_read(&mut client).await?;
    let version: i64 = tx
        .query_one("SELECT COALESCE(MAX(position), 0) FROM events", &[])
        .await?
        .get(0);

    let sql = "SELECT id, spec FROM providers ORDER BY id";
    let providers: Vec<proto::Provider> = specs::<String, ProviderSpec>(&tx, "provider", sql)
        .await?
        .into_iter()
        .map(|(id, spec)| spec.to_proto(&id))
        .collect();
    let known: HashSet<String> = providers.iter().map(|p| p.id.clone()).collect();

    let mut routes = Vec::new();
    let sql = "SELECT alias, spec FROM routes ORDER BY alias";
    for (alias, spec) in specs::<String, RouteSpec>(&tx, "route", sql).await? {
        let mut route = spec.to_proto(&alias);
        // The API refuses to delete a provider in use; this keeps a snapshot valid regardless.
        route.deployments.retain(|d| known.contains(&d.provider));
        if !route.deployments.is_empty() {
            routes.push(route);
        }
    }
    // A fallback to a route that is gone (or has no deployment left) is dropped, so the
    // snapshot stays valid whatever was deleted.
    let aliases: std::collections::HashSet<String> =
        routes.iter().map(|r| r.alias.clone()).collect();
    for route in &mut routes {
        route.fallbacks.retain(|f| aliases.contains(f));
        route.rules.retain(|r| aliases.contains(&r.route));
    }

    let now = Utc::now();
    let mut keys = Vec::new();
    let rows = tx
        .query(
            "SELECT k.id, k.team_id, k.spec, s.sha256, s.valid_until FROM key_secrets s
             JOIN virtual_keys k ON k.id = s.key_id
             WHERE k.revoked_at IS NULL AND (s.valid_until IS NULL OR s.valid_until > $1)
             ORDER BY s.sha256",
            &[&now],
        )
        .await?;
    for row in rows {
        let id: Uuid = row.get(0);
        let team: Uuid = row.get(1);
        let settings: KeySettings = read_spec("key", &id, row.get(2))?;
        let valid_until: Option<DateTime<Utc>> = row.get(4);
        let expires_at = match (settings.expires_at, valid_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        keys.push(proto::VirtualKey {
            name: settings.name.clone(),
            sha256: row.get(3),
            team: Some(team.to_string()),
            models: settings.models.clone(),
            id: Some(id.to_string()),
            expires_at: expires_at.map(|t| t.timestamp()),
            rpm: settings.rpm,
            tpm: settings.tpm,
            max_request_cost_usd: settings.max_request_cost_usd,
            budget: settings.budget_id.map(|b| b.to_string()),
            tags: settings
                .tags
                .clone()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            log_payloads: settings.log_payloads,
        });
    }
    let teams = teams(&tx).await?;
    let budgets = budgets(&tx).await?;
    let pricing = pricing(&tx).await?;
    let cache_policies = cache_policies(&tx).await?;
    let guardrails = guardrails(&tx).await?;
    let health = crate::health::recently_open_in(&*tx)
        .await
        .map_err(|e| StoreError::Corrupt(format!("provider_health: {e}")))?;
    tx.commit().await?;
    Ok(Snapshot {
        schema_version: proto::SCHEMA_VERSION,
        version: u64::try_from(version).unwrap_or(0),
        providers,
        routes,
        keys,
        teams,
        budgets,
        pricing,
        health,
        cache_policies,
        guardrails,
    })
}

/// Every cache policy, a team's own carrying its team.
async fn cache_policies(tx: &Transaction<'_>) -> Result<Vec<proto::CachePolicy>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, team_id, spec FROM cache_policies ORDER BY id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.get(0);
            let team: Option<Uuid> = row.get(1);
            let spec: CachePolicySpec = read_spec("cache policy", &id, row.get(2))?;
            Ok(spec.to_proto(&id, team.map(|t| t.to_string())))
        })
        .collect()
}

/// Teams that have a limit or a request-log policy of their own.
async fn teams(tx: &Transaction<'_>) -> Result<Vec<proto::TeamPolicy>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, rpm, tpm, log_payloads FROM teams
             WHERE rpm IS NOT NULL OR tpm IS NOT NULL OR log_payloads IS NOT NULL ORDER BY id",
            &[],
        )
        .await?;
    let limit = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    rows.iter()
        .map(|r| {
            Ok(proto::TeamPolicy {
                id: r.get::<_, Uuid>(0).to_string(),
                rpm: limit(r.get(1)),
                tpm: limit(r.get(2)),
                log_payloads: log_payloads(r.get(3))?,
            })
        })
        .collect()
}

async fn budgets(tx: &Transaction<'_>) -> Result<Vec<proto::Budget>, StoreError> {
    let sql = "SELECT id, spec FROM budgets ORDER BY id";
    let rows = specs::<Uuid, BudgetSpec>(tx, "budget", sql).await?;
    Ok(rows
        .into_iter()
        .map(|(id, spec)| budget_to_proto(id, spec))
        .collect())
}

/// The rows of `sql` (`SELECT <id>, spec ...`), each spec read back from its JSON.
async fn specs<Id, S>(
    tx: &Transaction<'_>,
    what: &str,
    sql: &str,
) -> Result<Vec<(Id, S)>, StoreError>
where
    Id: for<'r> tokio_postgres::types::FromSql<'r> + Display,
    S: DeserializeOwned,
{
    let rows = tx.query(sql, &[]).await?;
    rows.iter()
        .map(|row| {
            let id: Id = row.get(0);
            let spec = read_spec(what, &id, row.get(1))?;
            Ok((id, spec))
        })
        .collect()
}

/// A spec stored as JSON; one that does not read is a corrupt row (`what` and `id` name it).
fn read_spec<S: DeserializeOwned>(
    what: &str,
    id: &dyn Display,
    json: serde_json::Value,
) -> Result<S, StoreError> {
    serde_json::from_value(json).map_err(|e| StoreError::Corrupt(format!("{what} {id}: {e}")))
}

/// Every guardrail policy, in id order.
async fn guardrails(tx: &Transaction<'_>) -> Result<Vec<proto::GuardrailPolicy>, StoreError> {
    let sql = "SELECT id, spec FROM guardrails ORDER BY id";
    let rows = specs::<Uuid, GuardrailSpec>(tx, "guardrail", sql).await?;
    Ok(rows
        .into_iter()
        .map(|(id, spec)| spec.to_proto(&id.to_string()))
        .collect())
}

/// A stored budget in wire terms.
pub fn budget_to_proto(id: Uuid, spec: BudgetSpec) -> proto::Budget {
    proto::Budget {
        id: id.to_string(),
        name: spec.name,
        scope: scope_to_proto(spec.scope),
        target: spec.target,
        amount_usd: spec.amount_usd,
        period: period_to_proto(spec.period),
        hard: spec.hard,
    }
}

pub fn scope_to_proto(scope: budget::BudgetScope) -> proto::BudgetScope {
    match scope {
        budget::BudgetScope::Team => proto::BudgetScope::Team,
        budget::BudgetScope::Key => proto::BudgetScope::Key,
        budget::BudgetScope::Tag => proto::BudgetScope::Tag,
    }
}

pub fn period_to_proto(period: budget::BudgetPeriod) -> proto::BudgetPeriod {
    match period {
        budget::BudgetPeriod::Daily => proto::BudgetPeriod::Daily,
        budget::BudgetPeriod::Weekly => proto::BudgetPeriod::Weekly,
        budget::BudgetPeriod::Monthly => proto::BudgetPeriod::Monthly,
        budget::BudgetPeriod::Total => proto::BudgetPeriod::Total,
    }
}

/// The built-in price table with the overrides set through the API replacing its entries (or
/// adding models it lacks), sorted by model.
async fn pricing(tx: &Transaction<'_>) -> Result<Vec<proto::ModelPrice>, StoreError> {
    let mut prices: BTreeMap<String, proto::ModelPrice> = built_in()
        .into_iter()
        .map(|(model, p)| {
            let price = p.price(&model);
            (model, price)
        })
        .collect();
    for r in tx
        .query(&format!("SELECT model, {PRICE_COLUMNS} FROM pricing"), &[])
        .await?
    {
        let model: String = r.get(0);
        // Values as they were written (see spec_from_row).
        if let Some(spec) = spec_from_row(&r, 1) {
            prices.insert(model.clone(), spec.price(&model));
        }
    }
    Ok(prices.into_values().collect())
}
