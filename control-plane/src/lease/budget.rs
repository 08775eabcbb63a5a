//! Budget pools: slices of a hard budget for one scope value and period, granted under the
//! pool row's lock.
//!
//! A pool's money is `amount − baseline − committed`, where `baseline` is what spend_ledger
//! already held for the scope and period when the pool was created, and `committed` sums each
//! lease's [`committed`](super::grant::committed) share. The amount is read from the budgets
//! projection at every grant, so raising or lowering a budget applies at once.
//!
//! A proxy that dies without releasing keeps its unreleased grant committed until the period
//! ends: the money it might have spent is never handed out again, so a budget can end a period
//! under-used but never overspent.

use chrono::{DateTime, NaiveDate, Utc};
use proto::{period_bounds, LeaseReply, LeaseRequest};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::grant::{budget_grant, committed};
use super::{LeaseError, Refusal};
use crate::domain::budget::{BudgetScope, BudgetSpec};
use crate::snapshot::period_to_proto;
use crate::store::Store;

/// How long after its end a period still takes requests (clock skew between proxies and the
/// control plane, requests in flight at midnight).
pub const PERIOD_GRACE_SECS: i64 = 300;

/// One budget pool, as a request names it.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    pub budget_id: &'a str,
    pub scope_value: &'a str,
    pub period_start: i64,
}

/// A lease row (absent: nothing granted yet).
#[derive(Debug, Clone, Copy, Default)]
struct Lease {
    granted: Decimal,
    used: Decimal,
    released: bool,
}

/// Grants (or takes back) money of one pool for `req`; `now` is Unix seconds.
pub async fn lease(
    store: &Store,
    req: &LeaseRequest,
    pool: Pool<'_>,
    now: i64,
) -> Result<LeaseReply, LeaseError> {
    let id: Uuid = pool.budget_id.parse().map_err(|_| Refusal::UnknownBudget)?;
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    let spec: BudgetSpec = match tx
        .query_opt("SELECT spec FROM budgets WHERE id = $1", &[&id])
        .await?
    {
        Some(row) => serde_json::from_value(row.get(0)).map_err(|_| Refusal::UnknownBudget)?,
        None => return Err(Refusal::UnknownBudget.into()),
    };
    if !spec.hard {
        return Err(Refusal::NotHard.into());
    }
    // A team or key budget has one pool per period; any other scope value would be a fresh,
    // full pool that nothing else spends from.
    if spec.scope != BudgetScope::Tag && pool.scope_value != spec.target {
        return Err(Refusal::ScopeMismatch.into());
    }
    let (start, end) = period_bounds(period_to_proto(spec.period), pool.period_start);
    if start != pool.period_start {
        return Err(Refusal::BadPeriod.into());
    }
    if end.is_some_and(|end| end + PERIOD_GRACE_SECS < now) {
        return Err(Refusal::PeriodEnded.into());
    }
    let start_at = DateTime::<Utc>::from_timestamp(start, 0).ok_or(Refusal::BadPeriod)?;
    let end_at = match end {
        Some(e) => Some(DateTime::<Utc>::from_timestamp(e, 0).ok_or(Refusal::BadPeriod)?),
        None => None,
    };

    let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &pool.scope_value, &start_at];
    const LOCK: &str = "SELECT baseline FROM budget_pools
                        WHERE budget_id = $1 AND scope_value = $2 AND period_start = $3 FOR UPDATE";
    let baseline: Decimal = match tx.query_opt(LOCK, &key).await? {
        Some(row) => row.get(0),
        None => {
            let base = baseline(&tx, &spec, pool.scope_value, start, end).await?;
            tx.execute(
                "INSERT INTO budget_pools (budget_id, scope_value, period_start, period_end, baseline)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&id, &pool.scope_value, &start_at, &end_at, &base],
            )
            .await?;
            // Another replica may have created it first: its baseline stands.
            tx.query_one(LOCK, &key).await?.get(0)
        }
    };
    let mine = tx
        .query_opt(
            "SELECT granted, used, released FROM budget_leases
             WHERE budget_id = $1 AND scope_value = $2 AND period_start = $3 AND proxy = $4",
            &[&id, &pool.scope_value, &start_at, &req.proxy],
        )
        .await?
        .map(|r| Lease {
            granted: r.get(0),
            used: r.get(1),
            released: r.get(2),
        })
        .unwrap_or_default();
    let others: Decimal = tx
        .query_one(
            "SELECT COALESCE(SUM(CASE WHEN released THEN used ELSE GREATEST(granted, used) END), 0)
             FROM budget_leases
             WHERE budget_id = $1 AND scope_value = $2 AND period_start = $3 AND proxy <> $4",
            &[&id, &pool.scope_value, &start_at, &req.proxy],
        )
        .await?
        .get(0);

    let amount = spec.amount_usd;
    let used = mine.used.max(req.used);
    let (next, granted) = if req.release {
        let next = Lease {
            granted: mine.granted,
            used,
            released: true,
        };
        (next, Decimal::ZERO)
    } else {
        // A released lease re-opens holding what it used; an open one what it holds.
        let base = committed(mine.granted, used, mine.released);
        let available = amount - baseline - others - base;
        let g = budget_grant(amount, req.want, available);
        let next = Lease {
            granted: base + g,
            used,
            released: false,
        };
        (next, g)
    };
    tx.execute(
        "INSERT INTO budget_leases (budget_id, scope_value, period_start, proxy, granted, used, released)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (budget_id, scope_value, period_start, proxy)
         DO UPDATE SET granted = $5, used = $6, released = $7, updated_at = now()",
        &[&id, &pool.scope_value, &start_at, &req.proxy, &next.granted, &next.used, &next.released],
    )
    .await?;
    tx.commit().await?;
    let remaining = amount - baseline - others - committed(next.granted, next.used, next.released);
    Ok(LeaseReply {
        granted,
        total_granted: next.granted,
        remaining: remaining.max(Decimal::ZERO),
        limit: amount,
        resets_at: end.unwrap_or(0),
        error: None,
    })
}

/// Spend already recorded in spend_ledger for this budget's scope value in the period
/// `[start, end)` (days are UTC; `start` 0 and no `end` for `total`).
async fn baseline(
    tx: &deadpool_postgres::Transaction<'_>,
    spec: &BudgetSpec,
    scope_value: &str,
    start: i64,
    end: Option<i64>,
) -> Result<Decimal, LeaseError> {
    let day = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0).map(|t| t.date_naive());
    let from: Option<NaiveDate> = if start > 0 { day(start) } else { None };
    let to: Option<NaiveDate> = end.and_then(day);
    // The all-tags row (tag = '') counts each event once per team or key; a tag budget sums
    // the rows of its own `name=value`.
    let (condition, value) = match spec.scope {
        BudgetScope::Team => ("team_id = $1 AND tag = ''", scope_value.to_owned()),
        BudgetScope::Key => ("key_id = $1 AND tag = ''", scope_value.to_owned()),
        BudgetScope::Tag => ("tag = $1", format!("{}={scope_value}", spec.target)),
    };
    let sql = format!(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM spend_ledger
         WHERE {condition} AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)"
    );
    Ok(tx.query_one(&sql, &[&value, &from, &to]).await?.get(0))
}
