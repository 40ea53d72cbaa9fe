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
    Challenge, ChallengeRequest, LoggedIn, LoginRequest, NONCE_LEN, Whoami, login_message,
};
use ring::signature::{ED25519, UnparsedPublicKey};

use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::{AppState, finish};
use crate::auth::CHALLENGE_LIFETIME_MS;
use crate::auth::rate_limit::{Limit, address_key};
use crate::auth::sessions::{Caller, SessionsOf, end_sessions};
use crate::clock::now_ms;
use crate::db::identity::{find_device, find_user};
use crate::ids::{new_id, random_bytes};

/// The login routes and `GET /v1/me`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/challenge", post(challenge))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(whoami))
}

fn limit_address(state: &AppState, peer: SocketAddr) -> Result<()> {
    state
        .auth
        .limits
        .check(Limit::AuthPerAddress, &address_key(peer.ip()))?;
    Ok(())
}

/// The rate-limit key of failed logins: the client's address and the
/// device, so that someone else's bogus logins cannot spend a device's
/// allowance (and lock it out).
fn failure_key(peer: SocketAddr, device_id: &str) -> String {
    format!("{} {device_id}", address_key(peer.ip()))
}

fn malformed_device_id() -> Error {
    Error::InvalidRequest(
        "`device_id` must be the device's id: 32 lower-case hex digits".to_owned(),
    )
}

/// The refusal of a login that names a device that may not sign in, or
/// whose signature does not verify: the same answer for both, so that it
/// tells nothing about which devices exist; the audit entry says which.
fn login_refused(access: &Access, reason: &'static str) -> Error {
    access.reason(reason);
    Error::Unauthorized(
        "the sign-in was refused: this device is not enrolled and active on this server, or the \
         signature does not match its key; if your device was removed or your account \
         deactivated, ask your administrator"
            .to_owned(),
    )
}

/// Issues a challenge for any well-formed device id, enrolled or not, with
/// the same work and answer for each: whether the device may sign in is
/// decided at login, so that a challenge tells no one which devices are
/// active (nor, by its timing, which users are deactivated).
async fn challenge(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    access: Access,
    extract::Json(request): extract::Json<ChallengeRequest>,
) -> Result<Json<Challenge>> {
    access.resource(&request.device_id);
    limit_address(&state, peer)?;
    if !crate::ids::is_id(&request.device_id) {
        return Err(malformed_device_id());
    }
    let now = now_ms();
    let challenge_id = new_id()?;
    let nonce = random_bytes::<NONCE_LEN>()?.to_vec();
    let expires_at_ms = now + CHALLENGE_LIFETIME_MS;
    let mut tx = state.database.pool().begin().await?;
    sqlx::query(
        "INSERT INTO login_challenge (challenge_id, device_id, nonce, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&challenge_id)
    .bind(&request.device_id)
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
    if !crate::ids::is_id(&request.device_id) {
        return Err(malformed_device_id());
    }
    let limits = &state.auth.limits;
    let failures = failure_key(peer, &request.device_id);
    limits.peek(Limit::FailedLoginsPerAddressAndDevice, &failures)?;
    let result = verify_and_open_session(&state, &access, &request).await;
    if matches!(result, Err(Error::Unauthorized(_))) {
        // Only failures spend the allowance.
        let _ = limits.check(Limit::FailedLoginsPerAddressAndDevice, &failures);
    }
    result.map(Json)
}

/// A valid Ed25519 public key no device holds (made with `openssl genpkey
/// -algorithm ed25519`, its private key thrown away), for checking a
/// signature when the named device may not sign in, so that both refusals
/// take the same time.
const NO_DEVICE_KEY: [u8; 32] = [
    0xc9, 0x05, 0x76, 0x2d, 0x70, 0x9c, 0x26, 0x9c, 0x6a, 0x80, 0xe1, 0xa8, 0x75, 0x8b, 0x46, 0xab,
    0x2b, 0x13, 0x03, 0xb6, 0x91, 0x49, 0x8b, 0xb9, 0xba, 0x7a, 0xbb, 0x3d, 0x81, 0xf1, 0xf2, 0xab,
];

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

    // One query, whatever the device's state, then one signature check.
    let device: Option<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT d.user_id, d.public_key FROM device d JOIN app_user u ON u.user_id = d.user_id \
         WHERE d.device_id = $1 AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(&request.device_id)
    .fetch_optional(pool)
    .await?;
    let message = login_message(&state.auth.server_id, &request.device_id, &nonce);
    let key = device
        .as_ref()
        .map_or(&NO_DEVICE_KEY[..], |(_, key)| key.as_slice());
    let verified = UnparsedPublicKey::new(&ED25519, key)
        .verify(&message, &request.signature)
        .is_ok();
    let user_id = match (device, verified) {
        (Some((user_id, _)), true) => user_id,
        (Some(_), false) => return Err(login_refused(access, "bad_signature")),
        (None, _) => return Err(login_refused(access, "device_not_allowed")),
    };

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
    .bind(&request.device_id)
    .execute(&mut *tx)
    .await?;
    if opened.rows_affected() != 1 {
        return Err(login_refused(access, "device_not_allowed"));
    }
    let token = state
        .auth
        .tokens
        .issue(&session_id, &user_id, &request.device_id, now_s, lifetime_s)
        .map_err(|error| Error::Internal(error.to_string()))?;
    access.actor(&user_id, &request.device_id);
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
