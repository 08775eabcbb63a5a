//! `GET /admin/health`: each deployment's circuit-breaker state as the proxies last announced
//! it. A deployment is `open` when any proxy's breaker for it is open, `half_open` when any is
//! probing, else `closed`. A team-scoped token sees only deployments of providers it can see.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{ApiError, AppState, Principal};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/health", get(list))
}

/// One proxy's view of a deployment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProxyHealth {
    pub proxy: String,
    /// `closed`, `half_open` or `open`.
    pub state: String,
    /// The kind of failure that opened the breaker.
    pub error: Option<String>,
    pub changed_at: DateTime<Utc>,
}

/// A deployment's health across proxies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentHealth {
    /// `provider/model`.
    pub deployment: String,
    pub provider: String,
    /// The worst state any proxy reports.
    pub state: String,
    pub proxies: Vec<ProxyHealth>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub deployments: Vec<DeploymentHealth>,
}

fn rank(state: &str) -> u8 {
    match state {
        "open" => 2,
        "half_open" => 1,
        _ => 0,
    }
}

#[utoipa::path(get, path = "/admin/health",
    operation_id = "get_health", tag = "health", security(("bearer" = [])),
    responses((status = 200, body = HealthReport), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<HealthReport>, ApiError> {
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            "SELECT h.deployment, split_part(h.deployment, '/', 1), h.proxy, h.state, h.error,
                    h.changed_at, p.team_id
             FROM provider_health h
             LEFT JOIN providers p ON p.id = split_part(h.deployment, '/', 1)
             ORDER BY h.deployment, h.proxy",
            &[],
        )
        .await?;
    let mut deployments: Vec<DeploymentHealth> = Vec::new();
    for r in &rows {
        let team: Option<Uuid> = r.get(6);
        if !who.can_see(team) {
            continue;
        }
        let deployment: String = r.get(0);
        let proxy = ProxyHealth {
            proxy: r.get(2),
            state: r.get(3),
            error: r.get(4),
            changed_at: r.get(5),
        };
        match deployments.last_mut() {
            Some(d) if d.deployment == deployment => {
                if rank(&proxy.state) > rank(&d.state) {
                    d.state = proxy.state.clone();
                }
                d.proxies.push(proxy);
            }
            _ => deployments.push(DeploymentHealth {
                deployment,
                provider: r.get(1),
                state: proxy.state.clone(),
                proxies: vec![proxy],
            }),
        }
    }
    Ok(Json(HealthReport { deployments }))
}
