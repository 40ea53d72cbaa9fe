//! `PUT` and `DELETE /v1/push-token`: a device registers where the push
//! gateway reaches it while it is not connected (`crate::push::gateway`),
//! or withdraws it. The token is a secret of the device's platform: it is
//! never logged nor audited, only that one was set.

use axum::extract::State;
use axum::http::StatusCode;
use curbside_proto::clinical::{MAX_PUSH_TOKEN_BYTES, PushTokenRequest};
use curbside_proto::routes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::state::AppState;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::clinical::{self, TokenRow};

/// `/v1/push-token`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register, withdraw))
}

#[utoipa::path(
    put,
    path = routes::PUSH_TOKEN,
    operation_id = "device.push_token.set",
    tag = "device",
    request_body = PushTokenRequest,
    security(("session" = [])),
    responses((status = 204, description = "The device's push token is set")),
)]
async fn register(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    extract::Json(request): extract::Json<PushTokenRequest>,
) -> Result<StatusCode> {
    let printable = |text: &str| text.chars().all(|c| c.is_ascii_graphic());
    if request.token.is_empty()
        || request.token.len() > MAX_PUSH_TOKEN_BYTES
        || !printable(&request.token)
        || request.app_id.is_empty()
        || request.app_id.len() > 200
        || !printable(&request.app_id)
    {
        return Err(Error::InvalidRequest(format!(
            "`token` must be 1 to {MAX_PUSH_TOKEN_BYTES} printable ASCII characters and `app_id` \
             1 to 200, as the push service gave them"
        )));
    }
    access.resource(&caller.device_id);
    access.evidence(format!("app_id={}", request.app_id));
    let row = TokenRow {
        device_id: caller.device_id.clone(),
        app_id: request.app_id,
        token: request.token,
    };
    let mut tx = state.database.pool().begin().await?;
    clinical::set_token(&mut *tx, &row, now_ms()).await?;
    access.commit(&state, tx).await?;
    state.events.tokens_changed();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = routes::PUSH_TOKEN,
    operation_id = "device.push_token.delete",
    tag = "device",
    security(("session" = [])),
    responses((status = 204, description = "The device has no push token")),
)]
async fn withdraw(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<StatusCode> {
    access.resource(&caller.device_id);
    let mut tx = state.database.pool().begin().await?;
    clinical::delete_token(&mut *tx, &caller.device_id, None).await?;
    access.commit(&state, tx).await?;
    state.events.tokens_changed();
    Ok(StatusCode::NO_CONTENT)
}
