//! Request extractors that answer in the API's own error format.

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::access;
use super::error::Error;
use super::state::AppState;
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::{Caller, SessionError};
use crate::auth::tokens::Rejected;
use curbside_proto::identity::Role;

/// The configured largest request body, attached to every request so that
/// extractors can name it in their errors.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body, decoded strictly (unknown fields and trailing bytes
/// are refused) with errors in the API's format: 415 for a body that is not
/// declared as JSON, 413 over the size limit, 400 for malformed JSON or the
/// wrong shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !declares_json(request.headers()) {
            return Err(Error::UnsupportedMediaType);
        }
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(crate::config::DEFAULT_MAX_BODY_BYTES, |limit| limit.0);
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection {
                    BytesRejection::FailedToBufferBody(_)
                        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
                    {
                        Error::PayloadTooLarge { limit }
                    }
                    _ => Error::BadRequest(
                        "the request body could not be read; send it again".to_owned(),
                    ),
                })?;
        curbside_proto::json::decode(&bytes)
            .map(Json)
            .map_err(json_error)
    }
}

/// Marks the routes (threads, welcomes, live events) that a user may call
/// only once they have accepted the current messaging policy; the
/// [`Caller`] extractor refuses the rest with 403 `policy_not_accepted`.
#[derive(Debug, Clone, Copy)]
pub struct PolicyGate;

/// Marks the route (`GET /v1/events`) where a browser, whose WebSocket
/// cannot send an `Authorization` header, may instead offer a single-use
/// ticket (`POST /v1/events/ticket`) as the subprotocol
/// `curbside.ticket.TICKET`: a header, never the URL, taken once.
#[derive(Debug, Clone, Copy)]
pub struct TicketGate;

/// The subprotocol prefix that carries a live-events ticket.
pub const TICKET_PROTOCOL_PREFIX: &str = "curbside.ticket.";

/// The ticket offered in `Sec-WebSocket-Protocol`, if any.
fn offered_ticket(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(TICKET_PROTOCOL_PREFIX))
}

/// The signed-in caller: a valid token in the `Authorization` header (and
/// nowhere else), or on the live-events route a valid ticket, whose
/// session is live.
impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let access = access::of(parts).cloned();
        let refuse = |reason: &'static str, error: Error| {
            if let Some(access) = &access {
                access.reason(reason);
            }
            error
        };
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let ticket = if parts.extensions.get::<TicketGate>().is_some() {
            offered_ticket(&parts.headers)
        } else {
            None
        };
        let (session_id, user_id, device_id) = match (bearer, ticket) {
            (Some(token), _) => match state.auth.tokens.verify(token.trim()) {
                Ok(claims) => (claims.jti, claims.sub, claims.did),
                Err(Rejected::Expired(claims)) => {
                    if let Some(access) = &access {
                        access.actor(&claims.sub, &claims.did);
                    }
                    return Err(refuse("session_expired", Error::session_ended()));
                }
                Err(Rejected::Invalid) => {
                    return Err(refuse("invalid_token", Error::session_ended()));
                }
            },
            (None, Some(ticket)) => {
                let holder = crate::auth::tickets::take(&state.database, ticket)
                    .await?
                    .ok_or_else(|| {
                        refuse(
                            "invalid_ticket",
                            Error::Unauthorized(
                                "this live-events ticket is unknown, used or expired: ask for a new one \
                                 (POST /v1/events/ticket) just before connecting"
                                    .to_owned(),
                            ),
                        )
                    })?;
                (holder.session_id, holder.user_id, holder.device_id)
            }
            (None, None) => {
                return Err(refuse(
                    "no_token",
                    Error::Unauthorized(
                        "sign in first: send your session token as Authorization: Bearer TOKEN"
                            .to_owned(),
                    ),
                ));
            }
        };
        // The token (or the ticket it bought) is genuine: whoever holds it
        // acts as its subject, live session or not.
        if let Some(access) = &access {
            access.actor(&user_id, &device_id);
        }
        state
            .auth
            .sessions
            .check(
                &state.database,
                &session_id,
                &user_id,
                &device_id,
                crate::clock::now_ms(),
            )
            .await
            .map_err(|error| match error {
                SessionError::Expired => refuse("session_expired", error.into()),
                SessionError::Ended => refuse("session_ended", error.into()),
                other => other.into(),
            })
            .and_then(|caller| {
                // Every request of a signed-in user writes an audit entry:
                // none may send them at machine speed.
                state
                    .auth
                    .limits
                    .check(Limit::RequestsPerUser, &caller.user_id)?;
                if caller.policy_pending && parts.extensions.get::<PolicyGate>().is_some() {
                    return Err(refuse("policy_not_accepted", Error::PolicyNotAccepted));
                }
                Ok(caller)
            })
    }
}

/// A signed-in administrator; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::Admin {
            if let Some(access) = access::of(parts) {
                access.reason("not_admin");
            }
            return Err(Error::Forbidden(
                "only administrators may do this; ask one of your administrators".to_owned(),
            ));
        }
        Ok(Self(caller))
    }
}

/// A signed-in administrator or auditor; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Reviewer {
    /// The reviewer's user id.
    pub user_id: String,
}

impl FromRequestParts<AppState> for Reviewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !matches!(caller.role, Role::Admin | Role::Auditor) {
            if let Some(access) = access::of(parts) {
                access.reason("not_reviewer");
            }
            return Err(Error::Forbidden(
                "only administrators and auditors may do this; ask one of your administrators"
                    .to_owned(),
            ));
        }
        Ok(Self {
            user_id: caller.user_id,
        })
    }
}

fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Describes a decoding error without echoing the values the client sent
/// (they may be secrets); field names are safe to name.
fn json_error(error: serde_json::Error) -> Error {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Error::InvalidJson(format!("the request body is not valid JSON ({at})"))
        }
        Category::Data => {
            let text = error.to_string();
            let names_a_field = ["unknown field", "missing field", "duplicate field"]
                .iter()
                .any(|prefix| text.starts_with(prefix));
            if names_a_field {
                // The field name is the client's own text: bound what is echoed.
                let text: String = text.chars().take(200).collect();
                Error::InvalidRequest(format!("the request body is not as expected: {text}"))
            } else {
                Error::InvalidRequest(format!(
                    "the request body has a value of the wrong type or out of range ({at}); \
                     check it against the API document at /v1/openapi.json"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_must_be_json() {
        let mut headers = HeaderMap::new();
        assert!(!declares_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!declares_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(declares_json(&headers));
    }

    #[test]
    fn data_errors_do_not_echo_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Probe {
            count: u8,
        }
        let error = serde_json::from_str::<Probe>(r#"{"count":"secret-value"}"#).unwrap_err();
        let message = json_error(error).to_string();
        assert!(!message.contains("secret-value"), "{message}");
    }
}

/// Why a service's token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRefusal {
    /// The service is off: no token is configured.
    Off,
    /// No bearer token, or not the configured one.
    Wrong,
}

/// Checks that the request carries `token` as its bearer token (any case
/// of `Bearer`): the caller is then `service` (the audit entry has no
/// actor, and refusals count against the service); otherwise the entry's
/// reason is `SERVICE_off` or `bad_SERVICE_token`.
pub fn service_token(
    parts: &Parts,
    token: Option<&crate::config::ServiceToken>,
    service: &'static str,
    reasons: (&'static str, &'static str),
) -> Result<(), ServiceRefusal> {
    let access = access::of(parts);
    let refuse = |reason: &'static str, refusal: ServiceRefusal| {
        if let Some(access) = access {
            access.reason(reason);
        }
        Err(refusal)
    };
    let Some(token) = token else {
        return refuse(reasons.0, ServiceRefusal::Off);
    };
    let given = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(given) if token.matches(given) => {
            if let Some(access) = access {
                access.service(service);
            }
            Ok(())
        }
        _ => refuse(reasons.1, ServiceRefusal::Wrong),
    }
}
