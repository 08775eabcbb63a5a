//! Prices per upstream model, in USD per million tokens. A built-in table covers current
//! OpenAI, Anthropic, Gemini and Mistral models; entries set through the API override it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::resource::{Resource, Spec};
use super::{Check, DomainError};

pub type Price = Resource<PriceSpec>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSpec {
    pub input_per_mtok: Decimal,
    pub output_per_mtok: Decimal,
    #[serde(default)]
    pub cached_input_per_mtok: Option<Decimal>,
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

/// Built-in list prices (USD per million tokens: input, output, cached input), as published
/// by each provider in 2025-2026. Overridable per model through the API.
pub const BUILT_IN: &[(&str, &str, &str, Option<&str>)] = &[
    ("gpt-4o", "2.50", "10.00", Some("1.25")),
    ("gpt-4o-mini", "0.15", "0.60", Some("0.075")),
    ("gpt-4.1", "2.00", "8.00", Some("0.50")),
    ("gpt-4.1-mini", "0.40", "1.60", Some("0.10")),
    ("gpt-4.1-nano", "0.10", "0.40", Some("0.025")),
    ("o3", "2.00", "8.00", Some("0.50")),
    ("o4-mini", "1.10", "4.40", Some("0.275")),
    ("text-embedding-3-small", "0.02", "0", None),
    ("text-embedding-3-large", "0.13", "0", None),
    ("claude-opus-4-1", "15.00", "75.00", Some("1.50")),
    ("claude-sonnet-4-5", "3.00", "15.00", Some("0.30")),
    ("claude-sonnet-4", "3.00", "15.00", Some("0.30")),
    ("claude-3-5-haiku", "0.80", "4.00", Some("0.08")),
    ("gemini-2.5-pro", "1.25", "10.00", Some("0.31")),
    ("gemini-2.5-flash", "0.30", "2.50", Some("0.075")),
    ("gemini-2.0-flash", "0.10", "0.40", Some("0.025")),
    ("mistral-large-latest", "2.00", "6.00", None),
    ("mistral-medium-latest", "0.40", "2.00", None),
    ("mistral-small-latest", "0.10", "0.30", None),
    ("mistral-embed", "0.10", "0", None),
];

/// The built-in table as specs.
pub fn built_in() -> Vec<(String, PriceSpec)> {
    BUILT_IN
        .iter()
        .filter_map(|(model, input, output, cached)| {
            Some((
                (*model).to_owned(),
                PriceSpec {
                    input_per_mtok: input.parse().ok()?,
                    output_per_mtok: output.parse().ok()?,
                    cached_input_per_mtok: match cached {
                        Some(c) => Some(c.parse().ok()?),
                        None => None,
                    },
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
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
}
