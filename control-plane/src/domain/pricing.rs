//! Prices per upstream model, in USD per million tokens: input, output, cache reads, and cache
//! writes kept 5 minutes or 1 hour. A built-in table covers current OpenAI, Anthropic, Gemini,
//! Bedrock and Mistral models; entries set through the API override it. A cache class without
//! a price is charged at the input price (see `proto::ModelPrice::rates`).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::resource::{Resource, Spec};
use super::{Check, DomainError};

pub type Price = Resource<PriceSpec>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSpec {
    pub input_per_mtok: Decimal,
    pub output_per_mtok: Decimal,
    /// Cache reads (OpenAI cached input, Anthropic/Bedrock cache reads, Gemini cached
    /// content); the input price when absent.
    #[serde(default)]
    pub cached_input_per_mtok: Option<Decimal>,
    /// 5-minute cache writes; the input price when absent. Absent fields are left out of the
    /// stored event, so specs written before they existed read and compare the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m_per_mtok: Option<Decimal>,
    /// 1-hour cache writes; the input price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h_per_mtok: Option<Decimal>,
}

impl PriceSpec {
    /// This spec as the price of `model` (the shape both planes cost with).
    pub fn price(&self, model: &str) -> proto::ModelPrice {
        proto::ModelPrice {
            model: model.to_owned(),
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
            cached_input_per_mtok: self.cached_input_per_mtok,
            cache_write_5m_per_mtok: self.cache_write_5m_per_mtok,
            cache_write_1h_per_mtok: self.cache_write_1h_per_mtok,
        }
    }

    /// The spec of a price (the model name dropped).
    pub fn of(p: &proto::ModelPrice) -> Self {
        Self {
            input_per_mtok: p.input_per_mtok,
            output_per_mtok: p.output_per_mtok,
            cached_input_per_mtok: p.cached_input_per_mtok,
            cache_write_5m_per_mtok: p.cache_write_5m_per_mtok,
            cache_write_1h_per_mtok: p.cache_write_1h_per_mtok,
        }
    }
}

impl Spec for PriceSpec {
    const KIND: &'static str = "price";
    const EVENTS: [&'static str; 3] = ["price.set", "price.changed", "price.removed"];

    fn validate(&self) -> Result<(), DomainError> {
        let mut check = Check::new();
        let max = Decimal::from(1_000_000u64);
        for (path, v) in [
            ("input_per_mtok", Some(self.input_per_mtok)),
            ("output_per_mtok", Some(self.output_per_mtok)),
            ("cached_input_per_mtok", self.cached_input_per_mtok),
            ("cache_write_5m_per_mtok", self.cache_write_5m_per_mtok),
            ("cache_write_1h_per_mtok", self.cache_write_1h_per_mtok),
        ] {
            if let Some(v) = v {
                if v < Decimal::ZERO || v > max {
                    check.fail(path, "must be between 0 and 1000000");
                }
            }
        }
        check.done()
    }
}

/// One built-in list price, USD per million tokens. `None` for a cache class: the provider
/// does not bill it apart, and it is charged at the input price.
struct Listed {
    model: &'static str,
    input: &'static str,
    output: &'static str,
    cache_read: Option<&'static str>,
    cache_write_5m: Option<&'static str>,
    cache_write_1h: Option<&'static str>,
}

/// Anthropic's prices of one model family, USD per million tokens: input, output, cache
/// reads (0.1× input), 5-minute cache writes (1.25×) and 1-hour cache writes (2×), as on
/// Anthropic's pricing page; the same on Bedrock and Vertex AI.
type ClaudePrices = [&'static str; 5];

const OPUS_4_5: ClaudePrices = ["5.00", "25.00", "0.50", "6.25", "10.00"];
const OPUS_4_1: ClaudePrices = ["15.00", "75.00", "1.50", "18.75", "30.00"];
const SONNET_4: ClaudePrices = ["3.00", "15.00", "0.30", "3.75", "6.00"];
const HAIKU_4_5: ClaudePrices = ["1.00", "5.00", "0.10", "1.25", "2.00"];
const HAIKU_3_5: ClaudePrices = ["0.80", "4.00", "0.08", "1.00", "1.60"];

/// An Anthropic model, under Anthropic's name or Bedrock's, at its family's prices.
const fn claude(model: &'static str, prices: ClaudePrices) -> Listed {
    let [input, output, read, write_5m, write_1h] = prices;
    listed(
        model,
        [input, output],
        [Some(read), Some(write_5m), Some(write_1h)],
    )
}

/// A model whose provider discounts cache reads only (OpenAI cached input, Gemini cached
/// content, Amazon Nova cache reads); writing the cache costs the input price.
const fn reads(
    model: &'static str,
    input: &'static str,
    output: &'static str,
    read: Option<&'static str>,
) -> Listed {
    listed(model, [input, output], [read, None, None])
}

/// A model's prices: `[input, output]`, then `[cache read, 5-minute write, 1-hour write]`.
const fn listed(
    model: &'static str,
    [input, output]: [&'static str; 2],
    [cache_read, cache_write_5m, cache_write_1h]: [Option<&'static str>; 3],
) -> Listed {
    Listed {
        model,
        input,
        output,
        cache_read,
        cache_write_5m,
        cache_write_1h,
    }
}

/// Built-in list prices, as published by each provider on its pricing page (2025-2026;
/// Gemini at the prompt tier up to 200k tokens). Overridable per model through the API.
const BUILT_IN: &[Listed] = &[
    reads("gpt-4o", "2.50", "10.00", Some("1.25")),
    reads("gpt-4o-mini", "0.15", "0.60", Some("0.075")),
    reads("gpt-4.1", "2.00", "8.00", Some("0.50")),
    reads("gpt-4.1-mini", "0.40", "1.60", Some("0.10")),
    reads("gpt-4.1-nano", "0.10", "0.40", Some("0.025")),
    reads("gpt-5", "1.25", "10.00", Some("0.125")),
    reads("gpt-5-mini", "0.25", "2.00", Some("0.025")),
    reads("gpt-5-nano", "0.05", "0.40", Some("0.005")),
    reads("o3", "2.00", "8.00", Some("0.50")),
    reads("o4-mini", "1.10", "4.40", Some("0.275")),
    reads("text-embedding-3-small", "0.02", "0", None),
    reads("text-embedding-3-large", "0.13", "0", None),
    claude("claude-opus-4-6", OPUS_4_5),
    claude("claude-opus-4-5", OPUS_4_5),
    claude("claude-opus-4-1", OPUS_4_1),
    claude("claude-sonnet-4-5", SONNET_4),
    claude("claude-sonnet-4", SONNET_4),
    claude("claude-haiku-4-5", HAIKU_4_5),
    claude("claude-3-5-haiku", HAIKU_3_5),
    claude("anthropic.claude-opus-4-1-20250805-v1:0", OPUS_4_1),
    claude("anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_4),
    claude("anthropic.claude-sonnet-4-20250514-v1:0", SONNET_4),
    claude("anthropic.claude-haiku-4-5-20251001-v1:0", HAIKU_4_5),
    claude("anthropic.claude-3-5-haiku-20241022-v1:0", HAIKU_3_5),
    reads("amazon.nova-pro-v1:0", "0.80", "3.20", Some("0.20")),
    reads("amazon.nova-lite-v1:0", "0.06", "0.24", Some("0.015")),
    reads("amazon.nova-micro-v1:0", "0.035", "0.14", Some("0.00875")),
    reads("gemini-2.5-pro", "1.25", "10.00", Some("0.125")),
    reads("gemini-2.5-flash", "0.30", "2.50", Some("0.03")),
    reads("gemini-2.5-flash-lite", "0.10", "0.40", Some("0.01")),
    reads("gemini-2.0-flash", "0.10", "0.40", Some("0.025")),
    reads("mistral-large-latest", "2.00", "6.00", None),
    reads("mistral-medium-latest", "0.40", "2.00", None),
    reads("mistral-small-latest", "0.10", "0.30", None),
    reads("mistral-embed", "0.10", "0", None),
];

/// The built-in table as specs.
pub fn built_in() -> Vec<(String, PriceSpec)> {
    let amount = |s: Option<&str>| s.and_then(|s| s.parse::<Decimal>().ok());
    BUILT_IN
        .iter()
        .filter_map(|l| {
            Some((
                l.model.to_owned(),
                PriceSpec {
                    input_per_mtok: amount(Some(l.input))?,
                    output_per_mtok: amount(Some(l.output))?,
                    cached_input_per_mtok: amount(l.cache_read),
                    cache_write_5m_per_mtok: amount(l.cache_write_5m),
                    cache_write_1h_per_mtok: amount(l.cache_write_1h),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_price_parses_exactly() {
        assert_eq!(super::built_in().len(), super::BUILT_IN.len());
        let mini = super::built_in()
            .into_iter()
            .find(|(m, _)| m == "gpt-4o-mini")
            .unwrap()
            .1;
        assert_eq!(mini.cached_input_per_mtok.unwrap().to_string(), "0.075");
    }

    #[test]
    fn built_in_anthropic_cache_prices_follow_anthropics_multipliers() {
        let (quarter, two, tenth) = (
            "1.25".parse::<Decimal>().unwrap(),
            Decimal::TWO,
            "0.1".parse::<Decimal>().unwrap(),
        );
        let mut claude = 0;
        for (model, p) in super::built_in() {
            let (Some(read), Some(w5), Some(w1)) = (
                p.cached_input_per_mtok,
                p.cache_write_5m_per_mtok,
                p.cache_write_1h_per_mtok,
            ) else {
                assert!(
                    p.cache_write_5m_per_mtok.is_none() && p.cache_write_1h_per_mtok.is_none(),
                    "{model}"
                );
                continue;
            };
            claude += 1;
            assert!(model.contains("claude"), "{model}");
            assert_eq!(w5, p.input_per_mtok * quarter, "{model}");
            assert_eq!(w1, p.input_per_mtok * two, "{model}");
            assert_eq!(read, p.input_per_mtok * tenth, "{model}");
        }
        assert!(claude >= 10, "{claude}");
    }

    #[test]
    fn a_spec_without_cache_writes_is_stored_as_before() {
        let spec: PriceSpec = serde_json::from_str(
            r#"{"input_per_mtok":"1","output_per_mtok":"2","cached_input_per_mtok":null}"#,
        )
        .unwrap();
        assert_eq!(spec.cache_write_5m_per_mtok, None);
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"input_per_mtok":"1","output_per_mtok":"2","cached_input_per_mtok":null}"#
        );
        let bad = PriceSpec {
            cache_write_1h_per_mtok: Some(Decimal::NEGATIVE_ONE),
            ..spec
        };
        assert!(bad.validate().is_err());
    }
}
