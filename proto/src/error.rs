//! The error body every failed request gets:
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! The code is for programs, the message is for people: it says what went
//! wrong and what to do, and never echoes secrets or internal details.

use serde::{Deserialize, Serialize};

/// A machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed in a way no more specific code describes.
    BadRequest,
    /// The body is not well-formed JSON.
    InvalidJson,
    /// The body is JSON but not of the expected shape (missing, unknown or
    /// mistyped fields).
    InvalidRequest,
    /// No valid session: sign in (again).
    Unauthorized,
    /// Signed in, but the role or account does not allow this.
    Forbidden,
    /// The organisation's messaging policy has a version the caller has
    /// not accepted; read it (`GET /v1/policy`) and accept it first.
    PolicyNotAccepted,
    /// No resource lives at this path, or the caller may not know it exists.
    NotFound,
    /// The path exists but does not accept this HTTP method.
    MethodNotAllowed,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The body is not of a content type the route accepts.
    UnsupportedMediaType,
    /// The request conflicts with the current state (e.g. a key already
    /// enrolled).
    Conflict,
    /// Too many attempts; wait as long as `Retry-After` says.
    TooManyRequests,
    /// The server is up but cannot serve yet (e.g. the database is not
    /// answering).
    Unavailable,
    /// The request took longer than the server allows.
    Timeout,
    /// An unexpected server fault; the details are in the server's log.
    Internal,
    /// A code this version of the protocol does not know; the message still
    /// explains the error.
    #[serde(other)]
    Unrecognized,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::PolicyNotAccepted => "policy_not_accepted",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Conflict => "conflict",
            Self::TooManyRequests => "too_many_requests",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::Unrecognized => "unrecognized",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and human message of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do about it, for people.
    pub message: String,
}

impl ErrorBody {
    /// An error body with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    const ALL: [ErrorCode; 15] = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::PolicyNotAccepted,
        ErrorCode::Conflict,
        ErrorCode::TooManyRequests,
        ErrorCode::BadRequest,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];

    #[test]
    fn error_body_round_trips_for_every_code() {
        for code in ALL {
            let body = ErrorBody::new(code, "something went wrong");
            let bytes = json::encode(&body).unwrap();
            assert_eq!(json::decode::<ErrorBody>(&bytes).unwrap(), body);
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.contains(&format!("\"code\":\"{}\"", code.as_str())),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_code_from_a_newer_server_still_decodes() {
        let body: ErrorBody =
            json::decode(br#"{"error":{"code":"quota_exceeded","message":"m"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unrecognized);
    }

    #[test]
    fn unknown_fields_and_trailing_bytes_are_refused() {
        assert!(
            json::decode::<ErrorBody>(br#"{"error":{"code":"internal","message":"m","x":1}}"#)
                .is_err()
        );
        assert!(
            json::decode::<ErrorBody>(br#"{"error":{"code":"internal","message":"m"},"x":1}"#)
                .is_err()
        );
        assert!(
            json::decode::<ErrorBody>(br#"{"error":{"code":"internal","message":"m"}} {}"#)
                .is_err()
        );
    }
}
