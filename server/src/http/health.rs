//! Liveness and readiness probes: the only routes that need no session and
//! write no audit entry.

use axum::Json;
use axum::extract::State;
use curbside_proto::health::{
    HEALTH_PATH, Health, HealthStatus, READY_PATH, Ready, ReadyStatus, Warning,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{Error, Result};
use super::state::AppState;

/// `GET /v1/health` and `GET /v1/ready`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
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

#[utoipa::path(
    get,
    path = HEALTH_PATH,
    operation_id = "health.live",
    tag = "health",
    responses((status = 200, description = "The server is up", body = Health)),
)]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        warnings: warnings(&state),
    })
}

#[utoipa::path(
    get,
    path = READY_PATH,
    operation_id = "health.ready",
    tag = "health",
    responses((status = 200, description = "The server can serve: its database answers and its disk has room", body = Ready)),
)]
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
