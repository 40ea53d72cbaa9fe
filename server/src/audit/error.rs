//! Why an entry could not be appended, and why the log could not be opened.

use crate::db::batch::LinkError;
use crate::files::KeyError;

/// Why an entry could not be appended. The access it records must then be
/// refused (fail closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The database refused or is unreachable.
    #[error("the audit log cannot be written: {0}")]
    Database(#[from] sqlx::Error),
    /// An entry's field is over the format's limit.
    #[error("an audit entry field is too long")]
    FieldTooLong,
    /// The writer task has stopped (the server is shutting down).
    #[error("the audit log is closed")]
    Closed,
    /// The stored head is not what the format allows.
    #[error("the audit log's head row is damaged")]
    Damaged,
    /// The writer's SQLite connection refused.
    #[error("the audit log cannot be written: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The entries or stored subtrees a tree proof needs are missing or do
    /// not match.
    #[error(
        "the audit log's entries or stored tree do not match; verify the log (`curbside admin \
         audit verify`) to find where it was altered"
    )]
    TreeDamaged,
    /// The log was made before its Merkle tree and the tree has not been
    /// built yet (the server builds it when it starts).
    #[error("the audit log's Merkle tree has not been built; restart the server to build it")]
    TreeNotBuilt,
    /// The writer could not open its connection.
    #[error("the audit writer cannot open the database: {0}")]
    Open(String),
}

impl From<LinkError> for AuditError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Sqlx(error) => Self::Database(error),
            LinkError::Sqlite(error) => Self::Sqlite(error),
            LinkError::Column(_) | LinkError::Parameter(_) => Self::Damaged,
            LinkError::Io(error) => Self::Open(error.to_string()),
        }
    }
}

/// Why the audit log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The log has signed checkpoints but the key that signed them is gone:
    /// a new key would let the log be rewritten and re-signed unnoticed.
    #[error(
        "the audit signing key {path} is missing, but the audit log holds entries it \
         signed; restore the key file from a backup of the data directory (the server will \
         not make a new key for a log that has one, since a new key could re-sign a \
         rewritten log). To replace a key that still exists, use `curbside-server \
         audit-rotate-key`, which hands the log over to a new key with a statement both keys \
         sign"
    )]
    KeyMissing {
        /// The key file.
        path: String,
    },
    /// The key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database could not be read, or the tree could not be built.
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] AuditError),
}

impl From<sqlx::Error> for OpenError {
    fn from(error: sqlx::Error) -> Self {
        Self::Audit(AuditError::Database(error))
    }
}
