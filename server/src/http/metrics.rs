//! `GET /metrics`: the server's metrics (`crate::metrics`) for Prometheus,
//! on the TLS listener, with the scrape token the operator configured
//! (`metrics_token`; without it the route answers 401, saying so). Each
//! scrape is audited like any access, with no actor.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{Error, Result};
use super::extract::{self, ServiceRefusal};
use super::state::AppState;
use crate::clock::now_ms;

/// `/metrics`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";

/// Prometheus, authenticated by the scrape token.
#[derive(Debug)]
pub struct Scraper;

impl FromRequestParts<AppState> for Scraper {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let checked = extract::service_token(
            parts,
            state.services.metrics.as_ref(),
            "metrics",
            ("metrics_off", "bad_metrics_token"),
        );
        match checked {
            Ok(()) => Ok(Self),
            Err(ServiceRefusal::Off) => Err(Error::Unauthorized(
                "metrics are off on this server; its operator turns them on by setting \
                 metrics_token"
                    .to_owned(),
            )),
            Err(ServiceRefusal::Wrong) => Err(Error::Unauthorized(
                "give the scrape token this server was configured with (metrics_token) as \
                 Authorization: Bearer TOKEN"
                    .to_owned(),
            )),
        }
    }
}

#[utoipa::path(
    get,
    path = METRICS_PATH,
    operation_id = "metrics.scrape",
    tag = "metrics",
    security(("metrics" = [])),
    responses((
        status = 200,
        description = "The metrics, in Prometheus's text format 0.0.4",
        body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )),
)]
async fn scrape(State(state): State<AppState>, _scraper: Scraper) -> Result<Response> {
    let metrics = &state.metrics;
    metrics
        .audit_queue
        .set(i64::try_from(state.audit.queue_depth()).unwrap_or(i64::MAX));
    metrics
        .websockets
        .set(i64::try_from(state.events.connection_count()).unwrap_or(i64::MAX));
    let pool = state.database.pool();
    let size = i64::from(pool.size());
    let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
    metrics.pool.with_label_values(&["idle"]).set(idle);
    metrics
        .pool
        .with_label_values(&["in_use"])
        .set((size - idle).max(0));
    metrics
        .pool
        .with_label_values(&["max"])
        .set(i64::from(pool.options().get_max_connections()));
    let head = crate::db::audit::head(pool).await?;
    metrics
        .checkpoint_lag
        .set((head.seq - head.checkpoint_seq).max(0));
    // Before the first checkpoint there is no age, only the lag.
    let age_ms = if head.checkpoint_seq > 0 {
        (now_ms() - head.checkpoint_time_ms).max(0)
    } else {
        0
    };
    metrics.checkpoint_age.set(age_ms / 1000);
    let text = metrics
        .render()
        .map_err(|error| Error::Internal(format!("the metrics could not be written: {error}")))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
