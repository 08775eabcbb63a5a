//! Building the data-plane snapshot from the projections.
//!
//! Read in one repeatable-read transaction, so the snapshot is the state as of exactly one
//! position of the log, and that position is its version.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use proto::Snapshot;
use uuid::Uuid;

use crate::domain::key::KeySettings;
use crate::domain::provider::ProviderSpec;
use crate::domain::route::RouteSpec;
use crate::store::{Store, StoreError};

/// The snapshot of everything committed so far.
pub async fn build(store: &Store) -> Result<Snapshot, StoreError> {
    let mut client = store.pool().get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let version: i64 = tx
        .query_one("SELECT COALESCE(MAX(position), 0) FROM events", &[])
        .await?
        .get(0);

    let mut providers = Vec::new();
    for row in tx
        .query("SELECT id, spec FROM providers ORDER BY id", &[])
        .await?
    {
        let id: String = row.get(0);
        let spec: ProviderSpec = serde_json::from_value(row.get(1))
            .map_err(|e| StoreError::Corrupt(format!("provider {id}: {e}")))?;
        providers.push(spec.to_proto(&id));
    }
    let known: HashSet<String> = providers.iter().map(|p| p.id.clone()).collect();

    let mut routes = Vec::new();
    for row in tx
        .query("SELECT alias, spec FROM routes ORDER BY alias", &[])
        .await?
    {
        let alias: String = row.get(0);
        let spec: RouteSpec = serde_json::from_value(row.get(1))
            .map_err(|e| StoreError::Corrupt(format!("route {alias}: {e}")))?;
        let mut route = spec.to_proto(&alias);
        // The API refuses to delete a provider in use; this keeps a snapshot valid regardless.
        route.deployments.retain(|d| known.contains(&d.provider));
        if !route.deployments.is_empty() {
            routes.push(route);
        }
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
        let settings: KeySettings = serde_json::from_value(row.get(2))
            .map_err(|e| StoreError::Corrupt(format!("key {id}: {e}")))?;
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
            max_request_cost_usd: None,
            budget: settings.budget_id.map(|b| b.to_string()),
            tags: settings
                .tags
                .clone()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        });
    }
    tx.commit().await?;
    Ok(Snapshot {
        schema_version: proto::SCHEMA_VERSION,
        version: u64::try_from(version).unwrap_or(0),
        providers,
        routes,
        keys,
        teams: Vec::new(),
        budgets: Vec::new(),
        pricing: Vec::new(),
    })
}
