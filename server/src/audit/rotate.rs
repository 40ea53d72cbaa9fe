//! Rotating the audit key (`curbside-server audit-rotate-key`, with every
//! server process stopped): a new key is made beside the old one, a
//! hand-over entry signed by both (`curbside_proto::audit::handover`) is
//! appended with a chain checkpoint by the old key, the tree checkpoint
//! that covers it is signed by both, and only then does the new key
//! replace the old, whose private key is destroyed and public key kept.
//! The rotation holds the data directory's lock exclusively, so it cannot
//! run beside a server using it.
//!
//! A crash between the commit and the renaming leaves the new key in
//! [`NEXT_KEY_FILE`]: [`finish_interrupted`] (run at every start) promotes
//! it if the log holds its hand-over, and removes it if not.

use std::path::Path;
use std::time::Duration;

use curbside_proto::audit::Outcome;
use curbside_proto::audit::handover::{HANDOVER_ACTION, HANDOVER_RESOURCE, Handover, statement};
use curbside_proto::merkle::Frontier;

use super::chain::Appended;
use super::entry::NewEntry;
use super::error::{AuditError, OpenError};
use super::signer::{AuditSigner, KEY_FILE, NEXT_KEY_FILE};
use crate::config::CheckpointPolicy;
use crate::db::Database;
use crate::db::audit as rows;
use crate::db::batch;
use crate::files::{FileError, KeyError};

/// A finished rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The hand-over entry's sequence number.
    pub seq: u64,
    /// The old key, in its verifier form.
    pub old: String,
    /// The new key, in its verifier form.
    pub new: String,
    /// Where the old public key was kept (its private key is destroyed).
    pub retired: String,
}

/// Hands the log of `data_dir`'s server `server_id` over from `old` to a
/// new key.
pub async fn rotate(
    data_dir: &Path,
    server_id: &str,
    database: &Database,
    old: &AuditSigner,
) -> Result<Rotated, OpenError> {
    let next_path = data_dir.join(NEXT_KEY_FILE);
    if next_path.exists() {
        remove(&next_path)?;
    }
    let new = AuditSigner::at(&next_path, server_id)?;
    let key = |signer: &AuditSigner| -> Result<[u8; 32], OpenError> {
        signer
            .public_key()
            .try_into()
            .map_err(|_| OpenError::Key(KeyError::Invalid(KEY_FILE.to_owned())))
    };
    let (old_key, new_key) = (key(old)?, key(&new)?);

    let mut tx = database.pool().begin().await?;
    let head = rows::take_head_in(&mut tx).await?;
    let tree = head
        .tree_frontier
        .as_deref()
        .ok_or(AuditError::TreeNotBuilt)
        .and_then(|bytes| Frontier::from_bytes(bytes).map_err(|_| AuditError::Damaged))?;
    let signed = statement(&old_key, &new_key, tree.size(), &tree.root());
    let handover = Handover {
        size: tree.size(),
        root: tree.root(),
        old_key,
        new_key,
        old_signature: old.sign_bytes(&signed),
        new_signature: new.sign_bytes(&signed),
    };
    let request_id = crate::ids::new_id().map_err(|_| OpenError::Key(KeyError::Random))?;
    let entry = NewEntry {
        time_ms: crate::clock::now_ms(),
        actor_user: None,
        actor_device: None,
        client_addr: None,
        request_id,
        action: HANDOVER_ACTION.to_owned(),
        resource_type: HANDOVER_RESOURCE.to_owned(),
        resource_id: Some(new.note_key().verifier_string()),
        outcome: Outcome::Allowed,
        reason: "ok".to_owned(),
        evidence: Some(handover.evidence()),
    };
    // The old key signs the chain's checkpoint at the hand-over, and the
    // tree's checkpoint covering it, which the new key signs as well.
    let every_time = CheckpointPolicy {
        every_entries: 0,
        every: Duration::ZERO,
    };
    let mut appended = Appended::new(&head, &[entry], old, every_time)?;
    appended.add_tree_signature(&new)?;
    batch::run(&mut tx, &appended.statements()).await?;
    tx.commit().await?;
    let retired = promote(data_dir, Some(old))?.unwrap_or_default();
    Ok(Rotated {
        seq: appended.seqs.first().copied().unwrap_or_default(),
        old: old.note_key().verifier_string(),
        new: new.note_key().verifier_string(),
        retired,
    })
}

/// Finishes a rotation a crash interrupted: promotes the new key if the
/// log holds the hand-over to it (the rotation committed), else removes
/// it.
pub async fn finish_interrupted(
    data_dir: &Path,
    server_id: &str,
    database: &Database,
) -> Result<(), OpenError> {
    let next_path = data_dir.join(NEXT_KEY_FILE);
    if !next_path.exists() {
        return Ok(());
    }
    let next = AuditSigner::at(&next_path, server_id)?;
    let committed =
        rows::has_handover_to(database.pool(), &next.note_key().verifier_string()).await?;
    if committed {
        // The old key may be gone already (removed by hand): then only the
        // new key is left to put in place.
        let old_path = data_dir.join(KEY_FILE);
        let old = if old_path.exists() {
            Some(AuditSigner::at(&old_path, server_id)?)
        } else {
            None
        };
        promote(data_dir, old.as_ref())?;
        tracing::warn!("finished an audit key rotation that was interrupted after its hand-over");
    } else {
        remove(&next_path)?;
        tracing::warn!("removed the new key of an audit key rotation that never committed");
    }
    Ok(())
}

/// Puts the new key in place of the old one (`old`, if it is still
/// there), whose private key is destroyed (a retired key that still
/// existed could sign a second hand-over); its public key is kept as
/// `keys/audit-ed25519.<key id>.retired.pub` for the record, and where is
/// returned.
fn promote(data_dir: &Path, old: Option<&AuditSigner>) -> Result<Option<String>, OpenError> {
    let retired = match old {
        Some(old) => {
            let retired = data_dir.join(format!(
                "keys/audit-ed25519.{}.retired.pub",
                hex::encode(old.note_key().id())
            ));
            crate::files::write_new_file(
                &retired,
                format!("{}\n", old.note_key().verifier_string()).as_bytes(),
                0o644,
            )
            .map_err(|error| OpenError::Key(KeyError::File(error)))?;
            Some(retired.display().to_string())
        }
        None => None,
    };
    // One rename replaces the old key file with the new, so there is never
    // a moment without a key.
    let key_path = data_dir.join(KEY_FILE);
    let next_path = data_dir.join(NEXT_KEY_FILE);
    std::fs::rename(&next_path, &key_path)
        .map_err(|source| io_error("cannot put the new audit key in place", &next_path, source))?;
    let keys = data_dir.join("keys");
    std::fs::File::open(&keys)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| io_error("cannot sync", &keys, source))?;
    Ok(retired)
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> OpenError {
    OpenError::Key(KeyError::File(FileError::Io {
        action,
        path: path.to_owned(),
        source,
    }))
}

fn remove(path: &Path) -> Result<(), OpenError> {
    std::fs::remove_file(path).map_err(|source| io_error("cannot remove", path, source))
}
