//! Rebuilding every projection from the event log alone.

use chrono::{DateTime, Utc};

use super::{Project, StoreError, Tx, APPEND_LOCK};
use crate::domain::budget::Budget;
use crate::domain::cache_policy::CachePolicy;
use crate::domain::guardrail::Guardrail;
use crate::domain::key::VirtualKey;
use crate::domain::pricing::Price;
use crate::domain::provider::Provider;
use crate::domain::route::Route;
use crate::domain::team::Team;
use crate::domain::token::AdminToken;

/// Projection tables, in the order they are dumped and truncated.
pub const TABLES: &[(&str, &str)] = &[
    ("teams", "id"),
    ("virtual_keys", "id"),
    ("key_secrets", "sha256"),
    ("providers", "id"),
    ("routes", "alias"),
    ("budgets", "id"),
    ("cache_policies", "id"),
    ("guardrails", "id"),
    ("pricing", "model"),
    ("price_history", "position"),
    ("admin_tokens", "id"),
];

/// Truncates the projections and replays the whole log into them, in one transaction (appends
/// wait meanwhile). Returns the number of streams replayed.
pub async fn rebuild(store: &super::Store) -> Result<usize, StoreError> {
    // Truncating the projections takes their locks one table at a time, so a live control
    // plane reading two of them (the snapshot builder, the lease service) can deadlock with
    // it; Postgres then aborts one side. The rebuild is one transaction, so it simply runs
    // again.
    let mut attempt = 1;
    loop {
        match rebuild_once(store).await {
            Err(StoreError::Db(e))
                if attempt < 5
                    && e.code()
                        == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                tracing::warn!(
                    attempt,
                    "projection rebuild deadlocked with live readers; retrying"
                );
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            other => return other,
        }
    }
}

async fn rebuild_once(store: &super::Store) -> Result<usize, StoreError> {
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
        .await?;
    let names: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    tx.batch_execute(&format!("TRUNCATE {}", names.join(", ")))
        .await?;
    let rows = tx
        .query("SELECT stream_id, version, payload, recorded_at FROM events ORDER BY stream_id, version", &[])
        .await?;
    let mut streams = 0;
    let mut start = 0;
    while start < rows.len() {
        let stream: String = rows[start].get(0);
        let mut end = start;
        while end < rows.len() && rows[end].get::<_, String>(0) == stream {
            end += 1;
        }
        let events: Vec<(serde_json::Value, DateTime<Utc>, i32)> = rows[start..end]
            .iter()
            .map(|r| (r.get(2), r.get(3), r.get(1)))
            .collect();
        let kind = stream.split_once('-').map(|(k, _)| k).unwrap_or_default();
        match kind {
            "team" => replay::<Team>(&tx, &stream, &events).await?,
            "key" => replay::<VirtualKey>(&tx, &stream, &events).await?,
            "admin_token" => replay::<AdminToken>(&tx, &stream, &events).await?,
            "provider" => replay::<Provider>(&tx, &stream, &events).await?,
            "route" => replay::<Route>(&tx, &stream, &events).await?,
            "budget" => replay::<Budget>(&tx, &stream, &events).await?,
            "guardrail" => replay::<Guardrail>(&tx, &stream, &events).await?,
            "price" => replay::<Price>(&tx, &stream, &events).await?,
            "cache_policy" => replay::<CachePolicy>(&tx, &stream, &events).await?,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown stream kind `{other}` in {stream}"
                )))
            }
        }
        streams += 1;
        start = end;
    }
    tx.commit().await?;
    Ok(streams)
}

async fn replay<A: Project>(
    tx: &Tx<'_>,
    stream: &str,
    events: &[(serde_json::Value, DateTime<Utc>, i32)],
) -> Result<(), StoreError> {
    let mut state = A::default();
    let mut version = 0;
    for (payload, at, v) in events {
        let event: A::Event = serde_json::from_value(payload.clone())
            .map_err(|e| StoreError::Corrupt(format!("{stream}: {e}")))?;
        state.evolve(&event, *at);
        version = *v;
    }
    state.project(stream, version, tx).await?;
    Ok(())
}

/// Every projection table as JSON, rows in key order: two dumps are equal iff the
/// projections are.
pub async fn dump<C: tokio_postgres::GenericClient>(
    client: &C,
) -> Result<serde_json::Value, StoreError> {
    let mut out = serde_json::Map::new();
    for (table, key) in TABLES {
        let row = client
            .query_one(&format!("SELECT COALESCE(json_agg(t ORDER BY t.{key}), '[]'::json)::jsonb FROM {table} t"), &[])
            .await?;
        out.insert((*table).to_owned(), row.get(0));
    }
    Ok(serde_json::Value::Object(out))
}
