//! Gauges the control plane refreshes on a period, whatever the traffic: whether it reaches its
//! dependencies (`switchyard_dependency_up{dependency="postgres"|"nats"}`, 1 or 0, every
//! [`REACHABILITY_PERIOD`]) and each budget's limit and current spend
//! ([`crate::usage::budget_use`], every [`BUDGET_PERIOD`]).
//!
//! Postgres is probed with a query; NATS by the state of a client of its own, which reconnects
//! by itself, so the gauge follows the connection as the other NATS sessions see it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use tokio_util::sync::CancellationToken;

use crate::background::every;
use crate::store::Store;
use crate::usage::budget_use::BudgetGauges;

pub const DEPENDENCY_UP: &str = "switchyard_dependency_up";
/// How often reachability is checked.
pub const REACHABILITY_PERIOD: Duration = Duration::from_secs(5);
/// How often the budget gauges are recomputed from the ledger.
pub const BUDGET_PERIOD: Duration = Duration::from_secs(10);
/// A Postgres probe that takes longer counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Refreshes the gauges until `cancel` fires. Without `nats_url` only Postgres is reported.
pub async fn run(store: Store, nats_url: Option<String>, cancel: CancellationToken) {
    let nats = match &nats_url {
        Some(url) => async_nats::ConnectOptions::new()
            .name("switchyard-control-plane-probe")
            .retry_on_initial_connect()
            .connect(crate::config::nats_servers(url))
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "cannot set up the NATS probe"))
            .ok(),
        None => None,
    };
    let reachability = every(REACHABILITY_PERIOD, &cancel, || async {
        let postgres = tokio::time::timeout(PROBE_TIMEOUT, store.head()).await;
        up("postgres", matches!(postgres, Ok(Ok(_))));
        if nats_url.is_some() {
            let connected = nats
                .as_ref()
                .is_some_and(|c| c.connection_state() == State::Connected);
            up("nats", connected);
        }
    });
    let gauges = Arc::new(tokio::sync::Mutex::new(BudgetGauges::default()));
    let budgets = every(BUDGET_PERIOD, &cancel, || {
        let gauges = Arc::clone(&gauges);
        let store = &store;
        async move {
            let now = chrono::Utc::now().timestamp();
            if let Err(e) = gauges.lock().await.refresh(store, now).await {
                tracing::debug!(error = %e, "budget gauges not refreshed");
            }
        }
    });
    tokio::join!(reachability, budgets);
}

fn up(dependency: &'static str, up: bool) {
    metrics::gauge!(DEPENDENCY_UP, "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
}
