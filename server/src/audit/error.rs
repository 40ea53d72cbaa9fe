//! Why an entry could not be appended.

use crate::db::batch::LinkError;

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
