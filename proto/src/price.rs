//! Prices per upstream model, and the one rule that turns a request's token classes into
//! money. Both planes cost with [`ModelPrice::cost`]: the data plane for its estimate and
//! budget settlement, the control plane's fold for the ledger.
//!
//! Token classes are disjoint (see [`crate::TokenClasses`]): plain input, cache reads, cache
//! writes kept 5 minutes, cache writes kept 1 hour, and output (reasoning included, as
//! providers bill it). A cache class without a price of its own is charged at the input price
//! ([`ModelPrice::fallbacks`] names them), so a missing entry never makes tokens free.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{TokenClasses, TokenUsage};

/// USD per million tokens for one upstream model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub model: String,
    pub input_per_mtok: Decimal,
    pub output_per_mtok: Decimal,
    /// Price of prompt tokens read from the provider's cache (OpenAI cached input, Anthropic
    /// and Bedrock cache reads, Gemini cached content); the input price when absent.
    #[serde(
        default,
        alias = "cache_read_per_mtok",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_input_per_mtok: Option<Decimal>,
    /// Price of prompt tokens written to the cache for 5 minutes; the input price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m_per_mtok: Option<Decimal>,
    /// Price of prompt tokens written to the cache for 1 hour; the input price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h_per_mtok: Option<Decimal>,
}

/// The rate (USD per million tokens) each token class is charged at, fallbacks applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: Decimal,
    pub cache_read: Decimal,
    pub cache_write_5m: Decimal,
    pub cache_write_1h: Decimal,
    pub output: Decimal,
}

impl ModelPrice {
    /// A price with input and output only (every cache class at the input price).
    pub fn new(
        model: impl Into<String>,
        input_per_mtok: Decimal,
        output_per_mtok: Decimal,
    ) -> Self {
        Self {
            model: model.into(),
            input_per_mtok,
            output_per_mtok,
            cached_input_per_mtok: None,
            cache_write_5m_per_mtok: None,
            cache_write_1h_per_mtok: None,
        }
    }

    /// The rate of every class: a cache class without a price of its own at the input price.
    pub fn rates(&self) -> Rates {
        let or_input = |p: Option<Decimal>| p.unwrap_or(self.input_per_mtok);
        Rates {
            input: self.input_per_mtok,
            cache_read: or_input(self.cached_input_per_mtok),
            cache_write_5m: or_input(self.cache_write_5m_per_mtok),
            cache_write_1h: or_input(self.cache_write_1h_per_mtok),
            output: self.output_per_mtok,
        }
    }

    /// The cache classes charged at the input price because they have no price of their own
    /// (`cache_read`, `cache_write_5m`, `cache_write_1h`).
    pub fn fallbacks(&self) -> Vec<&'static str> {
        [
            ("cache_read", self.cached_input_per_mtok),
            ("cache_write_5m", self.cache_write_5m_per_mtok),
            ("cache_write_1h", self.cache_write_1h_per_mtok),
        ]
        .into_iter()
        .filter(|(_, p)| p.is_none())
        .map(|(name, _)| name)
        .collect()
    }

    /// Exact cost of `usage` at this price: each class × its rate.
    pub fn cost(&self, usage: &TokenUsage) -> Decimal {
        let r = self.rates();
        let TokenClasses {
            input,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output,
        } = usage.classes();
        let million = Decimal::from(1_000_000u64);
        (Decimal::from(input) * r.input
            + Decimal::from(cache_read) * r.cache_read
            + Decimal::from(cache_write_5m) * r.cache_write_5m
            + Decimal::from(cache_write_1h) * r.cache_write_1h
            + Decimal::from(output) * r.output)
            / million
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn anthropic() -> ModelPrice {
        ModelPrice {
            cached_input_per_mtok: Some(d("0.30")),
            cache_write_5m_per_mtok: Some(d("3.75")),
            cache_write_1h_per_mtok: Some(d("6.00")),
            ..ModelPrice::new("claude-sonnet-4-5", d("3.00"), d("15.00"))
        }
    }

    #[test]
    fn each_class_is_charged_at_its_own_rate() {
        let usage = TokenUsage {
            prompt_tokens: 10_000,
            completion_tokens: 500,
            cached_input_tokens: 4_000,
            reasoning_tokens: 200,
            cache_write_5m_tokens: 3_000,
            cache_write_1h_tokens: 2_000,
        };
        // 1000 × 3 + 4000 × 0.30 + 3000 × 3.75 + 2000 × 6 + 500 × 15 (reasoning is output).
        let want = (d("3000") + d("1200") + d("11250") + d("12000") + d("7500")) / d("1000000");
        assert_eq!(anthropic().cost(&usage), want);
        assert_eq!(want.to_string(), "0.03495");
        assert!(anthropic().fallbacks().is_empty());
    }

    #[test]
    fn a_class_without_a_price_falls_back_to_the_input_price_visibly() {
        let plain = ModelPrice::new("m", d("2"), d("10"));
        assert_eq!(
            plain.fallbacks(),
            vec!["cache_read", "cache_write_5m", "cache_write_1h"]
        );
        let usage = TokenUsage {
            prompt_tokens: 100,
            cached_input_tokens: 30,
            cache_write_5m_tokens: 20,
            cache_write_1h_tokens: 10,
            ..TokenUsage::default()
        };
        assert_eq!(plain.cost(&usage), d("0.0002"));
        let openai = ModelPrice {
            cached_input_per_mtok: Some(d("1")),
            ..plain
        };
        assert_eq!(openai.fallbacks(), vec!["cache_write_5m", "cache_write_1h"]);
        // 70 × 2 + 30 × 1.
        assert_eq!(openai.cost(&usage), d("0.00017"));
    }

    #[test]
    fn the_wire_shape_is_additive() {
        let old: ModelPrice = serde_json::from_str(
            r#"{"model":"m","input_per_mtok":"1","output_per_mtok":"2","cached_input_per_mtok":"0.5"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.cache_write_5m_per_mtok, None);
        assert_eq!(
            serde_json::to_string(&old).unwrap_or_default(),
            r#"{"model":"m","input_per_mtok":"1","output_per_mtok":"2","cached_input_per_mtok":"0.5"}"#
        );
        let new: ModelPrice = serde_json::from_str(
            r#"{"model":"m","input_per_mtok":"1","output_per_mtok":"2","cache_read_per_mtok":"0.1","cache_write_5m_per_mtok":"1.25","cache_write_1h_per_mtok":"2"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(new.cached_input_per_mtok, Some(d("0.1")));
        assert_eq!(
            serde_json::to_string(&new).unwrap_or_default(),
            r#"{"model":"m","input_per_mtok":"1","output_per_mtok":"2","cached_input_per_mtok":"0.1","cache_write_5m_per_mtok":"1.25","cache_write_1h_per_mtok":"2"}"#
        );
    }
}
