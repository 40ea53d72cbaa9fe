//! A route the suite mounts beside the API (through `Server::with_routes`)
//! to drive the server's shared JSON extractor and middleware with bodies,
//! before the API has resources of its own that take them.

use axum::Router;
use axum::routing::post;
use curbside_server::http::AppState;
use curbside_server::http::extract::Json;
use serde::{Deserialize, Serialize};

/// Where the probe is mounted.
pub const PATH: &str = "/v1/test-probe";

/// The body the probe accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub name: String,
    pub count: u32,
}

/// What the probe answers.
#[derive(Debug, Serialize)]
pub struct Echo {
    pub name: String,
    pub count: u32,
}

async fn echo(Json(probe): Json<Probe>) -> axum::Json<Echo> {
    axum::Json(Echo {
        name: probe.name,
        count: probe.count,
    })
}

/// The routes to mount.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(echo))
}
