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

/// The department of the first administrator, whom enrollment creates.
const ADMIN_DEPARTMENT: &str = "Administration";
use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::fields::{self, NAME_MAX};
use crate::auth;
use crate::auth::rate_limit::{Limit, address_key};
use crate::clock::now_ms;
use crate::db::identity::{find_device, find_user};
use crate::ids::new_id;

/// A claimed enrollment code's user, or its bootstrap role.
type CodeRow = (Option<String>, Option<String>);

/// Why a code could not be claimed, for the error message.
async fn code_refusal(state: &AppState, hash: &[u8], now: i64) -> Result<Error> {
    let row: Option<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT expires_at_ms, used_at_ms, revoked_at_ms FROM enrollment_code WHERE code_hash = $1",
    )
    .bind(hash)
    .fetch_optional(state.database.pool())
    .await?;
    Ok(Error::Unauthorized(match row {
        None => "this enrollment code is not recognised; check it, or ask your administrator \
                 for a new one"
            .to_owned(),
        Some((_, Some(_), _)) => "this enrollment code has already been used; each code \
                                  enrolls one device, so ask your administrator for a new one"
            .to_owned(),
        Some((_, None, Some(_))) => "this enrollment code was withdrawn (a newer one was issued, \
                                     an administrator revoked it, or the account was \
                                     deactivated); ask your administrator for the newest code"
            .to_owned(),
        Some((expires_at_ms, None, None)) if expires_at_ms <= now => {
            "this enrollment code has expired; ask your administrator for a new one".to_owned()
        }
        Some(_) => "this enrollment code could not be used; try again".to_owned(),
    }))
}

/// `POST /v1/enroll`.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/enroll", post(enroll))
}

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
    let claimed: Option<CodeRow> = sqlx::query_as(
        "UPDATE enrollment_code SET used_at_ms = $1 \
         WHERE code_hash = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $1 \
         RETURNING user_id, bootstrap_role",
    )
    .bind(now)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, bootstrap_role)) = claimed else {
        drop(tx);
        access.reason("enrollment_code_refused");
        return Err(code_refusal(&state, &hash, now).await?);
    };

    let user_id = match (user_id, bootstrap_role) {
        (Some(user_id), _) => {
            let user = find_user(&mut *tx, &user_id)
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
            let search_key = crate::search::user_key(&display_name, ADMIN_DEPARTMENT);
            sqlx::query(
                "INSERT INTO app_user (user_id, display_name, role, department, licence_number, \
                 status, created_at_ms, updated_at_ms, search_key) \
                 VALUES ($1, $2, $3, $4, NULL, $5, $6, $6, $7)",
            )
            .bind(&user_id)
            .bind(display_name)
            .bind(Role::Admin.as_str())
            .bind(ADMIN_DEPARTMENT)
            .bind(UserStatus::Active.as_str())
            .bind(now)
            .bind(search_key)
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
    .await
    .map_err(|error| match &error {
        // Two enrollments racing with one key: the loser is told, not 500.
        sqlx::Error::Database(database) if database.is_unique_violation() => Error::Conflict(
            "this device key is already enrolled; generate a new key for a new enrollment"
                .to_owned(),
        ),
        _ => Error::from(error),
    })?;
    let user = find_user(&mut *tx, &user_id)
        .await?
        .ok_or(Error::NotFound)?;
    let device = find_device(&mut *tx, &device_id)
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
