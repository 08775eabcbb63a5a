//! Numbered plain-SQL migrations from `migrations/`, applied in order, each once.
//!
//! A migration's checksum is recorded; if a file that was applied has since been edited, the
//! control plane refuses to start rather than run against a schema it does not describe.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

/// Every migration, in order. Add new files at the end; never edit a landed one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_event_store.sql",
        include_str!("../../../migrations/0001_event_store.sql"),
    ),
    (
        2,
        "0002_metering.sql",
        include_str!("../../../migrations/0002_metering.sql"),
    ),
    (
        3,
        "0003_leases.sql",
        include_str!("../../../migrations/0003_leases.sql"),
    ),
    (
        4,
        "0004_health.sql",
        include_str!("../../../migrations/0004_health.sql"),
    ),
    (
        5,
        "0005_route_reason.sql",
        include_str!("../../../migrations/0005_route_reason.sql"),
    ),
    (
        6,
        "0006_cache_money.sql",
        include_str!("../../../migrations/0006_cache_money.sql"),
    ),
    (
        7,
        "0007_team_log_payloads.sql",
        include_str!("../../../migrations/0007_team_log_payloads.sql"),
    ),
    (
        8,
        "0008_request_log.sql",
        include_str!("../../../migrations/0008_request_log.sql"),
    ),
    (
        9,
        "0009_guardrails.sql",
        include_str!("../../../migrations/0009_guardrails.sql"),
    ),
    (
        10,
        "0010_cache.sql",
        include_str!("../../../migrations/0010_cache.sql"),
    ),
];

const MIGRATION_LOCK: i64 = 0x5357_4954_4348_0002;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migration {0} was edited after it was applied (checksum differs); add a new migration instead")]
    Edited(String),
}

/// Applies the pending migrations; returns how many ran.
pub async fn migrate(pool: &Pool) -> Result<usize, MigrateError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        let applied = tx
            .query_opt(
                "SELECT sha256 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?;
        match applied {
            Some(row) => {
                let recorded: String = row.get(0);
                if recorded != checksum {
                    return Err(MigrateError::Edited((*name).to_owned()));
                }
            }
            None => {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                    &[version, name, &checksum],
                )
                .await?;
                tracing::info!(migration = name, "applied");
                ran += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(ran)
}
