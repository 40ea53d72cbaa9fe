//! Why an audit command failed.

use curbside_proto::audit::Broken;

use crate::client::ClientError;

/// Why an audit command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log does not verify.
    #[error("{0}")]
    Broken(Broken),
    /// The export cannot be read as one.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file (or "the server's export").
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A filtered export has gaps by design.
    #[error(
        "this export is filtered, so its entries do not form the whole chain; verify an export \
         made without filters"
    )]
    Filtered,
    /// The output file already exists.
    #[error("{0} already exists; choose another file name or remove it first")]
    Exists(String),
    /// A local file could not be read or written.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The log the server shows does not extend what this device saw, or
    /// is not signed by the key it pinned.
    #[error("{0}")]
    Witness(String),
    /// The server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}
