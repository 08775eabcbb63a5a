//! The event store: append with optimistic concurrency, projections in the same transaction.
//!
//! `execute` loads a stream, folds it, asks the aggregate to decide, appends the new events at
//! the expected version and writes the stream's new state into its projection table, all in one
//! transaction. Appends take a transaction-scoped advisory lock so event positions commit in
//! order: a snapshot built at position N contains every event up to N, which the outbox relay
//! depends on.

pub mod admin;
pub mod migrate;
pub mod project;
pub mod rebuild;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::sync::Notify;

use crate::domain::{Aggregate, Ctx, DomainError, EventName};
pub use project::Project;

/// Advisory lock key serialising appends (so positions commit in order).
const APPEND_LOCK: i64 = 0x5357_4954_4348_0001;
/// Channel on which committed appends are announced to every control-plane replica.
pub const NOTIFY_CHANNEL: &str = "switchyard_events";

/// Why a command could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the resource changed meanwhile: expected version {expected}, found {actual}")]
    VersionConflict { expected: i32, actual: i32 },
    #[error("{0}")]
    Unique(String),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("stored event could not be read: {0}")]
    Corrupt(String),
}

/// The result of a command.
#[derive(Debug)]
pub struct Executed<A> {
    pub state: A,
    /// The stream's version after the command.
    pub version: i32,
    /// Position of the last appended event (None if the command changed nothing).
    pub position: Option<i64>,
}

/// Handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    appended: Arc<Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Stream id of an aggregate instance, e.g. `team-0190...`.
pub fn stream_id<A: Aggregate>(id: &str) -> String {
    format!("{}-{id}", A::KIND)
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            appended: Arc::new(Notify::new()),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Woken after each local append that recorded events.
    pub fn appended(&self) -> Arc<Notify> {
        Arc::clone(&self.appended)
    }

    /// Loads and folds a stream: its state and version.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<(A, i32), StoreError> {
        if id.contains('\0') {
            // No stream can have such an id (PostgreSQL text cannot hold U+0000).
            return Ok((A::default(), 0));
        }
        let client = self.pool.get().await?;
        load_in(&client, &stream_id::<A>(id)).await
    }

    /// Runs one command on one stream. `expected` is the version the caller last saw
    /// (`If-Match`); `None` accepts whatever is current.
    pub async fn execute<A: Project>(
        &self,
        id: &str,
        expected: Option<i32>,
        actor: &str,
        command: A::Command,
    ) -> Result<Executed<A>, StoreError> {
        if id.contains('\0') {
            return Err(
                DomainError::invalid("id", "must not contain NUL characters (U+0000)").into(),
            );
        }
        let stream = stream_id::<A>(id);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
            .await?;
        let (mut state, version) = load_in::<A, _>(&tx, &stream).await?;
        if let Some(expected) = expected {
            if expected != version {
                return Err(StoreError::VersionConflict {
                    expected,
                    actual: version,
                });
            }
        }
        let now = Utc::now();
        let events = state.decide(command, &Ctx { now })?;
        if events.is_empty() {
            return Ok(Executed {
                state,
                version,
                position: None,
            });
        }
        let mut position = None;
        let mut v = version;
        for event in &events {
            state.evolve(event, now);
            v += 1;
            let payload =
                serde_json::to_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let team = Project::team(&state);
            let row = tx
                .query_one(
                    "INSERT INTO events (stream_id, version, event_type, payload, actor, team_id, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING position",
                    &[&stream, &v, &event.name(), &payload, &actor, &team, &now],
                )
                .await?;
            position = Some(row.get::<_, i64>(0));
        }
        state
            .project(&stream, v, &tx)
            .await
            .map_err(unique_violation)?;
        tx.execute(&format!("NOTIFY {NOTIFY_CHANNEL}"), &[]).await?;
        tx.commit().await.map_err(unique_violation)?;
        self.appended.notify_waiters();
        Ok(Executed {
            state,
            version: v,
            position,
        })
    }

    /// The position of the newest event, 0 if none.
    pub async fn head(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("SELECT COALESCE(MAX(position), 0) FROM events", &[])
            .await?
            .get(0))
    }
}

/// Loads a stream inside a transaction or on a plain connection.
pub async fn load_in<A: Aggregate, C: GenericClient>(
    client: &C,
    stream: &str,
) -> Result<(A, i32), StoreError> {
    let rows = client
        .query("SELECT version, payload, recorded_at FROM events WHERE stream_id = $1 ORDER BY version", &[&stream])
        .await?;
    let mut state = A::default();
    let mut version = 0;
    for row in rows {
        let payload: serde_json::Value = row.get(1);
        let at: DateTime<Utc> = row.get(2);
        let event: A::Event = serde_json::from_value(payload)
            .map_err(|e| StoreError::Corrupt(format!("{stream}: {e}")))?;
        state.evolve(&event, at);
        version = row.get(0);
    }
    Ok((state, version))
}

/// A unique-constraint violation from a projection is a conflict the client can act on.
fn unique_violation(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            let what = match db.constraint() {
                Some("teams_name_key") => "a team with this name already exists",
                Some("virtual_keys_live_name") => "this team already has a key with this name",
                Some("admin_tokens_sha256_key") => "this token already exists",
                _ => "a resource with this identity already exists",
            };
            return StoreError::Unique(what.to_owned());
        }
    }
    StoreError::Db(e)
}

/// The transaction projections write in.
pub type Tx<'a> = Transaction<'a>;

/// A read-only transaction that sees the projections as of one point of the log (repeatable
/// read), for reads that must agree with each other (a snapshot, a declarative plan).
pub async fn consistent_read(
    client: &mut deadpool_postgres::Object,
) -> Result<Tx<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}
