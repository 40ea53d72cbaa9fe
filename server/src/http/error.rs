//! The server's one HTTP error type. Each variant maps to a status and an
//! [`ErrorBody`]; internal causes are never sent to the client, only handed
//! to the request-logging middleware, which logs them once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use curbside_proto::{ErrorBody, ErrorCode};

/// `Result` with the HTTP [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a handler or extractor answers with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is not well-formed JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// The body is JSON of the wrong shape.
    #[error("{0}")]
    InvalidRequest(String),
    /// Something else about the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the configured limit.
    #[error("the request body is larger than this server accepts ({limit} bytes); send less")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An MLS message is over the configured limit.
    #[error(
        "the MLS message is larger than this server accepts ({limit} bytes); send a shorter \
         message or split it"
    )]
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An attachment over the server's limit, or over its uploader's
    /// quota; the message says which, and what to do.
    #[error("{0}")]
    AttachmentTooLarge(String),
    /// The body arrived more slowly than the server waits for.
    #[error(
        "the request body arrived too slowly (under 240 bytes a second); send it again over a \
         faster connection"
    )]
    BodyTooSlow,
    /// The body is not JSON.
    #[error("send the request body as JSON with the header Content-Type: application/json")]
    UnsupportedMediaType,
    /// No valid session, or failed authentication; the message says why
    /// and what to do.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The messaging policy has a version the caller has not accepted.
    #[error(
        "your organisation has published a new version of its messaging policy that you have \
         not accepted; read it with `curbside policy show` and accept it with `curbside policy \
         accept` (or in the web app), then try again"
    )]
    PolicyNotAccepted,
    /// The request conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// Over a rate limit.
    #[error("too many attempts; try again in {} seconds", .0.as_secs())]
    TooManyRequests(std::time::Duration),
    /// Nothing here, or nothing the caller may know of.
    #[error(
        "nothing was found at this path: no such resource, or none you may see; check the path \
         and the ids in it"
    )]
    NotFound,
    /// Not found, where saying what was looked for tells the caller nothing
    /// it may not know (an administrator's own resources).
    #[error("{0}")]
    NotFoundWhat(String),
    /// The database does not answer.
    #[error(
        "the server cannot reach its database; try again shortly, or ask its administrator to check the server's log"
    )]
    DatabaseUnavailable(#[source] sqlx::Error),
    /// The database's storage is full or failing.
    #[error(
        "the server's storage is full or failing, so it could not do this; try again shortly, or \
         ask its administrator to free disk space"
    )]
    StorageUnavailable(String),
    /// The server is low on disk space and refuses work without a session.
    #[error(
        "the server is low on disk space and refuses enrollment and sign-in until its \
         administrator frees some; try again later"
    )]
    LowOnSpace,
    /// The access could not be recorded in the audit log, so it was
    /// refused (fail closed).
    #[error(
        "the server could not record this request in its audit log, so it refused it; try again \
         shortly, or ask its administrator to check the server's log"
    )]
    AuditUnavailable(String),
    /// The audit log's stored entries or tree do not match what the server
    /// signed, so no proof can be made: the log was altered behind the
    /// server's back.
    #[error(
        "the audit log's entries or stored tree do not match what the server signed, so it \
         cannot prove them: the log was altered behind the server's back; verify it (`curbside \
         admin audit verify`) to find where, and tell your compliance officer"
    )]
    AuditAltered,
    /// An unexpected failure; the cause is logged, not sent.
    #[error(
        "an unexpected error occurred on the server; it has been logged (quote the request id to the administrator)"
    )]
    Internal(String),
}

/// The cause of a 5xx reply, attached to the response for the
/// request-logging middleware to log once.
#[derive(Debug, Clone)]
pub struct InternalCause {
    /// What went wrong, for the server's log only.
    pub cause: String,
    /// Whether this is a bug (logged at error level) rather than an
    /// operational condition such as the database being down (warn level).
    pub is_bug: bool,
}

impl Error {
    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            Self::PayloadTooLarge { .. }
            | Self::MessageTooLarge { .. }
            | Self::AttachmentTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            Self::NotFound | Self::NotFoundWhat(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Self::PolicyNotAccepted => (StatusCode::FORBIDDEN, ErrorCode::PolicyNotAccepted),
            Self::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            Self::BodyTooSlow => (StatusCode::REQUEST_TIMEOUT, ErrorCode::Timeout),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests),
            Self::DatabaseUnavailable(_)
            | Self::AuditUnavailable(_)
            | Self::StorageUnavailable(_)
            | Self::LowOnSpace => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            Self::Internal(_) | Self::AuditAltered => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
        }
    }

    fn internal_cause(&self) -> Option<InternalCause> {
        match self {
            Self::DatabaseUnavailable(source) => Some(InternalCause {
                cause: source.to_string(),
                is_bug: false,
            }),
            Self::AuditUnavailable(cause) | Self::StorageUnavailable(cause) => {
                Some(InternalCause {
                    cause: cause.clone(),
                    is_bug: false,
                })
            }
            Self::Internal(cause) => Some(InternalCause {
                cause: cause.clone(),
                is_bug: true,
            }),
            Self::AuditAltered => Some(InternalCause {
                cause: "the audit log does not match its signed tree".to_owned(),
                is_bug: false,
            }),
            _ => None,
        }
    }
}

impl From<crate::auth::rate_limit::RetryAfter> for Error {
    fn from(wait: crate::auth::rate_limit::RetryAfter) -> Self {
        Self::TooManyRequests(wait.0)
    }
}

impl From<crate::auth::tickets::TicketError> for Error {
    fn from(error: crate::auth::tickets::TicketError) -> Self {
        match error {
            crate::auth::tickets::TicketError::Random(error) => error.into(),
            crate::auth::tickets::TicketError::Database(error) => error.into(),
        }
    }
}

impl From<crate::ids::RandomError> for Error {
    fn from(error: crate::ids::RandomError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<crate::auth::sessions::SessionError> for Error {
    fn from(error: crate::auth::sessions::SessionError) -> Self {
        match error {
            crate::auth::sessions::SessionError::Ended
            | crate::auth::sessions::SessionError::Expired => Self::session_ended(),
            crate::auth::sessions::SessionError::Database(error) => error.into(),
        }
    }
}

impl Error {
    /// The answer for a token whose session is not (or no longer) valid.
    pub fn session_ended() -> Self {
        Self::Unauthorized(
            "your session is not valid or has ended (logged out, expired, idle, or access \
             removed); log in again"
                .to_owned(),
        )
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::DatabaseUnavailable(error)
            }
            sqlx::Error::Database(database) if is_storage_failure(database.code().as_deref()) => {
                Self::StorageUnavailable(format!(
                    "the database's storage refused a write: SQLSTATE {}",
                    database.code().as_deref().unwrap_or("unknown")
                ))
            }
            // A database's own message can quote the values involved (which
            // may be personal data): log its SQLSTATE and constraint only.
            sqlx::Error::Database(database) => Self::Internal(format!(
                "database error: SQLSTATE {}, constraint {}",
                database.code().as_deref().unwrap_or("unknown"),
                database.constraint().unwrap_or("none")
            )),
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

/// Client-given text fit to quote in an error message: at most 64
/// characters, control characters replaced.
pub fn shown(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Whether a database error code says its storage is full or failing (an
/// operational condition, not a bug): SQLite's `SQLITE_FULL` and
/// `SQLITE_IOERR` (and their extended codes), PostgreSQL's `disk_full`
/// (53100) and `io_error` (58030).
pub fn is_storage_failure(code: Option<&str>) -> bool {
    match code {
        // PostgreSQL's SQLSTATEs are five characters; SQLite's result
        // codes (extended ones included) are at most four digits.
        Some(sqlstate) if sqlstate.len() == 5 => matches!(sqlstate, "53100" | "58030"),
        Some(sqlite) => sqlite
            .parse::<u32>()
            .is_ok_and(|code| matches!(code & 0xff, 10 | 13)),
        None => false,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let cause = self.internal_cause();
        let mut response =
            (status, axum::Json(ErrorBody::new(code, self.to_string()))).into_response();
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response.extensions_mut().insert(code);
        match &self {
            Self::TooManyRequests(wait) => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(wait.as_secs().max(1)),
                );
            }
            Self::Unauthorized(_) => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::is_storage_failure;

    #[test]
    fn full_and_failing_storage_is_told_apart_from_bugs() {
        // SQLITE_FULL, SQLITE_IOERR, SQLITE_IOERR_WRITE.
        for code in ["13", "10", "778"] {
            assert!(is_storage_failure(Some(code)), "{code}");
        }
        // disk_full, io_error.
        for code in ["53100", "58030"] {
            assert!(is_storage_failure(Some(code)), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, unique_violation, serialization_failure,
        // too_many_connections, out_of_memory.
        for code in ["2067", "23505", "40001", "53300", "53200"] {
            assert!(!is_storage_failure(Some(code)), "{code}");
        }
        assert!(!is_storage_failure(None));
    }
}
