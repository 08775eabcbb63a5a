//! The lease service: the control plane's half of budgets and rate limits across proxies.
//!
//! Every replica answers [`proto::LEASE_SUBJECT`] in the queue group [`proto::LEASE_QUEUE`], so
//! each request is answered by one replica. Requests are handled concurrently, at most
//! [`CONCURRENCY`] at a time per replica. All pool state is in Postgres and every grant is made
//! under the pool row's lock (`SELECT ... FOR UPDATE`), so replicas never grant the same money
//! or the same requests twice. See `docs/ARCHITECTURE.md`, "Budgets without overspend".
//!
//! Guarantees: every request with a reply subject gets a [`LeaseReply`]; a request that cannot
//! be honoured gets zero with `error` set (`bad_request`, `unknown_budget`, `not_hard`,
//! `scope_mismatch`, `bad_period`, `period_ended`, `bad_window`, `window_ended`, or
//! `unavailable` when the database fails, which is worth retrying). Nothing a proxy sends can
//! stop the service.

pub mod budget;
pub mod grant;
pub mod rate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use proto::{LeaseReply, LeaseRequest, PoolKey, LEASE_QUEUE, LEASE_SUBJECT};
use rust_decimal::Decimal;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::Store;

/// Lease requests one replica works on at once (each holds a database connection).
pub const CONCURRENCY: usize = 8;
/// How often old windows and finished periods are deleted.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// Why nothing was granted, as the reply's `error` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("bad_request")]
    BadRequest,
    #[error("unknown_budget")]
    UnknownBudget,
    #[error("not_hard")]
    NotHard,
    #[error("scope_mismatch")]
    ScopeMismatch,
    #[error("bad_period")]
    BadPeriod,
    #[error("period_ended")]
    PeriodEnded,
    #[error("bad_window")]
    BadWindow,
    #[error("window_ended")]
    WindowEnded,
}

impl Refusal {
    /// The reply's `error` and the metric's `result` label.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownBudget => "unknown_budget",
            Self::NotHard => "not_hard",
            Self::ScopeMismatch => "scope_mismatch",
            Self::BadPeriod => "bad_period",
            Self::PeriodEnded => "period_ended",
            Self::BadWindow => "bad_window",
            Self::WindowEnded => "window_ended",
        }
    }
}

/// A request that got no grant: refused, or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl LeaseError {
    /// Code for the reply and the metric label (internals never reach the proxy).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(r) => r.code(),
            Self::Db(_) | Self::Pool(_) => "unavailable",
        }
    }
}

/// Answers one request (no I/O but the database). `now` is Unix seconds.
pub async fn answer(store: &Store, req: &LeaseRequest, now: i64) -> Result<LeaseReply, LeaseError> {
    if req.proxy.is_empty()
        || req.proxy.len() > 256
        || req.want < Decimal::ZERO
        || req.used < Decimal::ZERO
    {
        return Err(Refusal::BadRequest.into());
    }
    match &req.pool {
        PoolKey::Budget {
            budget_id,
            scope_value,
            period_start,
        } => {
            let pool = budget::Pool {
                budget_id,
                scope_value,
                period_start: *period_start,
            };
            budget::lease(store, req, pool, now).await
        }
        PoolKey::Rate {
            scope,
            unit,
            window_start,
            limit,
        } => {
            let pool = rate::Pool {
                scope,
                unit: *unit,
                window_start: *window_start,
                limit: *limit,
            };
            rate::lease(store, req, pool, now).await
        }
    }
}

/// The reply for a request that got nothing.
pub fn refusal(code: &str) -> LeaseReply {
    LeaseReply {
        granted: Decimal::ZERO,
        total_granted: Decimal::ZERO,
        remaining: Decimal::ZERO,
        limit: Decimal::ZERO,
        resets_at: 0,
        error: Some(code.to_owned()),
    }
}

/// Answers a raw message body: the reply, and the `kind` and `result` metric labels.
pub async fn handle(store: &Store, body: &[u8]) -> (LeaseReply, &'static str, &'static str) {
    let Ok(req) = serde_json::from_slice::<LeaseRequest>(body) else {
        return (
            refusal(Refusal::BadRequest.code()),
            "invalid",
            "bad_request",
        );
    };
    let kind = match req.pool {
        PoolKey::Budget { .. } => "budget",
        PoolKey::Rate { .. } => "rate",
    };
    let now = chrono::Utc::now().timestamp();
    match answer(store, &req, now).await {
        Ok(reply) => {
            let result = if req.release {
                "released"
            } else if reply.granted > Decimal::ZERO {
                "granted"
            } else {
                "exhausted"
            };
            (reply, kind, result)
        }
        Err(e) => {
            if matches!(e, LeaseError::Db(_) | LeaseError::Pool(_)) {
                tracing::warn!(error = %e, proxy = %req.proxy, "lease not granted");
            }
            (refusal(e.code()), kind, e.code())
        }
    }
}

/// Settings of the lease service.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub nats_url: String,
}

/// Serves lease requests and cleans up old pools until `cancel` fires; reconnects on failure.
pub async fn run(store: Store, config: LeaseConfig, cancel: CancellationToken) {
    tokio::join!(
        serve_forever(&store, &config, &cancel),
        cleanup_forever(&store, &cancel)
    );
}

async fn serve_forever(store: &Store, config: &LeaseConfig, cancel: &CancellationToken) {
    crate::background::reconnecting("lease service", cancel, || serve(store, config, cancel)).await;
}

/// One subscription: answers until cancelled, then lets the requests in hand finish.
async fn serve(
    store: &Store,
    config: &LeaseConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(crate::config::nats_servers(&config.nats_url))
        .await?;
    let mut requests = client
        .queue_subscribe(LEASE_SUBJECT, LEASE_QUEUE.to_owned())
        .await?;
    let _role = crate::roles::hold(crate::roles::Role::Leases);
    tracing::info!(subject = LEASE_SUBJECT, "lease service listening");
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let tasks = TaskTracker::new();
    let result = loop {
        let message = tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            m = requests.next() => m,
        };
        let Some(message) = message else {
            break Err(anyhow::anyhow!("lease subscription closed"));
        };
        let permit = tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            p = Arc::clone(&slots).acquire_owned() => p?,
        };
        let store = store.clone();
        let client = client.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let (reply, kind, result) = handle(&store, &message.payload).await;
            metrics::counter!("switchyard_lease_requests_total", "kind" => kind, "result" => result)
                .increment(1);
            metrics::histogram!("switchyard_lease_grant_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            if let Some(to) = message.reply {
                let body = serde_json::to_vec(&reply).unwrap_or_default();
                if let Err(e) = client.publish(to, body.into()).await {
                    tracing::warn!(error = %e, "lease reply not sent");
                }
            }
            drop(permit);
        });
    };
    let _ = requests.unsubscribe().await;
    tasks.close();
    tasks.wait().await;
    let _ = client.flush().await;
    result
}

async fn cleanup_forever(store: &Store, cancel: &CancellationToken) {
    crate::background::every(CLEANUP_EVERY, cancel, || async {
        if let Err(e) = cleanup(store).await {
            tracing::warn!(error = %e, "lease cleanup failed");
        }
    })
    .await;
}

/// Deletes rate windows nobody can ask about any more, pools of periods that ended over a day
/// ago, and pools of deleted budgets (their leases go with them). Returns rows deleted.
pub async fn cleanup(store: &Store) -> Result<u64, LeaseError> {
    let client = store.pool().get().await?;
    let windows = client
        .execute(
            "DELETE FROM rate_pools WHERE window_start < now() - make_interval(secs => $1)",
            &[&(rate::KEEP_WINDOWS_SECS as f64)],
        )
        .await?;
    let periods = client
        .execute(
            "DELETE FROM budget_pools p WHERE p.period_end < now() - interval '1 day'
             OR NOT EXISTS (SELECT 1 FROM budgets b WHERE b.id = p.budget_id)",
            &[],
        )
        .await?;
    Ok(windows + periods)
}
