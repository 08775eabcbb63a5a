//! Prometheus metrics of folding and spend, with bounded label sets.
//!
//! Spend is exported as `switchyard_spend_usd_total`, a *gauge used as a running total* in
//! USD (f64): `metrics` counters are integers, and micro-dollars would make every dashboard
//! divide. PromQL's `rate()`/`increase()` work on it like on a counter (they only look at the
//! values, and treat a drop, e.g. a restart, as a reset). It is an approximation for
//! dashboards; the exact figures are in `spend_ledger` (`GET /admin/spend`). Each replica
//! exports what it folded, so sum over instances.
//!
//! Labels `team`, `model` and `provider` take the values events carry (team ids and the models
//! and providers of the configured routes), capped at [`MAX_VALUES`] distinct values per label
//! per process; later newcomers are reported as `other`.
//!
//! Spend by key and by tag are series of their own, so the main one does not multiply by
//! them: `switchyard_key_spend_usd_total{team,key_id,key_name}` (`key_id` capped like the
//! others; `key_name` follows it, `other` past the cap) and
//! `switchyard_tag_spend_usd_total{team,tag}` (`tag` is `name=value`, one series per tag of
//! each event, as in the ledger's tag rows; capped).
//!
//! Other series: `switchyard_usage_requests_total{team,model,provider,outcome}`,
//! `switchyard_usage_tokens_total{team,model,provider,kind}` (kind: prompt, completion,
//! cached_input, reasoning, cache_write_5m, cache_write_1h), `switchyard_fold_events_total` (events newly folded),
//! `switchyard_fold_duplicates_total`, `switchyard_fold_batch_seconds`,
//! `switchyard_fold_lag_seconds` (now minus the time of the newest event of the last batch),
//! `switchyard_usage_undecodable_total`, `switchyard_usage_unpriced_total`,
//! `switchyard_budget_soft_alerts_total`.

use std::collections::{HashMap, HashSet};

use proto::{TokenUsage, UsageEvent};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::record::outcome_str;

/// Distinct values kept per label before newcomers become `other`.
pub const MAX_VALUES: usize = 1000;

/// One label's admitted values.
#[derive(Debug, Default)]
pub struct LabelCap {
    seen: HashSet<String>,
}

impl LabelCap {
    /// The label value to export for `value` (`none` when absent, `other` past the cap).
    pub fn label(&mut self, value: Option<&str>) -> String {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return "none".to_owned();
        };
        if self.seen.contains(v) {
            return v.to_owned();
        }
        if self.seen.len() < MAX_VALUES {
            self.seen.insert(v.to_owned());
            return v.to_owned();
        }
        "other".to_owned()
    }
}

/// Per-process label caps for the spend series.
#[derive(Debug, Default)]
pub struct SpendMetrics {
    team: LabelCap,
    model: LabelCap,
    provider: LabelCap,
    key: LabelCap,
    tag: LabelCap,
}

#[derive(Default)]
struct Sums {
    cost: Decimal,
    /// What response-cache hits saved.
    saved: Decimal,
    tokens: [u64; 6],
    outcomes: HashMap<&'static str, u64>,
}

impl SpendMetrics {
    /// Records newly folded events (aggregated first: one update per series per batch).
    pub fn record<'a>(&mut self, events: impl IntoIterator<Item = (&'a UsageEvent, Decimal)>) {
        let mut by: HashMap<(String, String, String), Sums> = HashMap::new();
        let mut by_key: HashMap<[(&str, String); 3], Decimal> = HashMap::new();
        let mut by_tag: HashMap<[(&str, String); 2], Decimal> = HashMap::new();
        for (e, cost) in events {
            let team = self.team.label(e.team.as_deref());
            let key_id = self.key.label(e.key_id.as_deref());
            let key_name = match key_id.as_str() {
                "other" | "none" => key_id.clone(),
                _ => e.key_name.clone().unwrap_or_default(),
            };
            *by_key
                .entry([
                    ("team", team.clone()),
                    ("key_id", key_id),
                    ("key_name", key_name),
                ])
                .or_default() += cost;
            for (name, value) in &e.tags {
                let tag = self.tag.label(Some(&super::ledger::tag_row(name, value)));
                *by_tag
                    .entry([("team", team.clone()), ("tag", tag)])
                    .or_default() += cost;
            }
            let key = (
                team,
                self.model.label(e.model.as_deref()),
                self.provider.label(e.provider.as_deref()),
            );
            let s = by.entry(key).or_default();
            s.cost += cost;
            if e.cache_hit {
                // A hit's tokens are not provider tokens (as in the ledger).
                s.saved += e.saved_cost_usd;
            } else {
                for (sum, n) in s.tokens.iter_mut().zip(e.usage.counts()) {
                    *sum = sum.saturating_add(n);
                }
            }
            *s.outcomes.entry(outcome_str(e.outcome)).or_default() += 1;
        }
        for ((team, model, provider), s) in by {
            let labels = [("team", team), ("model", model), ("provider", provider)];
            metrics::gauge!("switchyard_spend_usd_total", &labels)
                .increment(s.cost.to_f64().unwrap_or(0.0));
            if s.saved > Decimal::ZERO {
                metrics::gauge!("switchyard_spend_saved_usd_total", &labels)
                    .increment(s.saved.to_f64().unwrap_or(0.0));
            }
            for (counter, n) in TokenUsage::COUNTERS.into_iter().zip(s.tokens) {
                if n > 0 {
                    // The counter's name without `_tokens`: `prompt`, `cache_write_5m`, ...
                    let kind = counter.trim_end_matches("_tokens");
                    let mut l = labels.to_vec();
                    l.push(("kind", kind.to_owned()));
                    metrics::counter!("switchyard_usage_tokens_total", &l).increment(n);
                }
            }
            for (outcome, n) in s.outcomes {
                let mut l = labels.to_vec();
                l.push(("outcome", outcome.to_owned()));
                metrics::counter!("switchyard_usage_requests_total", &l).increment(n);
            }
        }
        for (labels, cost) in by_key {
            metrics::gauge!("switchyard_key_spend_usd_total", &labels)
                .increment(cost.to_f64().unwrap_or(0.0));
        }
        for (labels, cost) in by_tag {
            metrics::gauge!("switchyard_tag_spend_usd_total", &labels)
                .increment(cost.to_f64().unwrap_or(0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_capped() {
        let mut cap = LabelCap::default();
        assert_eq!(cap.label(None), "none");
        assert_eq!(cap.label(Some("")), "none");
        for i in 0..MAX_VALUES {
            assert_eq!(cap.label(Some(&format!("m{i}"))), format!("m{i}"));
        }
        assert_eq!(cap.label(Some("newcomer")), "other");
        assert_eq!(cap.label(Some("m7")), "m7");
    }
}
