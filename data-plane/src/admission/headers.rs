//! The `x-ratelimit-*` response headers, as OpenAI sends them.
//!
//! For each unit (requests, tokens) the tightest applicable rate limit is reported: the pool
//! with the least estimated remaining. *Remaining* is an estimate: what the control plane said
//! was left for anybody at its last reply, plus what this proxy holds unreserved (other proxies
//! may have taken some since). In local mode it is exactly what is left. *Reset* is the time
//! until the one-minute window ends, in OpenAI's (Go) duration format: `850ms`, `1s`, `59.5s`,
//! `1m0s`.

use http::{HeaderName, HeaderValue};
use proto::RateUnit;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::pool::{Pool, PoolKind};

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// One rate pool as a header reports it.
#[derive(Debug, Clone, Copy)]
struct Reading {
    limit: u64,
    remaining: u64,
    reset_ms: i64,
}

fn reading(pool: &Pool, now_ms: i64) -> Option<(RateUnit, Reading)> {
    let PoolKind::Rate {
        unit,
        window_end_ms,
    } = pool.kind
    else {
        return None;
    };
    let s = pool.state();
    let remaining = s.remote_remaining + s.available().max(Decimal::ZERO);
    Some((
        unit,
        Reading {
            limit: s.limit.to_u64().unwrap_or(0),
            remaining: remaining.floor().to_u64().unwrap_or(0),
            reset_ms: window_end_ms - now_ms,
        },
    ))
}

/// Headers for the tightest request and token limits among `pools` (none without rate pools).
pub fn for_pools<'a>(
    pools: impl Iterator<Item = &'a Pool>,
    now_ms: i64,
) -> Vec<(HeaderName, HeaderValue)> {
    let (mut requests, mut tokens): (Option<Reading>, Option<Reading>) = (None, None);
    for (unit, r) in pools.filter_map(|p| reading(p, now_ms)) {
        let slot = match unit {
            RateUnit::Requests => &mut requests,
            RateUnit::Tokens => &mut tokens,
        };
        if slot.is_none_or(|best| r.remaining < best.remaining) {
            *slot = Some(r);
        }
    }
    let mut out = Vec::new();
    if let Some(r) = requests {
        push(
            &mut out,
            [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
            r,
        );
    }
    if let Some(r) = tokens {
        push(&mut out, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS], r);
    }
    out
}

fn push(out: &mut Vec<(HeaderName, HeaderValue)>, names: [HeaderName; 3], r: Reading) {
    let [limit, remaining, reset] = names;
    out.push((limit, HeaderValue::from(r.limit)));
    out.push((remaining, HeaderValue::from(r.remaining)));
    if let Ok(v) = HeaderValue::from_str(&go_duration(r.reset_ms)) {
        out.push((reset, v));
    }
}

/// Formats milliseconds like Go's `time.Duration` (what OpenAI sends): `0s`, `20ms`, `1s`,
/// `59.5s`, `6m0s`.
pub fn go_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let minutes = ms / 60_000;
    let rest = ms % 60_000;
    let (whole, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{whole}s")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}s", frac.trim_end_matches('0'))
    };
    if minutes > 0 {
        format!("{minutes}m{secs}")
    } else {
        secs
    }
}
