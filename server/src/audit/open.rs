//! Opening the audit log at start: the key that signs it must be the key
//! that signed it before, and a log made before the Merkle tree gets its
//! tree.

use std::path::Path;

use super::error::AuditError;
use super::signer::{AuditSigner, KEY_FILE};
use super::tree;
use crate::db::Database;
use crate::db::audit as rows;
use crate::files::KeyError;

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

/// Loads the audit key of `data_dir` (making it only for a log nothing has
/// signed yet) for the installation `server_id`, and builds the Merkle tree
/// of a log made before it.
pub async fn open(
    data_dir: &Path,
    server_id: &str,
    database: &Database,
) -> Result<AuditSigner, OpenError> {
    super::rotate::finish_interrupted(data_dir, server_id, database).await?;
    let path = data_dir.join(KEY_FILE);
    if !path.exists() && rows::has_signed(database.pool()).await? {
        return Err(OpenError::KeyMissing {
            path: path.display().to_string(),
        });
    }
    let signer = AuditSigner::load_or_generate(data_dir, server_id)?;
    let built = tree::build(database.pool(), &signer).await?;
    if built > 0 {
        tracing::info!(entries = built, "built the audit log's Merkle tree");
    }
    Ok(signer)
}
