//! Why a request to the server failed, and the words for it: a refusal's
//! own message, or a transport error reduced to what a person can act on.

use curbside_proto::{ErrorBody, ErrorCode};
use reqwest::StatusCode;

use crate::show::printable;
use crate::trust::{PinMismatch, TrustError};

/// Why a request to the server failed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server address is not an `https://` URL.
    #[error(
        "{0:?} is not a server address; give it as https://HOST:PORT, e.g. \
         https://curbside.example.org:8443, with no user name, query or fragment (--server)"
    )]
    InvalidServerUrl(String),
    /// The TLS trust settings could not be used.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The server's certificate is not the pinned one.
    #[error(
        "the server's certificate did not match the pinned fingerprint (--pin-sha256): expected {}, \
         but the server presented {}. You may be talking to the wrong server, or its certificate \
         was replaced: confirm the fingerprint with its administrator before trusting it",
        .0.expected, .0.presented
    )]
    PinMismatch(PinMismatch),
    /// The certificate is not trusted by the CA file or the system roots.
    #[error(
        "the server's certificate is not trusted ({detail}); pin it with --pin-sha256 (the server \
         prints its fingerprint at start) or name its CA with --ca-cert"
    )]
    Untrusted {
        /// What rustls objected to.
        detail: String,
    },
    /// No TLS connection could be made.
    #[error(
        "cannot reach the server at {server}: {detail}; check the address and that the server is running"
    )]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// What failed.
        detail: String,
    },
    /// The server is not the one this device enrolled with.
    #[error(
        "this server is not the one this device enrolled with (its server id differs); check \
         --server, or enroll this profile with that server"
    )]
    WrongServer,
    /// The server answered with an error.
    #[error("the server refused: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error code from the body.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server's answer is not what this client understands.
    #[error(
        "the server's answer ({status}) is not what this client expects ({detail}); check that \
         --server points to a Curbside server of a matching version"
    )]
    UnexpectedResponse {
        /// The HTTP status.
        status: StatusCode,
        /// What did not fit.
        detail: String,
    },
}

impl ClientError {
    /// Whether trying again later may work: the server could not be
    /// reached, dropped the connection, was unavailable, or the session
    /// ended (a new sign-in fixes that).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => {
                *status == StatusCode::UNAUTHORIZED || status.is_server_error()
            }
            _ => false,
        }
    }

    /// A short account of the error, for a line of its own.
    pub fn brief(&self) -> String {
        match self {
            Self::Unreachable { server, detail } => format!("cannot reach {server}: {detail}"),
            Self::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// The error a refusal with `status` and `body` stands for.
pub(super) fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    match curbside_proto::json::decode::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Api {
            status,
            code: error.code,
            message: printable(&error.message),
        },
        Err(_) => ClientError::UnexpectedResponse {
            status,
            detail: "the error body is not a Curbside error".to_owned(),
        },
    }
}

/// Finds a rustls error inside `error`'s chain of sources, looking inside
/// I/O errors too (whose `source` skips the error they wrap).
pub(super) fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => error.source(),
        };
    }
    None
}

/// An error and its sources on one line.
pub(super) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    // The common failures, in words; anything else as its chain of causes,
    // without the links to library documentation some of them carry.
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            let said = match io.kind() {
                ErrorKind::ConnectionRefused => Some("nothing is listening there"),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => Some("the connection was cut"),
                ErrorKind::TimedOut => Some("it did not answer in time"),
                ErrorKind::NotFound
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable => Some("that host cannot be reached"),
                _ => None,
            };
            if let Some(said) = said {
                return said.to_owned();
            }
        }
        if let Some(request) = error.downcast_ref::<reqwest::Error>()
            && request.is_timeout()
        {
            return "it did not answer in time".to_owned();
        }
        current = error.source();
    }
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let more = source.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        current = source.source();
    }
    if text.contains("close_notify") {
        return "the connection was cut".to_owned();
    }
    text.split_whitespace()
        .filter(|word| !word.starts_with("https://docs.rs"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(':')
        .to_owned()
}
