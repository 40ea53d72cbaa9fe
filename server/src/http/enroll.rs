//! `POST /v1/enroll`: a device joins with a one-time enrollment code and
//! its Ed25519 public key. No session is needed; attempts are rate-limited
//! per client address.

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use curbside_proto::identity::{
    EnrollRequest, Enrolled, PUBLIC_KEY_LEN, Role, UserStatus, normalise_enrollment_code,
};
use std::net::SocketAddr;

use super::AppState;
use super::error::{Error, Result};
use super::extract;
use super::fields::{self, NAME_MAX};
use crate::auth::rate_limit::Limit;
use crate::auth::{self, new_id};
use crate::db::identity::{find_device, find_user};
use crate::server::now_ms;

/// An enrollment code's user, bootstrap role, expiry and use.
type CodeRow = (Option<String>, Option<String>, i64, Option<i64>);

/// `POST /v1/enroll`.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/enroll", post(enroll))
}

async fn enroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    extract::Json(request): extract::Json<EnrollRequest>,
) -> Result<(StatusCode, Json<Enrolled>)> {
    state
        .auth
        .limits
        .check(Limit::EnrollPerAddress, &peer.ip().to_string())
        .map_err(|wait| Error::TooManyRequests(wait.0))?;
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
    let mut tx = state.database.pool().begin().await?;
    let row: Option<CodeRow> = sqlx::query_as(
        "SELECT user_id, bootstrap_role, expires_at_ms, used_at_ms FROM enrollment_code \
         WHERE code_hash = $1",
    )
    .bind(auth::enrollment_code_hash(&code))
    .fetch_optional(&mut *tx)
    .await?;
    let (user_id, bootstrap_role, expires_at_ms, used_at_ms) = row.ok_or_else(|| {
        Error::Unauthorized(
            "this enrollment code is not recognised; check it, or ask your administrator for a new one"
                .to_owned(),
        )
    })?;
    if used_at_ms.is_some() {
        return Err(Error::Unauthorized(
            "this enrollment code has already been used; each code enrolls one device, so ask \
             your administrator for a new one"
                .to_owned(),
        ));
    }
    if expires_at_ms <= now {
        return Err(Error::Unauthorized(
            "this enrollment code has expired; ask your administrator for a new one".to_owned(),
        ));
    }
    let claimed = sqlx::query(
        "UPDATE enrollment_code SET used_at_ms = $1 WHERE code_hash = $2 AND used_at_ms IS NULL",
    )
    .bind(now)
    .bind(auth::enrollment_code_hash(&code))
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(Error::Unauthorized(
            "this enrollment code has already been used; ask your administrator for a new one"
                .to_owned(),
        ));
    }

    let user_id = match (user_id, bootstrap_role) {
        (Some(user_id), _) => {
            let user = find_user(&mut *tx, &user_id)
                .await?
                .ok_or(Error::NotFound)?;
            if user.status != UserStatus::Active {
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
            sqlx::query(
                "INSERT INTO app_user (user_id, display_name, role, department, licence_number, \
                 status, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, NULL, $5, $6, $6)",
            )
            .bind(&user_id)
            .bind(display_name)
            .bind(Role::Admin.as_str())
            .bind("Administration")
            .bind(UserStatus::Active.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            user_id
        }
    };

    let taken: Option<String> =
        sqlx::query_scalar("SELECT device_id FROM device WHERE public_key = $1")
            .bind(&request.public_key)
            .fetch_optional(&mut *tx)
            .await?;
    if taken.is_some() {
        return Err(Error::Conflict(
            "this device key is already enrolled; generate a new key for a new enrollment"
                .to_owned(),
        ));
    }
    let device_id = new_id()?;
    sqlx::query(
        "INSERT INTO device (device_id, user_id, device_name, public_key, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&device_id)
    .bind(&user_id)
    .bind(device_name)
    .bind(&request.public_key)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let user = find_user(&mut *tx, &user_id)
        .await?
        .ok_or(Error::NotFound)?;
    let device = find_device(&mut *tx, &device_id)
        .await?
        .ok_or(Error::NotFound)?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            user,
            device,
            server_id: state.auth.server_id.clone(),
        }),
    ))
}
