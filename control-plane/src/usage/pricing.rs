//! Prices as they were: the `price_history` projection and the in-memory book the folder costs
//! events with.
//!
//! Guarantees: an event is costed at the newest override of its model whose `valid_from` is
//! at or before the event's own time; with none (or when that override was removed), at the
//! built-in price; with no built-in price either, at zero (counted in
//! `switchyard_usage_unpriced_total`, logged once per model per process).
//!
//! The history of one model is re-derived from its whole `price-<model>` stream each time the
//! stream changes, so a live append and `rebuild-projections` write exactly the same rows.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use proto::{ModelPrice, TokenUsage};
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;

use crate::domain::pricing::{built_in, PriceSpec};
use crate::domain::resource::ResourceEvent;

/// The price columns of `pricing` and `price_history`, in the order [`spec_from_row`] reads
/// them.
pub const PRICE_COLUMNS: &str =
    "input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_5m_per_mtok, cache_write_1h_per_mtok";

/// The spec from a `pricing` or `price_history` row whose price columns start at `at`, in the
/// order of [`PRICE_COLUMNS`]; `None` when the input or output price is NULL (a removed
/// override). NUMERIC(20, 10) comes back with ten decimals; the values are normalized back to
/// what was written.
pub fn spec_from_row(r: &tokio_postgres::Row, at: usize) -> Option<PriceSpec> {
    let amount = |i: usize| r.get::<_, Option<Decimal>>(at + i).map(|d| d.normalize());
    Some(PriceSpec {
        input_per_mtok: amount(0)?,
        output_per_mtok: amount(1)?,
        cached_input_per_mtok: amount(2),
        cache_write_5m_per_mtok: amount(3),
        cache_write_1h_per_mtok: amount(4),
    })
}

/// Rewrites the price history of `model` from its event stream (called by the pricing
/// projection, inside the append or rebuild transaction).
pub async fn project_history<C: GenericClient>(
    tx: &C,
    stream: &str,
    model: &str,
) -> Result<(), tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT position, payload, recorded_at FROM events WHERE stream_id = $1 ORDER BY version",
            &[&stream],
        )
        .await?;
    tx.execute("DELETE FROM price_history WHERE model = $1", &[&model])
        .await?;
    for row in rows {
        let position: i64 = row.get(0);
        let at: DateTime<Utc> = row.get(2);
        let Ok(event) = serde_json::from_value::<ResourceEvent<PriceSpec>>(row.get(1)) else {
            // load_in refuses such a stream before any projection runs; nothing to record.
            continue;
        };
        let current = match event {
            ResourceEvent::Created { spec, .. } | ResourceEvent::Updated { spec } => Some(spec),
            ResourceEvent::Deleted => None,
        };
        // A removed override is a row with NULL prices.
        let live = current.is_some();
        let spec = current.unwrap_or_default();
        let (input, output) = (
            live.then_some(spec.input_per_mtok),
            live.then_some(spec.output_per_mtok),
        );
        tx.execute(
            &format!(
                "INSERT INTO price_history (position, model, valid_from, {PRICE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &position,
                &model,
                &at,
                &input,
                &output,
                &spec.cached_input_per_mtok,
                &spec.cache_write_5m_per_mtok,
                &spec.cache_write_1h_per_mtok,
            ],
        )
        .await?;
    }
    Ok(())
}

/// One override in force from `from_ms` (`None`: removed, the built-in price applies).
#[derive(Debug, Clone)]
struct Entry {
    from_ms: i64,
    price: Option<ModelPrice>,
}

/// Every model's price history plus the built-in table, for costing events in memory.
#[derive(Debug, Default)]
pub struct PriceBook {
    /// The `price_history` position this book was loaded at (its newest row).
    loaded_at: Option<i64>,
    history: HashMap<String, Vec<Entry>>,
    built_in: HashMap<String, ModelPrice>,
    warned: HashSet<String>,
}

/// How an event was costed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priced {
    Override,
    BuiltIn,
    /// No price known for the model (or no model): cost zero.
    Unpriced,
}

impl PriceBook {
    /// A book with only the built-in prices.
    pub fn new() -> Self {
        let built_in = built_in()
            .into_iter()
            .map(|(model, spec)| {
                let price = model_price(&model, &spec);
                (model, price)
            })
            .collect();
        Self {
            built_in,
            ..Self::default()
        }
    }

    /// Reloads the history if it changed since the last load (one cheap query otherwise).
    pub async fn refresh<C: GenericClient>(&mut self, db: &C) -> Result<(), tokio_postgres::Error> {
        let head: Option<i64> = db
            .query_one("SELECT MAX(position) FROM price_history", &[])
            .await?
            .get(0);
        if head.is_some() && head == self.loaded_at {
            return Ok(());
        }
        let rows = db
            .query(
                &format!(
                    "SELECT model, valid_from, {PRICE_COLUMNS}
                     FROM price_history ORDER BY model, valid_from, position"
                ),
                &[],
            )
            .await?;
        let mut history: HashMap<String, Vec<Entry>> = HashMap::new();
        for r in rows {
            let model: String = r.get(0);
            let from: DateTime<Utc> = r.get(1);
            let price = spec_from_row(&r, 2).map(|s| s.price(&model));
            history.entry(model).or_default().push(Entry {
                from_ms: from.timestamp_millis(),
                price,
            });
        }
        self.history = history;
        self.loaded_at = head;
        Ok(())
    }

    /// Adds an override in memory (tests).
    pub fn set(&mut self, model: &str, from_ms: i64, spec: Option<&PriceSpec>) {
        let entries = self.history.entry(model.to_owned()).or_default();
        entries.push(Entry {
            from_ms,
            price: spec.map(|s| model_price(model, s)),
        });
        entries.sort_by_key(|e| e.from_ms);
    }

    /// The price of `model` at `time_ms`, and where it came from.
    pub fn price_at(&self, model: &str, time_ms: i64) -> (Option<&ModelPrice>, Priced) {
        let over = self.history.get(model).and_then(|entries| {
            // Entries are sorted by time; the last one at or before the event wins.
            let n = entries.partition_point(|e| e.from_ms <= time_ms);
            n.checked_sub(1).map(|i| &entries[i])
        });
        if let Some(Entry { price: Some(p), .. }) = over {
            return (Some(p), Priced::Override);
        }
        match self.built_in.get(model) {
            Some(p) => (Some(p), Priced::BuiltIn),
            None => (None, Priced::Unpriced),
        }
    }

    /// The exact cost of `usage` of `model` at `time_ms` (zero when unpriced: counted and
    /// logged once per model).
    pub fn cost(&mut self, model: Option<&str>, time_ms: i64, usage: &TokenUsage) -> Decimal {
        let Some(model) = model.filter(|m| !m.is_empty()) else {
            return Decimal::ZERO;
        };
        match self.price_at(model, time_ms) {
            (Some(p), _) => p.cost(usage),
            (None, _) => {
                if usage != &TokenUsage::default() {
                    metrics::counter!("switchyard_usage_unpriced_total").increment(1);
                    if self.warned.len() < 10_000 && self.warned.insert(model.to_owned()) {
                        tracing::warn!(
                            model,
                            "no price for this model (neither override nor built-in): its usage is costed at zero; set one with PUT /admin/pricing/{{model}}"
                        );
                    }
                }
                Decimal::ZERO
            }
        }
    }
}

fn model_price(model: &str, s: &PriceSpec) -> ModelPrice {
    s.price(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(input: &str, output: &str) -> PriceSpec {
        PriceSpec {
            input_per_mtok: input.parse().unwrap(),
            output_per_mtok: output.parse().unwrap(),
            ..PriceSpec::default()
        }
    }

    #[test]
    fn an_event_is_costed_at_the_price_of_its_own_time() {
        let mut book = PriceBook::new();
        let usage = TokenUsage {
            prompt_tokens: 1_000_000,
            completion_tokens: 1_000_000,
            ..TokenUsage::default()
        };
        // Built-in gpt-4o: 2.50 + 10.00.
        assert_eq!(book.cost(Some("gpt-4o"), 100, &usage).to_string(), "12.50");
        book.set("gpt-4o", 1_000, Some(&spec("1", "2")));
        book.set("gpt-4o", 2_000, None);
        assert_eq!(
            book.cost(Some("gpt-4o"), 999, &usage),
            "12.5".parse::<Decimal>().unwrap()
        );
        assert_eq!(book.cost(Some("gpt-4o"), 1_000, &usage), Decimal::from(3));
        assert_eq!(book.cost(Some("gpt-4o"), 1_999, &usage), Decimal::from(3));
        // Removed: the built-in price is back.
        assert_eq!(book.price_at("gpt-4o", 2_000).1, Priced::BuiltIn);
        // Unknown models and no model cost nothing.
        assert_eq!(book.cost(Some("mystery"), 5, &usage), Decimal::ZERO);
        assert_eq!(book.cost(None, 5, &usage), Decimal::ZERO);
        book.set("mystery", 0, Some(&spec("0.5", "0")));
        assert_eq!(
            book.cost(Some("mystery"), 5, &usage)
                .normalize()
                .to_string(),
            "0.5"
        );
    }
}
