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

use super::AppState;
use super::error::{Error, Result};
use super::extract;
use crate::auth::rate_limit::Limit;
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

fn limit(state: &AppState, peer: SocketAddr, device_id: &str) -> Result<()> {
    let limits = &state.auth.limits;
    limits
        .check(Limit::AuthPerAddress, &peer.ip().to_string())
        .and_then(|()| limits.check(Limit::AuthPerDevice, device_id))
        .map_err(|wait| Error::TooManyRequests(wait.0))
}

fn not_allowed() -> Error {
    Error::Unauthorized(
        "this device cannot sign in: it is not enrolled here, was removed, or its user is \
         deactivated; ask your administrator"
            .to_owned(),
    )
}

async fn challenge(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    extract::Json(request): extract::Json<ChallengeRequest>,
) -> Result<Json<Challenge>> {
    limit(&state, peer, &request.device_id)?;
    let pool = state.database.pool();
    let device = find_device(pool, &request.device_id)
        .await?
        .ok_or_else(not_allowed)?;
    let user = find_user(pool, &device.user_id)
        .await?
        .ok_or_else(not_allowed)?;
    if user.status != UserStatus::Active {
        return Err(not_allowed());
    }
    let now = now_ms();
    let challenge_id = new_id()?;
    let nonce = random_bytes::<NONCE_LEN>()?.to_vec();
    let expires_at_ms = now + CHALLENGE_LIFETIME_MS;
    sqlx::query(
        "INSERT INTO login_challenge (challenge_id, device_id, nonce, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&challenge_id)
    .bind(&device.device_id)
    .bind(&nonce)
    .bind(now)
    .bind(expires_at_ms)
    .execute(pool)
    .await?;
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
    extract::Json(request): extract::Json<LoginRequest>,
) -> Result<Json<LoggedIn>> {
    limit(&state, peer, &request.device_id)?;
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    let row: Option<(String, Vec<u8>, i64, Option<i64>)> = sqlx::query_as(
        "SELECT device_id, nonce, expires_at_ms, used_at_ms FROM login_challenge \
         WHERE challenge_id = $1",
    )
    .bind(&request.challenge_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((device_id, nonce, expires_at_ms, used_at_ms)) = row else {
        return Err(Error::Unauthorized(
            "this login challenge is unknown; ask for a new one".to_owned(),
        ));
    };
    if device_id != request.device_id {
        return Err(Error::Unauthorized(
            "this login challenge was issued to another device; ask for a new one".to_owned(),
        ));
    }
    if used_at_ms.is_some() {
        return Err(Error::Unauthorized(
            "this login challenge was already used; ask for a new one".to_owned(),
        ));
    }
    if expires_at_ms <= now {
        return Err(Error::Unauthorized(
            "this login challenge has expired; ask for a new one".to_owned(),
        ));
    }
    // Single use, whether or not the signature turns out to verify.
    sqlx::query(
        "UPDATE login_challenge SET used_at_ms = $1 WHERE challenge_id = $2 AND used_at_ms IS NULL",
    )
    .bind(now)
    .bind(&request.challenge_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let pool = state.database.pool();
    let device = find_device(pool, &device_id)
        .await?
        .ok_or_else(not_allowed)?;
    let user = find_user(pool, &device.user_id)
        .await?
        .ok_or_else(not_allowed)?;
    if user.status != UserStatus::Active {
        return Err(not_allowed());
    }
    let message = login_message(&state.auth.server_id, &device.device_id, &nonce);
    UnparsedPublicKey::new(&ED25519, &device.public_key)
        .verify(&message, &request.signature)
        .map_err(|_| {
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
    sqlx::query(
        "INSERT INTO session (session_id, user_id, device_id, created_at_ms, expires_at_ms, \
         last_seen_at_ms) VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(&session_id)
    .bind(&user.user_id)
    .bind(&device.device_id)
    .bind(now)
    .bind(session_expires_ms)
    .execute(pool)
    .await?;
    let token = state
        .auth
        .tokens
        .issue(
            &session_id,
            &user.user_id,
            &device.device_id,
            now_s,
            lifetime_s,
        )
        .map_err(|error| Error::Internal(error.to_string()))?;
    Ok(Json(LoggedIn {
        token,
        session_id,
        expires_at_ms: session_expires_ms,
    }))
}

async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode> {
    end_sessions(
        state.database.pool(),
        SessionsOf::Session(&caller.session_id),
        "logout",
        now_ms(),
    )
    .await?;
    state.auth.sessions.evict(&caller.session_id);
    Ok(StatusCode::NO_CONTENT)
}

async fn whoami(State(state): State<AppState>, caller: Caller) -> Result<Json<Whoami>> {
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
