//! Opening the audit log at start: the key that signs it must be the key
//! that signed it before, and a log made before the Merkle tree gets its
//! tree.

use std::path::Path;

use super::error::OpenError;
use super::signer::{AuditSigner, KEY_FILE};
use super::tree;
use crate::db::Database;
use crate::db::audit as rows;

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
