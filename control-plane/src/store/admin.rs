//! Reads the admin API makes from the projection tables: pages of resources, reference checks
//! and "still in use" counts.
//!
//! Every page is restricted to one team when the caller is team-scoped (`team`), ordered by the
//! table's key and asks for `limit` rows (callers ask for one more than they show, to learn that
//! there is a next page). Rows come back as domain values so the API builds each view in one
//! place.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proto::LogPayloads;
use serde::de::IntoDeserializer;
use serde::Deserialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::key::{Secret, VirtualKey};
use crate::domain::pricing::PriceSpec;
use crate::domain::resource::{Resource, Spec};
use crate::domain::team::Team;
use crate::domain::token::AdminToken;
use crate::usage::pricing::{spec_from_row, PRICE_COLUMNS};

/// A query parameter.
pub type Param<'a> = &'a (dyn ToSql + Sync);

/// The projection table of one kind of spec resource.
#[derive(Debug)]
pub struct SpecTable {
    /// Table name.
    pub table: &'static str,
    /// Key column, which is also the page order and cursor.
    pub key: &'static str,
    /// SQL type of the key (and so of the `after` cursor).
    pub key_type: &'static str,
}

/// `providers`, keyed by id.
pub const PROVIDERS: SpecTable = SpecTable {
    table: "providers",
    key: "id",
    key_type: "text",
};
/// `routes`, keyed by alias.
pub const ROUTES: SpecTable = SpecTable {
    table: "routes",
    key: "alias",
    key_type: "text",
};
/// `budgets`, keyed by UUID.
pub const BUDGETS: SpecTable = SpecTable {
    table: "budgets",
    key: "id",
    key_type: "uuid",
};

/// `cache_policies`, keyed by id.
pub const CACHE_POLICIES: SpecTable = SpecTable {
    table: "cache_policies",
    key: "id",
    key_type: "text",
};
/// `guardrails`, keyed by UUID.
pub const GUARDRAILS: SpecTable = SpecTable {
    table: "guardrails",
    key: "id",
    key_type: "uuid",
};

/// One price override row.
#[derive(Debug)]
pub struct PriceRow {
    pub model: String,
    pub spec: PriceSpec,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

/// A secret as a list shows it: only its prefix is read.
fn listed_secret(prefix: String) -> Secret {
    Secret {
        sha256: String::new(),
        prefix,
        valid_until: None,
    }
}

/// A limit column read back into the domain's unsigned type.
fn unsigned(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// A `log_payloads` column read back (NULL: not set). Its CHECK admits only the policies'
/// names, so anything else is a corrupt row.
pub fn log_payloads(v: Option<String>) -> Result<Option<LogPayloads>, StoreError> {
    let Some(name) = v else { return Ok(None) };
    let read: Result<LogPayloads, serde::de::value::Error> =
        LogPayloads::deserialize(name.as_str().into_deserializer());
    read.map(Some)
        .map_err(|e| StoreError::Corrupt(format!("log_payloads `{name}`: {e}")))
}

impl Store {
    async fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.query(sql, params).await?)
    }

    async fn count(&self, sql: &str, params: &[Param<'_>]) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.query_one(sql, params).await?.get(0))
    }

    /// A page of spec resources with their versions; `after` is of the table's key type.
    pub async fn spec_page<S: Spec>(
        &self,
        t: &SpecTable,
        team: Option<Uuid>,
        after: Param<'_>,
        limit: i64,
    ) -> Result<Vec<(Resource<S>, i32)>, StoreError> {
        let (table, key, key_type) = (t.table, t.key, t.key_type);
        let sql = format!(
            "SELECT {key}::text, team_id, spec, version, created_at, updated_at FROM {table}
             WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::{key_type} IS NULL OR {key} > $2) ORDER BY {key} LIMIT $3"
        );
        let rows = self.rows(&sql, &[&team, after, &limit]).await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let spec = serde_json::from_value(r.get(2))
                    .map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", S::KIND)))?;
                let resource = Resource {
                    id,
                    team_id: r.get(1),
                    spec,
                    created_at: r.get(4),
                    updated_at: r.get(5),
                    live: true,
                };
                Ok((resource, r.get(3)))
            })
            .collect()
    }

    /// A page of teams; a team-scoped caller sees only its own.
    pub async fn team_page(
        &self,
        team: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Team, i32)>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, name, spec, version, created_at, updated_at, rpm, tpm, log_payloads FROM teams
                 WHERE ($1::uuid IS NULL OR id = $1) AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                &[&team, &after, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let team = Team {
                    id: r.get(0),
                    name: r.get(1),
                    metadata: serde_json::from_value(r.get(2)).unwrap_or_default(),
                    rpm: unsigned(r.get(6)),
                    tpm: unsigned(r.get(7)),
                    log_payloads: log_payloads(r.get(8))?,
                    created_at: r.get(4),
                    updated_at: r.get(5),
                    live: true,
                };
                Ok((team, r.get(3)))
            })
            .collect()
    }

    /// A page of admin tokens, revoked ones included. Their hashes are not read.
    pub async fn token_page(
        &self,
        team: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AdminToken>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, name, team_id, prefix, created_at, revoked_at FROM admin_tokens
                 WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                &[&team, &after, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AdminToken {
                id: r.get(0),
                name: r.get(1),
                team_id: r.get(2),
                sha256: String::new(),
                prefix: r.get(3),
                created_at: r.get(4),
                revoked_at: r.get(5),
                live: true,
            })
            .collect())
    }

    /// A page of virtual keys with their versions, optionally of one team (`filter`) within the
    /// caller's scope. Secrets carry only their prefixes, newest-lasting first (the one without
    /// an end of validity leads); a revoked key has none.
    pub async fn key_page(
        &self,
        team: Option<Uuid>,
        filter: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(VirtualKey, i32)>, StoreError> {
        let rows = self
            .rows(
                "SELECT k.id, k.team_id, k.spec, k.revoked_at, k.version, k.created_at, k.updated_at,
                    COALESCE((SELECT array_agg(prefix ORDER BY valid_until NULLS LAST) FROM key_secrets s WHERE s.key_id = k.id), '{}')
                 FROM virtual_keys k
                 WHERE ($1::uuid IS NULL OR k.team_id = $1) AND ($2::uuid IS NULL OR k.team_id = $2) AND ($3::uuid IS NULL OR k.id > $3)
                 ORDER BY k.id LIMIT $4",
                &[&team, &filter, &after, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let prefixes: Vec<String> = r.get(7);
                let revoked_at: Option<DateTime<Utc>> = r.get(3);
                let key = VirtualKey {
                    id: r.get(0),
                    team_id: r.get(1),
                    settings: serde_json::from_value(r.get(2)).unwrap_or_default(),
                    secrets: prefixes.into_iter().map(listed_secret).collect(),
                    created_at: r.get(5),
                    updated_at: r.get(6),
                    revoked_at,
                    live: revoked_at.is_none(),
                };
                (key, r.get(4))
            })
            .collect())
    }

    /// Every price override, amounts as they were written (NUMERIC(20, 10) returns ten
    /// decimals).
    pub async fn price_overrides(&self) -> Result<Vec<PriceRow>, StoreError> {
        let rows = self
            .rows(
                &format!("SELECT model, version, updated_at, {PRICE_COLUMNS} FROM pricing"),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(PriceRow {
                    model: r.get(0),
                    spec: spec_from_row(r, 3)?,
                    version: r.get(1),
                    updated_at: r.get(2),
                })
            })
            .collect())
    }

    /// Whether a team exists.
    pub async fn team_exists(&self, team: Uuid) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt("SELECT 1 FROM teams WHERE id = $1", &[&team])
            .await?
            .is_some())
    }

    /// The owner team of a live key, if the key exists and is not revoked.
    pub async fn live_key_team(&self, key: Uuid) -> Result<Option<Uuid>, StoreError> {
        let rows = self
            .rows(
                "SELECT team_id FROM virtual_keys WHERE id = $1 AND revoked_at IS NULL",
                &[&key],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// The owner of a budget: `None` if there is no such budget, `Some(None)` if it is global.
    pub async fn budget_team(&self, budget: Uuid) -> Result<Option<Option<Uuid>>, StoreError> {
        let rows = self
            .rows("SELECT team_id FROM budgets WHERE id = $1", &[&budget])
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// The owner team of each of these keys of a spec table that exists.
    pub async fn owners(
        &self,
        t: &SpecTable,
        keys: &[String],
    ) -> Result<HashMap<String, Option<Uuid>>, StoreError> {
        let sql = format!(
            "SELECT {key}::text, team_id FROM {table} WHERE {key} = ANY($1)",
            key = t.key,
            table = t.table
        );
        let rows = self.rows(&sql, &[&keys]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The routes (alias, owner team) with a deployment on this provider, by alias.
    pub async fn routes_using(
        &self,
        provider: &str,
    ) -> Result<Vec<(String, Option<Uuid>)>, StoreError> {
        let deployment = serde_json::json!([{ "provider": provider }]);
        let rows = self
            .rows(
                "SELECT alias, team_id FROM routes WHERE spec->'deployments' @> $1::jsonb ORDER BY alias",
                &[&deployment],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// How many live keys spend from this budget.
    pub async fn keys_on_budget(&self, budget: Uuid) -> Result<i64, StoreError> {
        self.count(
            "SELECT count(*) FROM virtual_keys WHERE revoked_at IS NULL AND spec->>'budget_id' = $1",
            &[&budget.to_string()],
        )
        .await
    }

    /// How many live keys, providers, routes and budgets a team owns.
    pub async fn team_holdings(&self, team: Uuid) -> Result<i64, StoreError> {
        self.count(
            "SELECT (SELECT count(*) FROM virtual_keys WHERE team_id = $1 AND revoked_at IS NULL)
                  + (SELECT count(*) FROM providers WHERE team_id = $1) + (SELECT count(*) FROM routes WHERE team_id = $1)
                  + (SELECT count(*) FROM budgets WHERE team_id = $1)",
            &[&team],
        )
        .await
    }
}
