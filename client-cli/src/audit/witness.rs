//! This device as a witness of the audit log: it keeps the last tree
//! checkpoint it verified, and before every audit command checks that the
//! log the server shows now extends it (a consistency proof, RFC 9162). A
//! log that shrank was rewound; one that does not extend the checkpoint
//! was rewritten. Either fails the command, loudly, and the remembered
//! checkpoint stays as it was, so every later command says so too.

use curbside_proto::merkle;
use curbside_proto::note::{self, NoteKey};

use super::error::AuditError;
use crate::client::Client;

/// What the witness found: the checkpoint to remember now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The key checkpoints are signed with (to pin, if it was not).
    pub key: String,
    /// The checkpoint verified (a signed note).
    pub checkpoint: String,
    /// How many entries it covers.
    pub size: u64,
}

/// Checks `latest`, the server's latest audit checkpoint, against `pinned`
/// (the key this profile pinned; the server's published key is pinned if
/// none) and `remembered` (the last checkpoint this profile verified),
/// asking `client` for the consistency proof between them.
pub async fn witness(
    client: &Client,
    latest: &str,
    pinned: Option<&str>,
    remembered: Option<&str>,
) -> Result<Witnessed, AuditError> {
    let key = match pinned {
        Some(text) => NoteKey::from_verifier_string(text).ok_or_else(|| {
            AuditError::Witness(
                "this profile's pinned audit key is damaged; enroll again".to_owned(),
            )
        })?,
        None => client.audit_key().await?.note_key().ok_or_else(|| {
            AuditError::Witness("the server publishes an audit key that is not Ed25519".to_owned())
        })?,
    };
    let current = note::open_checkpoint(latest, &key).map_err(|error| {
        AuditError::Witness(format!(
            "the server's audit checkpoint does not verify with the audit key this profile \
             pinned ({error}); the server's audit key was replaced, or this is not the server \
             you enrolled with. Do not trust this log until its administrator explains the change"
        ))
    })?;
    if let Some(remembered) = remembered {
        let seen = note::open_checkpoint(remembered, &key)
            .map_err(|_| {
                AuditError::Witness(
                    "the audit checkpoint this profile remembers no longer verifies; the \
                     profile's store was altered"
                        .to_owned(),
                )
            })?
            .head;
        let now = &current.head;
        if now.size < seen.size {
            return Err(AuditError::Witness(format!(
                "AUDIT LOG REWOUND: the server's audit log now has {} entries, but this device \
                 saw a signed checkpoint of {} entries; entries were removed, or the database \
                 was restored from an older copy. Keep this device's profile as evidence and \
                 tell your compliance officer",
                now.size, seen.size
            )));
        }
        let proof = if now.size == seen.size {
            Vec::new()
        } else {
            client.audit_consistency(seen.size, now.size).await?.proof
        };
        let hashes: Option<Vec<merkle::Hash>> = proof
            .iter()
            .map(|blob| merkle::Hash::try_from(blob.0.as_slice()).ok())
            .collect();
        let consistent = hashes.is_some_and(|hashes| {
            merkle::verify_consistency(seen.size, now.size, &hashes, &seen.root, &now.root).is_ok()
        });
        if !consistent {
            return Err(AuditError::Witness(format!(
                "AUDIT LOG FORK: the server's audit log of {} entries does not extend the signed \
                 checkpoint of {} entries this device saw; the log was rewritten. Keep this \
                 device's profile as evidence and tell your compliance officer",
                now.size, seen.size
            )));
        }
    }
    Ok(Witnessed {
        key: key.verifier_string(),
        size: current.head.size,
        checkpoint: current.note,
    })
}
