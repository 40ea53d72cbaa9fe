//! Challenge-response login, logout and `whoami`.
//!
//! A device asks for a single-use nonce, signs
//! `curbside_proto::identity::login_message` with its Ed25519 key, and gets
//! a short-lived token bound to a new session row. Logging in again is the
//! only way to renew a token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use curbside_proto::identity::{
    Challenge, ChallengeRequest, LoggedIn, LoginRequest, NONCE_LEN, UserStatus, Whoami,
    login_message,
};
use ring::signature::{ED25519, UnparsedPublicKey};

use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::{AppState, finish};
use crate::auth::rate_limit::{Limit, address_key};
use crate::auth::sessions::{Caller, SessionsOf, end_sessions};
use crate::auth::{CHALLENGE_LIFETIME_MS, new_id, random_bytes};
use crate::db::identity::{find_device, find_user};
use crate::server::now_ms;

/// The login routes and `GET /v1/me`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/challenge", post(challenge))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(whoami))
}

/// Device ids are 32 lower-case hex digits; anything else is refused
/// before it reaches the database or the rate limiter's memory.
fn is_device_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn limit_address(state: &AppState, peer: SocketAddr) -> Result<()> {
    state
        .auth
        .limits
        .check(Limit::AuthPerAddress, &address_key(peer.ip()))?;
    Ok(())
}

/// The refusal of a device that may not sign in, with its audit reason.
fn not_allowed(access: &Access) -> Error {
    access.reason("device_not_allowed");
    Error::Unauthorized(
        "this device cannot sign in: it is not enrolled here, was removed, or its user is \
         deactivated; ask your administrator"
            .to_owned(),
    )
}

async fn challenge(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    access: Access,
    extract::Json(request): extract::Json<ChallengeRequest>,
) -> Result<Json<Challenge>> {
    access.resource(&request.device_id);
    limit_address(&state, peer)?;
    if !is_device_id(&request.device_id) {
        return Err(not_allowed(&access));
    }
    let pool = state.database.pool();
    let device = find_device(pool, &request.device_id)
        .await?
        .ok_or_else(|| not_allowed(&access))?;
    let user = find_user(pool, &device.user_id)
        .await?
        .ok_or_else(|| not_allowed(&access))?;
    if user.status != UserStatus::Active {
        return Err(not_allowed(&access));
    }
    let now = now_ms();
    let challenge_id = new_id()?;
    let nonce = random_bytes::<NONCE_LEN>()?.to_vec();
    let expires_at_ms = now + CHALLENGE_LIFETIME_MS;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO login_challenge (challenge_id, device_id, nonce, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&challenge_id)
    .bind(&device.device_id)
    .bind(&nonce)
    .bind(now)
    .bind(expires_at_ms)
    .execute(&mut *tx)
    .await?;
    access.commit(&state, tx).await?;
    Ok(Json(Challenge {
        challenge_id,
        nonce,
        server_id: state.auth.server_id.clone(),
        expires_at_ms,
    }))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    access: Access,
    extract::Json(request): extract::Json<LoginRequest>,
) -> Result<Json<LoggedIn>> {
    access.resource(&request.device_id);
    limit_address(&state, peer)?;
    if !is_device_id(&request.device_id) {
        return Err(not_allowed(&access));
    }
    let limits = &state.auth.limits;
    limits.peek(Limit::AuthPerDevice, &request.device_id)?;
    let result = verify_and_open_session(&state, &access, &request).await;
    if matches!(result, Err(Error::Unauthorized(_))) {
        // Only failures spend the device's allowance.
        let _ = limits.check(Limit::AuthPerDevice, &request.device_id);
    }
    result.map(Json)
}

async fn verify_and_open_session(
    state: &AppState,
    access: &Access,
    request: &LoginRequest,
) -> Result<LoggedIn> {
    let pool = state.database.pool();
    let now = now_ms();
    // Claim the challenge first, in one statement, so that it serves once
    // even when two logins race, whether or not the signature verifies.
    let nonce: Option<Vec<u8>> = sqlx::query_scalar(
        "UPDATE login_challenge SET used_at_ms = $1 \
         WHERE challenge_id = $2 AND device_id = $3 AND used_at_ms IS NULL AND expires_at_ms > $1 \
         RETURNING nonce",
    )
    .bind(now)
    .bind(&request.challenge_id)
    .bind(&request.device_id)
    .fetch_optional(pool)
    .await?;
    let Some(nonce) = nonce else {
        access.reason("challenge_refused");
        return Err(challenge_refusal(state, request, now).await?);
    };

    let device = find_device(pool, &request.device_id)
        .await?
        .ok_or_else(|| not_allowed(access))?;
    let message = login_message(&state.auth.server_id, &device.device_id, &nonce);
    UnparsedPublicKey::new(&ED25519, &device.public_key)
        .verify(&message, &request.signature)
        .map_err(|_| {
            access.reason("bad_signature");
            Error::Unauthorized(
                "the signature does not verify with this device's enrolled key; sign the login \
                 message with the device's own key"
                    .to_owned(),
            )
        })?;

    let session_id = new_id()?;
    let lifetime_s = state.auth.token_lifetime.as_secs().max(1);
    let now_s = u64::try_from(now / 1000).unwrap_or(0);
    let session_expires_ms = now + i64::try_from(lifetime_s * 1000).unwrap_or(i64::MAX / 2);
    // The session exists only if, at this instant, the user is active and
    // the device enrolled: a racing deactivation cannot be outrun.
    let mut tx = pool.begin().await?;
    let opened = sqlx::query(
        "INSERT INTO session (session_id, user_id, device_id, created_at_ms, expires_at_ms, \
         last_seen_at_ms) \
         SELECT $1, u.user_id, d.device_id, $2, $3, $2 FROM device d \
         JOIN app_user u ON u.user_id = d.user_id \
         WHERE d.device_id = $4 AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(&session_id)
    .bind(now)
    .bind(session_expires_ms)
    .bind(&device.device_id)
    .execute(&mut *tx)
    .await?;
    if opened.rows_affected() != 1 {
        return Err(not_allowed(access));
    }
    let token = state
        .auth
        .tokens
        .issue(
            &session_id,
            &device.user_id,
            &device.device_id,
            now_s,
            lifetime_s,
        )
        .map_err(|error| Error::Internal(error.to_string()))?;
    access.actor(&device.user_id, &device.device_id);
    access.commit(state, tx).await?;
    Ok(LoggedIn {
        token,
        session_id,
        expires_at_ms: session_expires_ms,
    })
}

/// Why a challenge could not be claimed, for the error message.
async fn challenge_refusal(state: &AppState, request: &LoginRequest, now: i64) -> Result<Error> {
    let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT device_id, expires_at_ms, used_at_ms FROM login_challenge WHERE challenge_id = $1",
    )
    .bind(&request.challenge_id)
    .fetch_optional(state.database.pool())
    .await?;
    let reason = match row {
        None => "this login challenge is unknown",
        Some((device_id, _, _)) if device_id != request.device_id => {
            "this login challenge was issued to another device"
        }
        Some((_, _, Some(_))) => "this login challenge was already used",
        Some((_, expires_at_ms, None)) if expires_at_ms <= now => {
            "this login challenge has expired"
        }
        Some(_) => "this login challenge could not be used",
    };
    Ok(Error::Unauthorized(format!("{reason}; ask for a new one")))
}

async fn logout(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<StatusCode> {
    access.resource(&caller.session_id);
    finish(async move {
        let mut tx = state.database.pool().begin().await?;
        end_sessions(
            &mut *tx,
            SessionsOf::Session(&caller.session_id),
            "logout",
            now_ms(),
        )
        .await?;
        access.commit(&state, tx).await?;
        state.auth.sessions.evict(&caller.session_id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn whoami(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<Json<Whoami>> {
    access.resource(&caller.user_id);
    let pool = state.database.pool();
    let user = find_user(pool, &caller.user_id)
        .await?
        .ok_or_else(Error::session_ended)?;
    let device = find_device(pool, &caller.device_id)
        .await?
        .ok_or_else(Error::session_ended)?;
    Ok(Json(Whoami {
        user,
        device,
        session_id: caller.session_id,
    }))
}
