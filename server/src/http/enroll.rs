//! `POST /v1/enroll`: a device joins with a one-time enrollment code and
//! its Ed25519 public key. No session is needed; attempts are rate-limited
//! per client address.

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use curbside_proto::identity::{
    EnrollRequest, Enrolled, PUBLIC_KEY_LEN, Role, UserStatus, normalise_enrollment_code,
};
use curbside_proto::routes;
use std::net::SocketAddr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

/// The department of the first administrator, whom enrollment creates.
const ADMIN_DEPARTMENT: &str = "Administration";
use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::fields::{self, NAME_MAX};
use crate::auth;
use crate::auth::rate_limit::{Limit, address_key};
use crate::clock::now_ms;
use crate::db::enrollment_code::{self, ClaimedCode, CodeState};
use crate::db::{app_user, device};
use crate::ids::new_id;

/// Why a code could not be claimed, for the error message.
async fn code_refusal(state: &AppState, hash: &[u8], now: i64) -> Result<Error> {
    let code = enrollment_code::find_state(state.database.pool(), hash).await?;
    Ok(Error::Unauthorized(match code {
        None => "this enrollment code is not recognised; check it, or ask your administrator \
                 for a new one"
            .to_owned(),
        Some(CodeState {
            used_at_ms: Some(_),
            ..
        }) => "this enrollment code has already been used; each code enrolls one device, so \
               ask your administrator for a new one"
            .to_owned(),
        Some(CodeState {
            used_at_ms: None,
            revoked_at_ms: Some(_),
            ..
        }) => "this enrollment code was withdrawn (a newer one was issued, an administrator \
               revoked it, or the account was deactivated); ask your administrator for the \
               newest code"
            .to_owned(),
        Some(CodeState {
            expires_at_ms,
            used_at_ms: None,
            revoked_at_ms: None,
        }) if expires_at_ms <= now => {
            "this enrollment code has expired; ask your administrator for a new one".to_owned()
        }
        Some(_) => "this enrollment code could not be used; try again".to_owned(),
    }))
}

/// `POST /v1/enroll`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enroll))
}

#[utoipa::path(
    post,
    path = routes::ENROLL,
    operation_id = "auth.enroll",
    tag = "device",
    request_body = EnrollRequest,
    responses((status = 201, description = "The device is enrolled", body = Enrolled)),
)]
async fn enroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    access: Access,
    extract::Json(request): extract::Json<EnrollRequest>,
) -> Result<(StatusCode, Json<Enrolled>)> {
    state
        .auth
        .limits
        .check(Limit::EnrollPerAddress, &address_key(peer.ip()))?;
    let code = normalise_enrollment_code(&request.code).ok_or_else(|| {
        Error::InvalidRequest(
            "the enrollment code is malformed: it is 20 letters and digits, as in \
             ABCD-EFGH-JKMN-PQRS-TVWX"
                .to_owned(),
        )
    })?;
    let device_name = fields::text("device_name", &request.device_name, NAME_MAX)?;
    if request.public_key.len() != PUBLIC_KEY_LEN {
        return Err(Error::InvalidRequest(
            "`public_key` must be a 32-byte Ed25519 public key".to_owned(),
        ));
    }

    let now = now_ms();
    let hash = auth::enrollment_code_hash(&code);
    let mut tx = state.database.pool().begin().await?;
    // Claiming the code is the transaction's first statement: it takes the
    // write lock at once (SQLite) and lets exactly one racer win.
    let claimed = enrollment_code::claim(&mut *tx, &hash, now).await?;
    let Some(ClaimedCode {
        user_id,
        bootstrap_role,
    }) = claimed
    else {
        drop(tx);
        access.reason("enrollment_code_refused");
        return Err(code_refusal(&state, &hash, now).await?);
    };

    let user_id = match (user_id, bootstrap_role) {
        (Some(user_id), _) => {
            let user = app_user::find(&mut *tx, &user_id)
                .await?
                .ok_or(Error::NotFound)?;
            if user.status != UserStatus::Active {
                access.reason("user_deactivated");
                return Err(Error::Forbidden(
                    "this account is deactivated; ask your administrator".to_owned(),
                ));
            }
            user_id
        }
        (None, _) => {
            let display_name = request.display_name.as_deref().ok_or_else(|| {
                Error::InvalidRequest(
                    "this is the first administrator's code: also give your `display_name`"
                        .to_owned(),
                )
            })?;
            let display_name = fields::text("display_name", display_name, NAME_MAX)?;
            let user_id = new_id()?;
            let profile = app_user::Profile {
                display_name: &display_name,
                role: Role::Admin,
                department: ADMIN_DEPARTMENT,
                licence_number: None,
                user_name: None,
                external_id: None,
            };
            app_user::insert(&mut *tx, &user_id, &profile, now).await?;
            user_id
        }
    };

    let taken = device::find_by_public_key(&mut *tx, &request.public_key).await?;
    if taken.is_some() {
        return Err(Error::Conflict(
            "this device key is already enrolled; generate a new key for a new enrollment"
                .to_owned(),
        ));
    }
    let device_id = new_id()?;
    device::insert(
        &mut *tx,
        &device_id,
        &user_id,
        &device_name,
        &request.public_key,
        now,
    )
    .await
    .map_err(|error| match &error {
        // Two enrollments racing with one key: the loser is told, not 500.
        sqlx::Error::Database(database) if database.is_unique_violation() => Error::Conflict(
            "this device key is already enrolled; generate a new key for a new enrollment"
                .to_owned(),
        ),
        _ => Error::from(error),
    })?;
    let user = app_user::find(&mut *tx, &user_id)
        .await?
        .ok_or(Error::NotFound)?;
    let device = device::find(&mut *tx, &device_id)
        .await?
        .ok_or(Error::NotFound)?;
    access.actor(&user_id, &device_id);
    access.resource(&device_id);
    access.commit(&state, tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            user,
            device,
            server_id: state.auth.server_id.clone(),
        }),
    ))
}
