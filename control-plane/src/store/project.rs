//! Projections: each stream's current state as a row, written in the append transaction.

use std::future::Future;
use std::pin::Pin;

use proto::LogPayloads;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::Tx;
use crate::domain::budget::BudgetSpec;
use crate::domain::cache_policy::CachePolicySpec;
use crate::domain::guardrail::GuardrailSpec;
use crate::domain::key::VirtualKey;
use crate::domain::pricing::PriceSpec;
use crate::domain::provider::ProviderSpec;
use crate::domain::resource::Resource;
use crate::domain::route::RouteSpec;
use crate::domain::team::Team;
use crate::domain::token::AdminToken;
use crate::domain::Aggregate;

type DbResult = Result<(), tokio_postgres::Error>;
type Fut<'a> = Pin<Box<dyn Future<Output = DbResult> + Send + 'a>>;
type Param<'a> = &'a (dyn ToSql + Sync);

/// An aggregate whose state is projected into a table.
pub trait Project: Aggregate {
    /// The team the stream belongs to (recorded on its events for audit isolation).
    fn team(&self) -> Option<Uuid>;
    /// Writes (or removes) this stream's row; `version` is the stream version.
    fn project<'a>(&'a self, stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a>;
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A limit as a BIGINT (the domain caps limits far below `i64::MAX`).
fn bigint(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The row of a resource that can be deleted: written by the `upsert` statement with its
/// parameters while the resource is live, else removed by the `delete` statement with its key.
async fn upsert_or_delete(
    tx: &Tx<'_>,
    live: bool,
    (upsert, row): (&str, &[Param<'_>]),
    (delete, key): (&str, Param<'_>),
) -> DbResult {
    if live {
        tx.execute(upsert, row).await?;
    } else {
        tx.execute(delete, &[key]).await?;
    }
    Ok(())
}

impl Project for Team {
    fn team(&self) -> Option<Uuid> {
        Some(self.id)
    }

    fn project<'a>(&'a self, _stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
        Box::pin(async move {
            upsert_or_delete(
                tx,
                self.live,
                (
                    "INSERT INTO teams (id, name, spec, version, created_at, updated_at, rpm, tpm, log_payloads)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (id) DO UPDATE SET name = $2, spec = $3, version = $4, updated_at = $6, rpm = $7, tpm = $8,
                         log_payloads = $9",
                    &[&self.id, &self.name, &json(&self.metadata), &version, &self.created_at, &self.updated_at,
                      &self.rpm.map(bigint), &self.tpm.map(bigint), &self.log_payloads.map(LogPayloads::as_str)],
                ),
                ("DELETE FROM teams WHERE id = $1", &self.id),
            )
            .await
        })
    }
}

impl Project for VirtualKey {
    fn team(&self) -> Option<Uuid> {
        Some(self.team_id)
    }

    fn project<'a>(&'a self, _stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
        Box::pin(async move {
            tx.execute(
                "INSERT INTO virtual_keys (id, team_id, name, spec, revoked_at, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET name = $3, spec = $4, revoked_at = $5, version = $6, updated_at = $8",
                &[
                    &self.id,
                    &self.team_id,
                    &self.settings.name,
                    &json(&self.settings),
                    &self.revoked_at,
                    &version,
                    &self.created_at,
                    &self.updated_at,
                ],
            )
            .await?;
            tx.execute("DELETE FROM key_secrets WHERE key_id = $1", &[&self.id])
                .await?;
            if self.live {
                for s in &self.secrets {
                    tx.execute(
                        "INSERT INTO key_secrets (sha256, key_id, prefix, valid_until) VALUES ($1, $2, $3, $4)",
                        &[&s.sha256, &self.id, &s.prefix, &s.valid_until],
                    )
                    .await?;
                }
            }
            Ok(())
        })
    }
}

impl Project for AdminToken {
    fn team(&self) -> Option<Uuid> {
        self.team_id
    }

    fn project<'a>(&'a self, _stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
        Box::pin(async move {
            tx.execute(
                "INSERT INTO admin_tokens (id, team_id, name, sha256, prefix, revoked_at, version, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET revoked_at = $6, version = $7",
                &[&self.id, &self.team_id, &self.name, &self.sha256, &self.prefix, &self.revoked_at, &version, &self.created_at],
            )
            .await?;
            Ok(())
        })
    }
}

/// Spec resources share one shape: a row keyed by id with the spec as JSON.
macro_rules! project_spec {
    ($spec:ty, $delete:literal, $upsert:literal) => {
        impl Project for Resource<$spec> {
            fn team(&self) -> Option<Uuid> {
                self.team_id
            }

            fn project<'a>(&'a self, _stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
                Box::pin(async move {
                    let spec = json(&self.spec);
                    let row: [Param<'_>; 6] = [
                        &self.id,
                        &self.team_id,
                        &spec,
                        &version,
                        &self.created_at,
                        &self.updated_at,
                    ];
                    upsert_or_delete(tx, self.live, ($upsert, &row), ($delete, &self.id)).await
                })
            }
        }
    };
}

project_spec!(
    ProviderSpec,
    "DELETE FROM providers WHERE id = $1",
    "INSERT INTO providers (id, team_id, spec, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO UPDATE SET team_id = $2, spec = $3, version = $4, updated_at = $6"
);
project_spec!(
    CachePolicySpec,
    "DELETE FROM cache_policies WHERE id = $1",
    "INSERT INTO cache_policies (id, team_id, spec, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO UPDATE SET team_id = $2, spec = $3, version = $4, updated_at = $6"
);
project_spec!(
    RouteSpec,
    "DELETE FROM routes WHERE alias = $1",
    "INSERT INTO routes (alias, team_id, spec, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (alias) DO UPDATE SET team_id = $2, spec = $3, version = $4, updated_at = $6"
);

impl Project for Resource<BudgetSpec> {
    fn team(&self) -> Option<Uuid> {
        self.team_id
    }

    fn project<'a>(&'a self, _stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
        Box::pin(async move {
            let id: Uuid = self.id.parse().unwrap_or_default();
            let spec = json(&self.spec);
            let row: [Param<'_>; 8] = [
                &id,
                &self.team_id,
                &self.spec.name,
                &self.spec.amount_usd,
                &spec,
                &version,
                &self.created_at,
                &self.updated_at,
            ];
            let upsert = "INSERT INTO budgets (id, team_id, name, amount_usd, spec, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET name = $3, amount_usd = $4, spec = $5, version = $6, updated_at = $8";
            let delete = "DELETE FROM budgets WHERE id = $1";
            upsert_or_delete(tx, self.live, (upsert, &row), (delete, &id)).await
        })
    }
}

impl Project for Resource<GuardrailSpec> {
    fn team(&self) -> Option<Uuid> {
        self.team_id
    }

    fn project<'a>(&'a self, _stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
        Box::pin(async move {
            let id: Uuid = self.id.parse().unwrap_or_default();
            let spec = json(&self.spec);
            let row: [Param<'_>; 6] = [
                &id,
                &self.team_id,
                &spec,
                &version,
                &self.created_at,
                &self.updated_at,
            ];
            let upsert = "INSERT INTO guardrails (id, team_id, spec, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET team_id = $2, spec = $3, version = $4, updated_at = $6";
            let delete = "DELETE FROM guardrails WHERE id = $1";
            upsert_or_delete(tx, self.live, (upsert, &row), (delete, &id)).await
        })
    }
}

impl Project for Resource<PriceSpec> {
    fn team(&self) -> Option<Uuid> {
        None
    }

    fn project<'a>(&'a self, stream: &'a str, version: i32, tx: &'a Tx<'a>) -> Fut<'a> {
        Box::pin(async move {
            // Every price the model ever had, so usage is costed at the price of its time.
            let model = stream.strip_prefix("price-").unwrap_or(&self.id);
            crate::usage::pricing::project_history(&**tx, stream, model).await?;
            let s = &self.spec;
            let row: [Param<'_>; 8] = [
                &self.id,
                &s.input_per_mtok,
                &s.output_per_mtok,
                &s.cached_input_per_mtok,
                &s.cache_write_5m_per_mtok,
                &s.cache_write_1h_per_mtok,
                &version,
                &self.updated_at,
            ];
            let upsert = "INSERT INTO pricing (model, input_per_mtok, output_per_mtok, cached_input_per_mtok,
                     cache_write_5m_per_mtok, cache_write_1h_per_mtok, version, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (model) DO UPDATE SET input_per_mtok = $2, output_per_mtok = $3,
                     cached_input_per_mtok = $4, cache_write_5m_per_mtok = $5,
                     cache_write_1h_per_mtok = $6, version = $7, updated_at = $8";
            let delete = "DELETE FROM pricing WHERE model = $1";
            upsert_or_delete(tx, self.live, (upsert, &row), (delete, &self.id)).await
        })
    }
}
