//! Liveness and readiness probes: the only routes that need no session and
//! write no audit entry.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use curbside_proto::health::{HEALTH_PATH, Health, HealthStatus, READY_PATH, Ready, ReadyStatus};

use super::AppState;
use super::error::{Error, Result};
use crate::db::Database;

/// `GET /v1/health` and `GET /v1/ready`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(HEALTH_PATH, get(health))
        .route(READY_PATH, get(ready))
}

async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

async fn ready(State(database): State<Database>) -> Result<Json<Ready>> {
    database
        .check_ready()
        .await
        .map_err(Error::DatabaseUnavailable)?;
    Ok(Json(Ready {
        status: ReadyStatus::Ready,
    }))
}
