//! The spend ledger: events aggregated in memory into day × team × key × model × provider ×
//! tag rows, then added to `spend_ledger` with one multi-row upsert.
//!
//! Every event goes to its `tag = ''` row, and each of its tags `k=v` also to a row of its
//! own; a query reads either the untagged rows or the tagged ones, never both, so nothing is
//! counted twice (see migrations/0002_metering.sql).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use proto::{Outcome, UsageEvent};
use rust_decimal::Decimal;

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

/// What a ledger row adds up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every event, refused ones included.
    pub requests: i64,
    /// Events refused by admission.
    pub refused: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Cache reads.
    pub cached_input_tokens: i64,
    pub reasoning_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub cost_usd: Decimal,
}

impl Counters {
    /// Adds one event costed at `cost`.
    pub fn add_event(&mut self, e: &UsageEvent, cost: Decimal) {
        self.requests += 1;
        self.refused += i64::from(e.outcome == Outcome::Refused);
        self.prompt_tokens += tokens(e.usage.prompt_tokens);
        self.completion_tokens += tokens(e.usage.completion_tokens);
        self.cached_input_tokens += tokens(e.usage.cached_input_tokens);
        self.reasoning_tokens += tokens(e.usage.reasoning_tokens);
        self.cache_write_5m_tokens += tokens(e.usage.cache_write_5m_tokens);
        self.cache_write_1h_tokens += tokens(e.usage.cache_write_1h_tokens);
        self.cost_usd += cost;
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
) -> BTreeMap<LedgerKey, Counters> {
    let mut rows: BTreeMap<LedgerKey, Counters> = BTreeMap::new();
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

const UPSERT: &str = "
INSERT INTO spend_ledger AS l (day, team_id, key_id, model, provider, tag, requests, refused,
    prompt_tokens, completion_tokens, cached_input_tokens, reasoning_tokens,
    cache_write_5m_tokens, cache_write_1h_tokens, cost_usd)
SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[],
    $14::int8[], $15::numeric[])
ON CONFLICT (day, team_id, key_id, model, provider, tag) DO UPDATE SET
    requests = l.requests + EXCLUDED.requests,
    refused = l.refused + EXCLUDED.refused,
    prompt_tokens = l.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = l.completion_tokens + EXCLUDED.completion_tokens,
    cached_input_tokens = l.cached_input_tokens + EXCLUDED.cached_input_tokens,
    reasoning_tokens = l.reasoning_tokens + EXCLUDED.reasoning_tokens,
    cache_write_5m_tokens = l.cache_write_5m_tokens + EXCLUDED.cache_write_5m_tokens,
    cache_write_1h_tokens = l.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
    cost_usd = l.cost_usd + EXCLUDED.cost_usd";

/// Adds `rows` to `spend_ledger` in one statement.
pub async fn upsert(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &BTreeMap<LedgerKey, Counters>,
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut day = Vec::with_capacity(n);
    let mut team = Vec::with_capacity(n);
    let mut key = Vec::with_capacity(n);
    let mut model = Vec::with_capacity(n);
    let mut provider = Vec::with_capacity(n);
    let mut tag = Vec::with_capacity(n);
    let mut requests = Vec::with_capacity(n);
    let mut refused = Vec::with_capacity(n);
    let mut prompt = Vec::with_capacity(n);
    let mut completion = Vec::with_capacity(n);
    let mut cached = Vec::with_capacity(n);
    let mut reasoning = Vec::with_capacity(n);
    let mut write_5m = Vec::with_capacity(n);
    let mut write_1h = Vec::with_capacity(n);
    let mut cost = Vec::with_capacity(n);
    for (k, c) in rows {
        day.push(k.day);
        team.push(k.team_id.as_str());
        key.push(k.key_id.as_str());
        model.push(k.model.as_str());
        provider.push(k.provider.as_str());
        tag.push(k.tag.as_str());
        requests.push(c.requests);
        refused.push(c.refused);
        prompt.push(c.prompt_tokens);
        completion.push(c.completion_tokens);
        cached.push(c.cached_input_tokens);
        reasoning.push(c.reasoning_tokens);
        write_5m.push(c.cache_write_5m_tokens);
        write_1h.push(c.cache_write_1h_tokens);
        cost.push(c.cost_usd);
    }
    let statement = tx.prepare_cached(UPSERT).await?;
    tx.execute(
        &statement,
        &[
            &day,
            &team,
            &key,
            &model,
            &provider,
            &tag,
            &requests,
            &refused,
            &prompt,
            &completion,
            &cached,
            &reasoning,
            &write_5m,
            &write_1h,
            &cost,
        ],
    )
    .await?;
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
            route_reason: None,
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
