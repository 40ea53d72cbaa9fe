//! Challenge-response login, logout and `whoami`.
//!
//! A device asks for a single-use nonce, signs
//! `curbside_proto::identity::login_message` with its Ed25519 key, and gets
//! a short-lived token bound to a new session row. Logging in again is the
//! only way to renew a token.

use std::net::SocketAddr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use curbside_proto::identity::{
    Challenge, ChallengeRequest, LoggedIn, LoginRequest, NONCE_LEN, Whoami, login_message,
};
use curbside_proto::routes;
use ring::signature::{ED25519, UnparsedPublicKey};

use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::state::{AppState, finish};
use crate::auth::CHALLENGE_LIFETIME_MS;
use crate::auth::rate_limit::{Limit, address_key};
use crate::auth::sessions::{Caller, SessionsOf, end_sessions};
use crate::clock::now_ms;
use crate::db::login_challenge::{self, ChallengeState};
use crate::db::{app_user, device, session};
use crate::ids::{new_id, random_bytes};

/// The login routes and `GET /v1/me`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(challenge))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(whoami))
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
#[utoipa::path(
    post,
    path = routes::AUTH_CHALLENGE,
    operation_id = "auth.challenge",
    tag = "device",
    request_body = ChallengeRequest,
    responses((status = 200, description = "A challenge for the device to sign", body = Challenge)),
)]
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
    login_challenge::insert(
        &mut *tx,
        &challenge_id,
        &request.device_id,
        &nonce,
        now,
        expires_at_ms,
    )
    .await?;
    access.commit(&state, tx).await?;
    Ok(Json(Challenge {
        challenge_id,
        nonce,
        server_id: state.auth.server_id.clone(),
        expires_at_ms,
    }))
}

#[utoipa::path(
    post,
    path = routes::AUTH_LOGIN,
    operation_id = "auth.login",
    tag = "device",
    request_body = LoginRequest,
    responses((status = 200, description = "A session for the device", body = LoggedIn)),
)]
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
    let result = verify_and_open_session(&state, &access, &request, peer).await;
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
    peer: SocketAddr,
) -> Result<LoggedIn> {
    let pool = state.database.pool();
    let now = now_ms();
    // Claim the challenge first, in one statement, so that it serves once
    // even when two logins race, whether or not the signature verifies.
    let nonce =
        login_challenge::claim(pool, &request.challenge_id, &request.device_id, now).await?;
    let Some(nonce) = nonce else {
        access.reason("challenge_refused");
        return Err(challenge_refusal(state, request, now).await?);
    };

    // One query, whatever the device's state, then one signature check.
    let device = device::find_sign_in_key(pool, &request.device_id).await?;
    let message = login_message(&state.auth.server_id, &request.device_id, &nonce);
    let key = device
        .as_ref()
        .map_or(&NO_DEVICE_KEY[..], |device| device.public_key.as_slice());
    let verified = UnparsedPublicKey::new(&ED25519, key)
        .verify(&message, &request.signature)
        .is_ok();
    let user_id = match (device, verified) {
        (Some(device), true) => device.user_id,
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
    let opened = session::open(
        &mut *tx,
        &session_id,
        &request.device_id,
        &peer.ip().to_canonical().to_string(),
        (now, session_expires_ms),
    )
    .await?;
    if !opened {
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
    let challenge =
        login_challenge::find_state(state.database.pool(), &request.challenge_id).await?;
    let reason = match challenge {
        None => "this login challenge is unknown",
        Some(ChallengeState { device_id, .. }) if device_id != request.device_id => {
            "this login challenge was issued to another device"
        }
        Some(ChallengeState {
            used_at_ms: Some(_),
            ..
        }) => "this login challenge was already used",
        Some(ChallengeState {
            expires_at_ms,
            used_at_ms: None,
            ..
        }) if expires_at_ms <= now => "this login challenge has expired",
        Some(_) => "this login challenge could not be used",
    };
    Ok(Error::Unauthorized(format!("{reason}; ask for a new one")))
}

#[utoipa::path(
    post,
    path = routes::AUTH_LOGOUT,
    operation_id = "auth.logout",
    tag = "session",
    security(("session" = [])),
    responses((status = 204, description = "The session has ended")),
)]
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

#[utoipa::path(
    get,
    path = routes::ME,
    operation_id = "identity.whoami",
    tag = "user",
    security(("session" = [])),
    responses((status = 200, description = "The signed-in user and device", body = Whoami)),
)]
async fn whoami(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<Json<Whoami>> {
    access.resource(&caller.user_id);
    let pool = state.database.pool();
    let user = app_user::find(pool, &caller.user_id)
        .await?
        .ok_or_else(Error::session_ended)?;
    let device = device::find(pool, &caller.device_id)
        .await?
        .ok_or_else(Error::session_ended)?;
    Ok(Json(Whoami {
        user,
        device,
        session_id: caller.session_id,
    }))
}
