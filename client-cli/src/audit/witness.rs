//! This device as a witness of the audit log: it keeps the last tree
//! checkpoint it verified, and before every audit command checks that the
//! log the server shows now extends it (a consistency proof, RFC 9162). A
//! log that shrank was rewound; one that does not extend the checkpoint
//! was rewritten. Either fails the command, loudly, and the remembered
//! checkpoint stays as it was, so every later command says so too.
//!
//! A checkpoint signed by another key than the pinned one is accepted only
//! through the log's key hand-overs (`curbside_proto::audit::handover`):
//! each signed by the key trusted so far and naming a tree that extends
//! what this device saw. The new key is pinned from then on.

use curbside_proto::audit::handover::{HANDOVER_ACTION, HANDOVER_RESOURCE, Handover};
use curbside_proto::audit_review::{AuditPage, SearchQuery};
use curbside_proto::merkle;
use curbside_proto::note::{self, NoteKey, TreeHead};

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
    let remembered_head = match remembered {
        Some(remembered) => Some(
            note::open_checkpoint(remembered, &key)
                .map_err(|_| {
                    AuditError::Witness(
                        "the audit checkpoint this profile remembers no longer verifies; the \
                         profile's store was altered"
                            .to_owned(),
                    )
                })?
                .head,
        ),
        None => None,
    };
    let (key, seen, current) = match note::open_checkpoint(latest, &key) {
        Ok(current) => (key, remembered_head, current),
        Err(error) => {
            // Another key: only a hand-over from the pinned key explains it.
            let (key, handed_over) =
                follow_handovers(client, &key, remembered_head.as_ref(), &error).await?;
            let current = note::open_checkpoint(latest, &key).map_err(|error| {
                AuditError::Witness(format!(
                    "the server's audit checkpoint does not verify with the key the log was \
                     handed over to ({error}). Do not trust this log until its administrator \
                     explains the change"
                ))
            })?;
            (key, Some(handed_over), current)
        }
    };
    if let Some(seen) = seen {
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
        if !extends(client, &seen, now).await? {
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

/// Follows the log's key hand-overs from `pinned`: each must be signed by
/// the key trusted so far (and the new one), and name a tree consistent
/// with what this device saw. Returns the last key handed over to and the
/// tree it was handed over at.
async fn follow_handovers(
    client: &Client,
    pinned: &NoteKey,
    seen: Option<&TreeHead>,
    error: &note::NoteError,
) -> Result<(NoteKey, TreeHead), AuditError> {
    let mut key = pinned.clone();
    let mut at = seen.cloned();
    let mut followed = false;
    for handover in handovers(client).await? {
        // Hand-overs from keys before the one trusted now are history.
        let Ok(new_key) = handover.verify(&key.public_key) else {
            continue;
        };
        let handed = TreeHead {
            origin: key.name.clone(),
            size: handover.size,
            root: handover.root,
        };
        let later = match at {
            Some(seen) => {
                consistent(client, &seen, &handed).await?;
                if seen.size > handed.size {
                    seen
                } else {
                    handed
                }
            }
            None => handed,
        };
        key = NoteKey {
            name: key.name.clone(),
            public_key: new_key,
        };
        at = Some(later);
        followed = true;
    }
    match at {
        Some(at) if followed => Ok((key, at)),
        _ => Err(AuditError::Witness(format!(
            "the server's audit checkpoint does not verify with the audit key this profile \
             pinned ({error}), and the log holds no key hand-over signed by that key: the \
             server's audit key was replaced, or this is not the server you enrolled with. Do \
             not trust this log until its administrator explains the change"
        ))),
    }
}

/// The search for the log's key hand-overs.
pub fn handover_query() -> SearchQuery {
    SearchQuery {
        action: Some(HANDOVER_ACTION.to_owned()),
        limit: Some(curbside_proto::audit_review::MAX_PAGE),
        ..SearchQuery::default()
    }
}

/// The hand-overs in a page of [`handover_query`]'s results, oldest first
/// (allowed entries only).
pub fn handovers_in(page: AuditPage) -> Vec<Handover> {
    page.entries
        .into_iter()
        .filter(|recorded| {
            recorded.entry.outcome == curbside_proto::audit::Outcome::Allowed
                && recorded.entry.resource_type == HANDOVER_RESOURCE
        })
        .filter_map(|recorded| recorded.entry.evidence.as_deref().and_then(Handover::parse))
        .collect()
}

async fn handovers(client: &Client) -> Result<Vec<Handover>, AuditError> {
    Ok(handovers_in(client.audit_search(&handover_query()).await?))
}

/// The key the log began with, found from `trusted` (a key this profile
/// pinned) by following the log's `handovers` back: each names the key
/// before it, in a statement the later key signed. A verifier started from
/// it follows the same hand-overs forward, checking each.
pub fn first_key(trusted: &NoteKey, handovers: &[Handover]) -> NoteKey {
    let mut key = trusted.public_key;
    for handover in handovers.iter().rev() {
        if handover.new_key == key && handover.signatures_verify().is_ok() {
            key = handover.old_key;
        }
    }
    NoteKey {
        name: trusted.name.clone(),
        public_key: key,
    }
}

/// Checks that the smaller of two trees is a prefix of the larger.
async fn consistent(client: &Client, a: &TreeHead, b: &TreeHead) -> Result<(), AuditError> {
    let (small, large) = if a.size <= b.size { (a, b) } else { (b, a) };
    if extends(client, small, large).await? {
        Ok(())
    } else {
        Err(AuditError::Witness(format!(
            "AUDIT LOG FORK: the key hand-over at {} entries does not extend the signed \
             checkpoint of {} entries this device saw; the log was rewritten. Keep this device's \
             profile as evidence and tell your compliance officer",
            b.size, a.size
        )))
    }
}

/// Whether the server proves that `small` (no larger than `large`) is a
/// prefix of `large` (RFC 9162 consistency).
async fn extends(client: &Client, small: &TreeHead, large: &TreeHead) -> Result<bool, AuditError> {
    if small.size == 0 {
        return Ok(true);
    }
    let proof = if small.size == large.size {
        Vec::new()
    } else {
        client
            .audit_consistency(small.size, large.size)
            .await?
            .proof
    };
    let hashes: Option<Vec<merkle::Hash>> = proof
        .iter()
        .map(|blob| merkle::Hash::try_from(blob.0.as_slice()).ok())
        .collect();
    Ok(hashes.is_some_and(|hashes| {
        merkle::verify_consistency(small.size, large.size, &hashes, &small.root, &large.root)
            .is_ok()
    }))
}
