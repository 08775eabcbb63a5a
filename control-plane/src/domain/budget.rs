//! Budgets: how much a team, a key or each value of a tag may spend per period.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::resource::{Resource, Spec};
use super::{Check, DomainError};

pub type Budget = Resource<BudgetSpec>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    #[default]
    Team,
    Key,
    Tag,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Daily,
    Weekly,
    #[default]
    Monthly,
    Total,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpec {
    pub name: String,
    pub scope: BudgetScope,
    /// Team id, key id, or tag name (each distinct value of the tag gets its own budget).
    pub target: String,
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
    /// Hard budgets block; soft budgets alert.
    pub hard: bool,
}

impl Spec for BudgetSpec {
    const KIND: &'static str = "budget";
    const EVENTS: [&'static str; 3] = ["budget.created", "budget.updated", "budget.deleted"];

    fn validate(&self) -> Result<(), DomainError> {
        let mut check = Check::new();
        check.name("name", &self.name);
        if self.target.is_empty() || self.target.len() > 128 {
            check.fail("target", "must be 1-128 characters");
        }
        if self.amount_usd <= Decimal::ZERO {
            check.fail("amount_usd", "must be greater than 0");
        }
        if self.amount_usd > Decimal::from(1_000_000_000u64) {
            check.fail("amount_usd", "must be at most 1000000000");
        }
        check.done()
    }
}
