//! Liveness and readiness probes: the only routes that need no session and
//! write no audit entry.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use curbside_proto::health::{
    HEALTH_PATH, Health, HealthStatus, READY_PATH, Ready, ReadyStatus, Warning,
};

use super::error::{Error, Result};
use super::state::AppState;

/// `GET /v1/health` and `GET /v1/ready`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(HEALTH_PATH, get(health))
        .route(READY_PATH, get(ready))
}

/// What an operator should look at now.
fn warnings(state: &AppState) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if state.disk.is_low() {
        warnings.push(Warning::DiskSpaceLow);
    }
    if crate::telemetry::lost_lines() > 0 {
        warnings.push(Warning::LogLinesLost);
    }
    warnings
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        warnings: warnings(&state),
    })
}

async fn ready(State(state): State<AppState>) -> Result<Json<Ready>> {
    state
        .database
        .check_ready()
        .await
        .map_err(Error::DatabaseUnavailable)?;
    Ok(Json(Ready {
        status: ReadyStatus::Ready,
        warnings: warnings(&state),
        log_lines_lost: crate::telemetry::lost_lines(),
    }))
}
