//! Usage folding: usage events from the data planes (JetStream) into `usage_events` and the
//! daily `spend_ledger`, costed at the price valid at each event's time, with soft-budget
//! alerts and spend metrics. See `docs/ARCHITECTURE.md` ("Control plane: event-sourced", on
//! folding usage events) and migrations/0002_metering.sql.
//!
//! - [`stream`]: the usage stream and the shared durable consumer, created if absent.
//! - [`fold`]: the batch loop and the one-transaction-per-batch write.
//! - [`record`]: decoding and the `usage_events` insert; [`ledger`]: aggregation and upsert.
//! - [`pricing`]: the `price_history` projection and the price book.
//! - [`alerts`]: soft budgets; [`metrics`]: Prometheus series and their label caps;
//!   [`budget_use`]: each budget's limit and current spend as gauges.

pub mod alerts;
pub mod budget_use;
pub mod fold;
pub mod ledger;
pub mod metrics;
pub mod pricing;
pub mod record;
pub mod stream;
