//! The refusals admission gives, with what a client SDK needs to act on them: budgets that are
//! spent say `x-should-retry: false` (the official OpenAI and Anthropic SDKs then do not
//! retry); transient refusals carry `Retry-After`.

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use proto::RateUnit;
use rust_decimal::Decimal;

use super::headers;
use super::pool::{Pool, PoolKind, Shortage};
use super::Refused;

const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// Which cap refused a request that would cost too much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapSource {
    /// The key's `max_request_cost_usd`.
    Key,
    /// The request's `x-switchyard-max-cost` header.
    Header,
}

/// The reservation costs more than the per-request cap allows (400, never retried).
pub fn cost_cap(cost: Decimal, cap: Decimal, source: CapSource) -> Refused {
    let limit = match source {
        CapSource::Key => "max_request_cost_usd",
        CapSource::Header => "x-switchyard-max-cost",
    };
    Refused {
        status: StatusCode::BAD_REQUEST,
        code: "request_cost_cap",
        limit: limit.to_owned(),
        message: format!(
            "This request may cost up to ${} (prompt plus the output it may generate), above the per-request cap of ${} ({limit}). Lower max_tokens or shorten the prompt.",
            cost.normalize(),
            cap.normalize()
        ),
        retry_after: None,
        headers: vec![(SHOULD_RETRY, HeaderValue::from_static("false"))],
    }
}

/// `pool` could not cover a reservation, for the reason `why`.
pub fn for_pool(pool: &Pool, why: Shortage, now_ms: i64) -> Refused {
    match (&pool.kind, why) {
        (PoolKind::Budget { name, .. }, Shortage::Exhausted) => Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "budget_exceeded",
            limit: name.clone(),
            message: format!(
                "Budget '{name}' is exhausted for this period; requests that spend from it are refused until it resets or is raised."
            ),
            retry_after: None,
            headers: vec![(SHOULD_RETRY, HeaderValue::from_static("false"))],
        },
        (PoolKind::Budget { name, .. }, Shortage::Unreachable) => Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "budget_unavailable",
            limit: name.clone(),
            message: format!(
                "Budget '{name}' could not be confirmed right now; please retry shortly."
            ),
            retry_after: Some(Duration::from_secs(1)),
            headers: Vec::new(),
        },
        (PoolKind::Rate { unit, window_end_ms }, why) => {
            let scope = match &pool.key {
                proto::PoolKey::Rate { scope, .. } => scope.as_str(),
                proto::PoolKey::Budget { .. } => "",
            };
            let per = match unit {
                RateUnit::Requests => "requests",
                RateUnit::Tokens => "tokens",
            };
            let limit = pool.state().limit;
            // Until the window resets; a failed lease request is worth retrying sooner.
            let wait_ms = match why {
                Shortage::Exhausted => (window_end_ms - now_ms).max(1),
                Shortage::Unreachable => 1000,
            };
            let retry_after = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(1000));
            let message = match why {
                Shortage::Exhausted => format!(
                    "Rate limit reached for {per} per minute on {scope}: limit {limit}. Please try again in {}.",
                    headers::go_duration(wait_ms)
                ),
                Shortage::Unreachable => format!(
                    "The {per} per minute limit on {scope} could not be confirmed right now; please retry shortly."
                ),
            };
            Refused {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limit_exceeded",
                limit: format!("{scope} {per}_per_minute"),
                message,
                retry_after: Some(retry_after),
                headers: headers::for_pools(std::iter::once(pool), now_ms),
            }
        }
    }
}

impl Refused {
    /// A rate limit of the deployment itself (another deployment of the route may serve).
    pub fn deployment_scoped(&self) -> bool {
        self.code == "rate_limit_exceeded" && self.limit.starts_with("deployment:")
    }

    /// OpenAI `error.type` for this refusal.
    pub fn error_type(&self) -> &'static str {
        match self.code {
            "request_cost_cap" => "invalid_request_error",
            "budget_exceeded" => "insufficient_quota",
            "rate_limit_exceeded" | "budget_unavailable" => "rate_limit_error",
            _ => "rate_limit_error",
        }
    }

    /// Whether a client may retry (and should, after `retry_after`).
    pub fn retryable(&self) -> bool {
        self.retry_after.is_some()
    }
}
