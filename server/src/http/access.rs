//! One audit entry for every request to a protected route.
//!
//! The [`record`] middleware runs around every route but the public ones
//! (health, readiness, the audit key). It names the request's action and
//! resource from its route, hands the handler an [`Access`] to fill in (the
//! caller, a resource made by the request, a finer reason for a refusal),
//! and when the handler has answered, appends the entry and waits until it
//! is durable before the response leaves. If the entry cannot be written,
//! the response is replaced by a 503 without its data: fail closed.
//!
//! A handler that changes something appends its entry in its own
//! transaction with [`Access::commit`], so the change and its entry commit
//! together; the middleware then writes nothing more. A request that fails
//! before or instead of committing gets a `denied` entry from the
//! middleware, with the error's code as its reason.
//!
//! The request runs in a task of its own, so a client that hangs up cannot
//! cancel it between its work and its entry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use curbside_proto::audit::Outcome;
use curbside_proto::{ErrorCode, RequestId};
use sqlx::{Any, Transaction};

use super::error::{Error, Result};
use super::refusals::{Refused, TARPIT};
use super::state::AppState;
use super::vocabulary::Kind;
use crate::audit::{AuditError, NewEntry};
use crate::auth::rate_limit::address_key;
use crate::clock::now_ms;

/// The routes that sign a device in: they are called without a session.
const SIGN_IN_ROUTES: [&str; 3] = ["/v1/enroll", "/v1/auth/challenge", "/v1/auth/login"];

/// Routes anyone may call without an entry: they reveal nothing protected.
pub const PUBLIC_ROUTES: [&str; 4] = [
    curbside_proto::health::HEALTH_PATH,
    curbside_proto::health::READY_PATH,
    curbside_proto::audit_review::KEY_PATH,
    curbside_proto::OPENAPI_PATH,
];

/// The longest resource id recorded; longer (client-chosen) text is cut.
const MAX_RESOURCE_ID: usize = 128;

/// What the entry of one request will say, filled in as it is handled.
#[derive(Debug)]
struct Record {
    kind: Kind,
    resource_id: Option<String>,
    actor_user: Option<String>,
    actor_device: Option<String>,
    reason: Option<&'static str>,
    evidence: Option<String>,
    /// A service authenticated by its own token (the identity provider
    /// through SCIM) is acting: there is no actor, but the caller is known.
    service: Option<&'static str>,
    written: bool,
}

/// The audit record of the current request. Handlers and extractors take
/// it to name the caller and the resource, and writes commit through it.
#[derive(Debug, Clone)]
pub struct Access {
    record: Arc<Mutex<Record>>,
    request_id: String,
    client_addr: Option<String>,
    /// The client's address as rate limits count it (an IPv6 client's
    /// /64).
    address_key: Option<String>,
    /// The request's HTTP version (a refusal may close its connection).
    version: axum::http::Version,
}

impl Access {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Names who is acting.
    pub fn actor(&self, user_id: &str, device_id: &str) {
        let mut record = self.lock();
        record.actor_user = Some(user_id.to_owned());
        record.actor_device = Some(device_id.to_owned());
    }

    /// Says that `service` (authenticated by its configured token) is
    /// acting: the entry has no actor, and its refusals count against the
    /// service, not its address.
    pub fn service(&self, service: &'static str) {
        self.lock().service = Some(service);
    }

    /// Names the resource (when the route's path does not, or the request
    /// made it). Empty text names none.
    pub fn resource(&self, id: &str) {
        self.lock().resource_id = bounded_id(id);
    }

    /// The request's id.
    pub fn request_id(&self) -> String {
        self.request_id.clone()
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<String> {
        self.client_addr.clone()
    }

    /// A finer reason than the error code, should the request be refused.
    pub fn reason(&self, reason: &'static str) {
        self.lock().reason = Some(reason);
    }

    /// What the client proved with its own key (a receipt's signature),
    /// kept in the entry if the request is allowed.
    pub fn evidence(&self, evidence: String) {
        self.lock().evidence = Some(evidence);
    }

    /// The entry as it stands, with this outcome and reason.
    fn entry(&self, outcome: Outcome, reason: &str) -> NewEntry {
        let record = self.lock();
        NewEntry {
            time_ms: now_ms(),
            actor_user: record.actor_user.clone(),
            actor_device: record.actor_device.clone(),
            client_addr: self.client_addr.clone(),
            request_id: self.request_id.clone(),
            action: record.kind.action.to_owned(),
            resource_type: record.kind.resource_type.to_owned(),
            resource_id: record.resource_id.clone(),
            outcome,
            reason: reason.to_owned(),
            evidence: match outcome {
                Outcome::Allowed => record.evidence.clone(),
                Outcome::Denied => None,
            },
        }
    }

    /// Appends this request's `allowed` entry in `tx` and commits it: the
    /// change and its entry are durable together, or neither is.
    pub async fn commit(&self, state: &AppState, mut tx: Transaction<'_, Any>) -> Result<()> {
        let entry = self.entry(Outcome::Allowed, "ok");
        state
            .audit
            .append_in(&mut tx, &[entry])
            .await
            .map_err(|error| audit_unavailable(&error))?;
        tx.commit().await?;
        self.lock().written = true;
        Ok(())
    }

    /// Hands `message` with this request's `allowed` entry to the audit
    /// writer, which appends them together in its next batch; returns the
    /// message's sequence number, or `None` if it was refused (then nothing
    /// was written and the request's entry is still to come).
    pub async fn append_message(
        &self,
        state: &AppState,
        message: crate::db::message_batch::NewMessage,
    ) -> Result<Option<i64>> {
        let entry = self.entry(Outcome::Allowed, "ok");
        let seq = state
            .audit
            .append_message(message, entry)
            .await
            .map_err(|error| audit_unavailable(&error))?;
        if seq.is_some() {
            self.lock().written = true;
        }
        Ok(seq)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| Error::Internal("the route is not audited".to_owned()))
    }
}

/// The access of a request, if it is audited (extractors use it to name
/// the caller).
pub fn of(parts: &Parts) -> Option<&Access> {
    parts.extensions.get::<Access>()
}

/// Records an audit entry for the request; see the module's comment.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
    else {
        // No route matched: a 404 that touches nothing.
        return next.run(request).await;
    };
    if PUBLIC_ROUTES.contains(&route.as_str()) {
        return next.run(request).await;
    }
    let kind = state.vocabulary.classify(request.method(), &route);
    let (mut parts, body) = request.into_parts();
    let resource_id = match kind.id_param {
        Some(name) => RawPathParams::from_request_parts(&mut parts, &())
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(key, _)| *key == name)
                    .and_then(|(_, value)| bounded_id(value))
            }),
        None if kind.resource_type == "route" => Some(route.clone()),
        None => None,
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let access = Access {
        record: Arc::new(Mutex::new(Record {
            kind,
            resource_id,
            actor_user: None,
            actor_device: None,
            reason: None,
            evidence: None,
            service: None,
            written: false,
        })),
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map_or_else(String::new, |id| id.as_str().to_owned()),
        client_addr: peer.map(|peer| peer.to_canonical().to_string()),
        address_key: peer.map(address_key),
        version: parts.version,
    };
    // Sign-in itself (enrollment, challenge, login) waits while the disk is
    // nearly full; other requests without a session do too, and while the
    // address is past its refusal allowance (sign-in keeps its own
    // per-address limits, so that one machine behind a shared address
    // cannot lock its colleagues out).
    let signing_in = SIGN_IN_ROUTES.contains(&route.as_str());
    let without_session = signing_in || !parts.headers.contains_key(header::AUTHORIZATION);
    if without_session {
        let early = if state.disk.is_low() {
            Some((Error::LowOnSpace, "disk_space_low"))
        } else if signing_in {
            None
        } else {
            match access
                .address_key
                .as_deref()
                .map(|key| state.refusals.allowance(key))
            {
                Some(Err(wait)) => Some((Error::from(wait), "rate_limited")),
                _ => None,
            }
        };
        if let Some((error, reason)) = early {
            let refused = Refused {
                address: access.address_key.clone(),
                actor_user: None,
                action: kind.action,
                reason,
            };
            state.refusals.count(&refused, now_ms());
            return slowly(&state, &access, parts.version, error.into_response()).await;
        }
    }
    parts.extensions.insert(access.clone());
    let request = Request::from_parts(parts, body);
    let handled = tokio::spawn(async move {
        let response = next.run(request).await;
        finish(&state, &access, response).await
    });
    handled.await.unwrap_or_else(|error| {
        Error::Internal(format!("an audited request's task failed: {error}")).into_response()
    })
}

/// Appends the request's entry unless its transaction already did, and
/// returns the response only once the entry is durable. A refusal without
/// a session, or for going too fast, past its key's allowance is counted
/// instead (`http::refusals`); one without a session is answered after a
/// pause.
async fn finish(state: &AppState, access: &Access, response: Response) -> Response {
    let (written, reason, actor, service) = {
        let record = access.lock();
        (
            record.written,
            record.reason,
            record.actor_user.clone(),
            record.service,
        )
    };
    if written {
        return response;
    }
    let status = response.status();
    // 101: a WebSocket was opened.
    let entry = if status.is_success() || status == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        access.entry(Outcome::Allowed, "ok")
    } else {
        let code = match response.extensions().get::<ErrorCode>() {
            Some(ErrorCode::TooManyRequests) => "rate_limited",
            Some(code) => code.as_str(),
            None => status_reason(status),
        };
        let reason = reason.unwrap_or(code);
        // Without a valid session: no token, a bad one, or one whose session
        // has ended (a replayed token names its user, but is no session).
        let unauthenticated = (actor.is_none() && service.is_none())
            || status == axum::http::StatusCode::UNAUTHORIZED;
        let allowance = match (&actor, service) {
            (Some(user), _) => format!("user:{user}"),
            (None, Some(service)) => format!("service:{service}"),
            (None, None) => access.address_key.clone().unwrap_or_default(),
        };
        let low_on_space = unauthenticated && state.disk.is_low();
        if low_on_space || !state.refusals.spend(&allowance) {
            let refused = Refused {
                address: access.address_key.clone(),
                actor_user: actor,
                action: access.lock().kind.action,
                reason,
            };
            state.refusals.count(&refused, now_ms());
            // A flood without a session slows itself down; a signed-in
            // user is known, and their own limits hold them.
            if unauthenticated {
                return slowly(state, access, access.version, response).await;
            }
            return response;
        }
        access.entry(Outcome::Denied, reason)
    };
    match state.audit.append(entry).await {
        Ok(_) => response,
        Err(error) => audit_unavailable(&error).into_response(),
    }
}

/// Answers a counted refusal without a session after [`TARPIT`], or at
/// once with the connection closed when its address already has as many
/// refusals waiting as it may.
async fn slowly(
    state: &AppState,
    access: &Access,
    version: axum::http::Version,
    mut response: Response,
) -> Response {
    let address = access.address_key.clone().unwrap_or_default();
    match state.refusals.wait(&address) {
        Some(_waiting) => tokio::time::sleep(TARPIT).await,
        None => super::body_rate::close_after(&mut response, version),
    }
    response
}

/// The refusal of an access whose entry could not be written. A
/// database's own message can quote the values involved, so only its
/// SQLSTATE reaches the server's log.
fn audit_unavailable(error: &AuditError) -> Error {
    Error::AuditUnavailable(match error {
        AuditError::Database(sqlx::Error::Database(database)) => format!(
            "the audit log cannot be written: SQLSTATE {}",
            database.code().as_deref().unwrap_or("unknown")
        ),
        other => other.to_string(),
    })
}

/// The reason code of an error response that did not come from [`Error`]
/// (axum's own 405, a layer's 408).
fn status_reason(status: axum::http::StatusCode) -> &'static str {
    use axum::http::StatusCode;
    match status {
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed.as_str(),
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge.as_str(),
        StatusCode::REQUEST_TIMEOUT => ErrorCode::Timeout.as_str(),
        StatusCode::NOT_FOUND => ErrorCode::NotFound.as_str(),
        status if status.is_server_error() => ErrorCode::Internal.as_str(),
        _ => ErrorCode::BadRequest.as_str(),
    }
}

/// A client-chosen id, made safe for every export format: anything but
/// ASCII letters, digits, `_` and `.` is percent-encoded (so no text can
/// start a spreadsheet formula or break a line), and the result is cut to
/// [`MAX_RESOURCE_ID`] bytes. Empty text is no id: an entry never holds an
/// empty optional field, so CSV's empty cell means absent.
fn bounded_id(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len().min(MAX_RESOURCE_ID));
    for byte in text.bytes() {
        let piece = if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.') {
            char::from(byte).to_string()
        } else {
            format!("%{byte:02X}")
        };
        if out.len() + piece.len() > MAX_RESOURCE_ID {
            break;
        }
        out.push_str(&piece);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_ids_cannot_inject() {
        let id = |text: &str| bounded_id(text).unwrap();
        assert_eq!(id("0123abcd"), "0123abcd");
        assert_eq!(id("=cmd|'/c calc'!A1"), "%3Dcmd%7C%27%2Fc%20calc%27%21A1");
        assert_eq!(id("a\nb,c\"d"), "a%0Ab%2Cc%22d");
        assert_eq!(id("-1"), "%2D1");
        assert!(id(&"é".repeat(200)).len() <= MAX_RESOURCE_ID);
        assert_eq!(bounded_id(""), None);
    }
}
