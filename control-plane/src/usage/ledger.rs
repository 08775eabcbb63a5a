//! The spend ledger: events aggregated in memory into day × team × key × model × provider ×
//! tag rows, then added to `spend_ledger` with one multi-row upsert.
//!
//! Every event goes to its `tag = ''` row, and each of its tags `k=v` also to a row of its
//! own; a query reads either the untagged rows or the tagged ones, never both, so nothing is
//! counted twice (see migrations/0002_metering.sql).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate};
use proto::{Outcome, TokenUsage, UsageEvent};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::types::ToSql;

/// One ledger row's identity. Text dimensions are `''` for none.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LedgerKey {
    pub day: NaiveDate,
    pub team_id: String,
    pub key_id: String,
    pub model: String,
    pub provider: String,
    /// `''` for the row every event goes to, `k=v` for a tag's own row.
    pub tag: String,
}

/// What a ledger row adds up, and what `GET /admin/spend` shows summed over rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SpendTotals {
    /// Every metered request, refused ones included.
    pub requests: i64,
    /// Requests refused by admission.
    pub refused: i64,
    /// Every input token, cache reads and writes included.
    pub prompt_tokens: i64,
    /// Every output token, reasoning included.
    pub completion_tokens: i64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input_tokens: i64,
    pub reasoning_tokens: i64,
    /// Prompt tokens written to the provider's cache for 5 minutes.
    pub cache_write_5m_tokens: i64,
    /// Prompt tokens written to the provider's cache for 1 hour.
    pub cache_write_1h_tokens: i64,
    /// Requests answered from the gateway's response cache (counted in `requests`; their
    /// tokens are not provider tokens and are not counted above).
    pub cache_hits: i64,
    /// Exact USD: each token class at its own rate, at the price valid when it was used.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "12.345")]
    pub cost_usd: Decimal,
    /// What the cache hits saved: their stored answers' cost when a provider made them.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "0.42")]
    pub saved_usd: Decimal,
}

/// The integer counters of [`SpendTotals`] in field order: `spend_ledger`'s columns (its
/// `cost_usd` comes after them).
fn counters() -> impl Iterator<Item = &'static str> {
    ["requests", "refused"]
        .into_iter()
        .chain(TokenUsage::COUNTERS)
        .chain(["cache_hits"])
}

impl SpendTotals {
    /// Adds one event costed at `cost`.
    pub fn add_event(&mut self, e: &UsageEvent, cost: Decimal) {
        let refused = i64::from(e.outcome == Outcome::Refused);
        let provider_tokens = if e.cache_hit {
            [0; 6]
        } else {
            e.usage.counts().map(tokens)
        };
        let event = [1, refused]
            .into_iter()
            .chain(provider_tokens)
            .chain([i64::from(e.cache_hit)]);
        for (total, n) in self.counts_mut().into_iter().zip(event) {
            *total += n;
        }
        self.cost_usd += cost;
        if e.cache_hit {
            self.saved_usd += e.saved_cost_usd;
        }
    }

    /// The integer counters, in the order of [`counters`].
    fn counts(&self) -> [i64; 9] {
        self.clone().counts_mut().map(|n| *n)
    }

    fn counts_mut(&mut self) -> [&mut i64; 9] {
        [
            &mut self.requests,
            &mut self.refused,
            &mut self.prompt_tokens,
            &mut self.completion_tokens,
            &mut self.cached_input_tokens,
            &mut self.reasoning_tokens,
            &mut self.cache_write_5m_tokens,
            &mut self.cache_write_1h_tokens,
            &mut self.cache_hits,
        ]
    }

    /// `SELECT` expressions summing ledger rows into totals, read back by [`SpendTotals::read`].
    pub fn sums() -> String {
        counters()
            .map(|c| format!("COALESCE(SUM({c}), 0)::int8, "))
            .chain(["COALESCE(SUM(cost_usd), 0), COALESCE(SUM(saved_usd), 0)".to_owned()])
            .collect()
    }

    /// The totals selected by [`SpendTotals::sums`] from column `at` of `r` on.
    pub fn read(r: &tokio_postgres::Row, at: usize) -> Self {
        let mut totals = Self {
            cost_usd: r.get::<_, Decimal>(at + 9).normalize(),
            saved_usd: r.get::<_, Decimal>(at + 10).normalize(),
            ..Self::default()
        };
        for (i, n) in totals.counts_mut().into_iter().enumerate() {
            *n = r.get(at + i);
        }
        totals
    }
}

/// Token counts past `i64::MAX` are not real; they are refused at decoding, this only caps.
pub fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The UTC day of an event time (Unix milliseconds).
pub fn day_of(time_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(time_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// The tag row name of one tag.
pub fn tag_row(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// Aggregates costed events into ledger rows, in key order (the order they are upserted in,
/// so two replicas folding at once lock rows in the same order and never deadlock).
pub fn aggregate<'a>(
    events: impl IntoIterator<Item = (&'a UsageEvent, Decimal)>,
) -> BTreeMap<LedgerKey, SpendTotals> {
    let mut rows: BTreeMap<LedgerKey, SpendTotals> = BTreeMap::new();
    for (e, cost) in events {
        let base = LedgerKey {
            day: day_of(e.time_ms),
            team_id: e.team.clone().unwrap_or_default(),
            key_id: e.key_id.clone().unwrap_or_default(),
            model: e.model.clone().unwrap_or_default(),
            provider: e.provider.clone().unwrap_or_default(),
            tag: String::new(),
        };
        for (k, v) in &e.tags {
            let key = LedgerKey {
                tag: tag_row(k, v),
                ..base.clone()
            };
            rows.entry(key).or_default().add_event(e, cost);
        }
        rows.entry(base).or_default().add_event(e, cost);
    }
    rows
}

/// Adds rows to `spend_ledger`: one array per column, unnested, each row upserted.
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<&str> = counters().chain(["cost_usd", "saved_usd"]).collect();
    // $1-$6 are the row's identity; then one int8 array per counter, the cost and the saving.
    let last = 6 + columns.len();
    let arrays: String = (7..last - 1).map(|n| format!(", ${n}::int8[]")).collect();
    let arrays = format!("{arrays}, ${}::numeric[], ${last}::numeric[]", last - 1);
    let sets: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = l.{c} + EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO spend_ledger AS l (day, team_id, key_id, model, provider, tag, {})
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[]{arrays})
         ON CONFLICT (day, team_id, key_id, model, provider, tag) DO UPDATE SET {}",
        columns.join(", "),
        sets.join(", ")
    )
});

/// Adds `rows` to `spend_ledger` in one statement.
pub async fn upsert(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &BTreeMap<LedgerKey, SpendTotals>,
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut day = Vec::with_capacity(n);
    let mut text: [Vec<&str>; 5] = Default::default();
    let mut counts: [Vec<i64>; 9] = Default::default();
    let mut cost = Vec::with_capacity(n);
    let mut saved = Vec::with_capacity(n);
    for (k, c) in rows {
        day.push(k.day);
        let dims = [&k.team_id, &k.key_id, &k.model, &k.provider, &k.tag];
        for (column, v) in text.iter_mut().zip(dims) {
            column.push(v.as_str());
        }
        for (column, v) in counts.iter_mut().zip(c.counts()) {
            column.push(v);
        }
        cost.push(c.cost_usd);
        saved.push(c.saved_usd);
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&day];
    params.extend(text.iter().map(|c| c as &(dyn ToSql + Sync)));
    params.extend(counts.iter().map(|c| c as &(dyn ToSql + Sync)));
    params.push(&cost);
    params.push(&saved);
    let statement = tx.prepare_cached(&UPSERT).await?;
    tx.execute(&statement, &params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::TokenUsage;

    fn event(team: &str, model: &str, tags: &[(&str, &str)], prompt: u64) -> UsageEvent {
        UsageEvent {
            id: "0190".into(),
            time_ms: 1_795_275_000_000,
            proxy: "p".into(),
            key_id: Some("k1".into()),
            key_name: None,
            team: Some(team.into()),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            endpoint: "chat".into(),
            alias: "chat".into(),
            provider: Some("openai".into()),
            deployment: None,
            model: Some(model.into()),
            usage: TokenUsage {
                prompt_tokens: prompt,
                completion_tokens: 1,
                ..TokenUsage::default()
            },
            usage_estimated: false,
            cost_usd: Decimal::ZERO,
            latency_ms: 1,
            ttft_ms: None,
            status: 200,
            outcome: Outcome::Ok,
            refused: None,
            streamed: false,
            abandoned: false,
            attempts: 1,
            fallbacks: 0,
            cache_hit: false,
            saved_cost_usd: Decimal::ZERO,
            route_reason: None,
            log: proto::LogPayloads::Metadata,
            guardrail: Default::default(),
        }
    }

    #[test]
    fn every_event_counts_once_untagged_and_once_per_tag() {
        let a = event("t1", "gpt-4o", &[("env", "prod"), ("app", "x")], 10);
        let b = event("t1", "gpt-4o", &[("env", "dev")], 5);
        let mut c = event("t2", "gpt-4o", &[], 7);
        c.outcome = Outcome::Refused;
        let cost = Decimal::new(1, 3);
        let rows = aggregate([(&a, cost), (&b, cost), (&c, cost)]);
        let untagged: Vec<_> = rows.iter().filter(|(k, _)| k.tag.is_empty()).collect();
        assert_eq!(untagged.len(), 2);
        let t1 = untagged.iter().find(|(k, _)| k.team_id == "t1").unwrap().1;
        assert_eq!((t1.requests, t1.prompt_tokens), (2, 15));
        assert_eq!(t1.cost_usd, Decimal::new(2, 3));
        let t2 = untagged.iter().find(|(k, _)| k.team_id == "t2").unwrap().1;
        assert_eq!((t2.requests, t2.refused), (1, 1));
        // Tag rows: one per tag of each event; the sum over one tag key is each event once.
        let env: i64 = rows
            .iter()
            .filter(|(k, _)| k.tag.starts_with("env="))
            .map(|(_, c)| c.requests)
            .sum();
        assert_eq!(env, 2);
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows.keys().next().unwrap().day.to_string(),
            "2026-11-21",
            "days are UTC calendar days"
        );
    }
}
