//! Usage events off the wire and into `usage_events`: decoding (refusing what Postgres could
//! not store) and one multi-row insert that reports which events were new.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use proto::{Outcome, UsageEvent};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::ledger::tokens;

/// Why a message is not a usage event we can fold.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a usage event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the event id `{0}` is not a UUID")]
    Id(String),
    #[error("the event time {0} ms is out of range")]
    Time(i64),
    #[error("a count is out of range")]
    Range,
    #[error("strings must not contain NUL characters (U+0000)")]
    Nul,
}

/// A decoded event with its parsed id.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub event: UsageEvent,
}

/// Decodes one message body.
pub fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    // PostgreSQL text cannot hold U+0000; one such event would fail its whole batch forever.
    if payload
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
    {
        return Err(DecodeError::Nul);
    }
    let event: UsageEvent = serde_json::from_slice(payload)?;
    let id = Uuid::parse_str(&event.id).map_err(|_| DecodeError::Id(event.id.clone()))?;
    let time = DateTime::from_timestamp_millis(event.time_ms)
        .filter(|t| t.timestamp() > 0 && t.timestamp() < 253_402_300_799)
        .ok_or(DecodeError::Time(event.time_ms))?;
    let times = [event.latency_ms, event.ttft_ms.unwrap_or(0)];
    let mut counts = event.usage.counts().into_iter().chain(times);
    if counts.any(|n| i64::try_from(n).is_err()) {
        return Err(DecodeError::Range);
    }
    Ok(Decoded { id, time, event })
}

/// The `outcome` column's text.
pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::UpstreamError => "upstream_error",
        Outcome::Refused => "refused",
    }
}

const INSERT: &str = "
INSERT INTO usage_events (id, time, proxy, key_id, key_name, team_id, tags, endpoint, alias,
    provider, deployment, model, prompt_tokens, completion_tokens, cached_input_tokens,
    reasoning_tokens, usage_estimated, cost_usd, proxy_cost_usd, latency_ms, ttft_ms, status,
    outcome, refused_code, refused_limit, streamed, abandoned, attempts, fallbacks, cache_hit,
    route_reason, cache_write_5m_tokens, cache_write_1h_tokens, log_policy, saved_usd,
    guardrail)
SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
    $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::bool[], $18::numeric[],
    $19::numeric[], $20::int8[], $21::int8[], $22::int4[], $23::text[], $24::text[],
    $25::text[], $26::bool[], $27::bool[], $28::int4[], $29::int4[], $30::bool[], $31::text[],
    $32::int8[], $33::int8[], $34::text[], $35::numeric[], $36::jsonb[])
ON CONFLICT (id) DO NOTHING
RETURNING id";

/// Inserts events (ids unique within the slice) with their ledger cost; returns the ids that
/// were not there yet.
pub async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[(&Decoded, Decimal)],
) -> Result<HashSet<Uuid>, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let n = events.len();
    macro_rules! col {
        ($f:expr) => {
            events.iter().map($f).collect::<Vec<_>>()
        };
    }
    let id = col!(|(d, _)| d.id);
    let time = col!(|(d, _)| d.time);
    let proxy = col!(|(d, _)| d.event.proxy.as_str());
    let key_id = col!(|(d, _)| d.event.key_id.as_deref());
    let key_name = col!(|(d, _)| d.event.key_name.as_deref());
    let team = col!(|(d, _)| d.event.team.as_deref());
    let tags = col!(|(d, _)| serde_json::to_value(&d.event.tags).unwrap_or_default());
    let endpoint = col!(|(d, _)| d.event.endpoint.as_str());
    let alias = col!(|(d, _)| d.event.alias.as_str());
    let provider = col!(|(d, _)| d.event.provider.as_deref());
    let deployment = col!(|(d, _)| d.event.deployment.as_deref());
    let model = col!(|(d, _)| d.event.model.as_deref());
    let prompt = col!(|(d, _)| tokens(d.event.usage.prompt_tokens));
    let completion = col!(|(d, _)| tokens(d.event.usage.completion_tokens));
    let cached = col!(|(d, _)| tokens(d.event.usage.cached_input_tokens));
    let reasoning = col!(|(d, _)| tokens(d.event.usage.reasoning_tokens));
    let estimated = col!(|(d, _)| d.event.usage_estimated);
    let cost = col!(|(_, c)| *c);
    let proxy_cost = col!(|(d, _)| d.event.cost_usd);
    let latency = col!(|(d, _)| tokens(d.event.latency_ms));
    let ttft = col!(|(d, _)| d.event.ttft_ms.map(tokens));
    let status = col!(|(d, _)| i32::from(d.event.status));
    let outcome = col!(|(d, _)| outcome_str(d.event.outcome));
    let refused_code = col!(|(d, _)| d.event.refused.as_ref().map(|r| r.code.as_str()));
    let refused_limit = col!(|(d, _)| d.event.refused.as_ref().map(|r| r.limit.as_str()));
    let streamed = col!(|(d, _)| d.event.streamed);
    let abandoned = col!(|(d, _)| d.event.abandoned);
    let attempts = col!(|(d, _)| i32::try_from(d.event.attempts).unwrap_or(i32::MAX));
    let fallbacks = col!(|(d, _)| i32::try_from(d.event.fallbacks).unwrap_or(i32::MAX));
    let cache_hit = col!(|(d, _)| d.event.cache_hit);
    let route_reason = col!(|(d, _)| d.event.route_reason.as_deref());
    let write_5m = col!(|(d, _)| tokens(d.event.usage.cache_write_5m_tokens));
    let write_1h = col!(|(d, _)| tokens(d.event.usage.cache_write_1h_tokens));
    let log_policy = col!(|(d, _)| d.event.log.as_str());
    let saved = col!(|(d, _)| d.event.saved_cost_usd);
    let guardrail = col!(|(d, _)| {
        let g = &d.event.guardrail;
        (!g.is_empty()).then(|| serde_json::to_value(g).unwrap_or_default())
    });
    let statement = tx.prepare_cached(INSERT).await?;
    let rows = tx
        .query(
            &statement,
            &[
                &id,
                &time,
                &proxy,
                &key_id,
                &key_name,
                &team,
                &tags,
                &endpoint,
                &alias,
                &provider,
                &deployment,
                &model,
                &prompt,
                &completion,
                &cached,
                &reasoning,
                &estimated,
                &cost,
                &proxy_cost,
                &latency,
                &ttft,
                &status,
                &outcome,
                &refused_code,
                &refused_limit,
                &streamed,
                &abandoned,
                &attempts,
                &fallbacks,
                &cache_hit,
                &route_reason,
                &write_5m,
                &write_1h,
                &log_policy,
                &saved,
                &guardrail,
            ],
        )
        .await?;
    let mut inserted = HashSet::with_capacity(n);
    inserted.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_postgres_cannot_store_is_refused_at_decoding() {
        let good = r#"{"id":"01936f5e-0000-7000-8000-000000000001","time_ms":1795275000000,"proxy":"p","endpoint":"chat","alias":"a","latency_ms":3,"status":200,"outcome":"ok"}"#;
        let d = decode(good.as_bytes()).unwrap();
        assert_eq!(d.time.timestamp(), 1_795_275_000);
        assert!(matches!(decode(b"not json"), Err(DecodeError::Json(_))));
        let bad_id = good.replace("01936f5e-0000-7000-8000-000000000001", "x");
        assert!(matches!(decode(bad_id.as_bytes()), Err(DecodeError::Id(_))));
        let nul = good.replace(r#""proxy":"p""#, r#""proxy":"p\u0000""#);
        assert!(matches!(decode(nul.as_bytes()), Err(DecodeError::Nul)));
        let huge = good.replace(r#""latency_ms":3"#, r#""latency_ms":18446744073709551615"#);
        assert!(matches!(decode(huge.as_bytes()), Err(DecodeError::Range)));
        let old = good.replace("1795275000000", "-5");
        assert!(matches!(decode(old.as_bytes()), Err(DecodeError::Time(_))));
    }
}
