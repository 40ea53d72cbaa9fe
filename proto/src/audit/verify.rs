//! Verifying a whole log: the chain from its first entry, every checkpoint
//! against the audit key, and the Merkle tree's signed checkpoint against
//! the tree of the entries.

use super::checkpoint::Checkpoint;
use super::entry::{AuditEntry, GENESIS_HASH, Outcome};
use super::handover::{HANDOVER_ACTION, Handover};
use crate::merkle::{Frontier, leaf_hash};
use crate::note::{self, NoteKey, TreeHead};

/// Where and why a log fails verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log breaks at sequence {seq}: {reason}")]
pub struct Broken {
    /// The first sequence number at which the log is not what it claims.
    pub seq: u64,
    /// What is wrong there.
    pub reason: String,
}

/// Checks a log: entries in order from sequence 1 without gaps, each
/// stored hash equal to the recomputed chain hash, every checkpoint signed
/// by `public_key`, naming the recomputed hash of its entry, and naming the
/// previous checkpoint's hash. Returns the last sequence number verified.
pub fn verify<I>(entries: I, checkpoints: &[Checkpoint], public_key: &[u8]) -> Result<u64, Broken>
where
    I: IntoIterator<Item = (AuditEntry, Vec<u8>)>,
{
    let mut verifier = Verifier::new(public_key);
    let mut checkpoints = checkpoints.iter().peekable();
    for (entry, stored_hash) in entries {
        let seq = entry.seq;
        verifier.entry(&entry, &stored_hash)?;
        while let Some(checkpoint) = checkpoints.next_if(|c| c.seq <= seq) {
            verifier.checkpoint(checkpoint)?;
        }
    }
    for checkpoint in checkpoints {
        verifier.checkpoint(checkpoint)?;
    }
    verifier.finish()
}

/// Verifies a log read one record at a time, as [`verify`] does, so that
/// an export of any size is checked in constant memory. Feed entries in
/// order, each checkpoint after the entry it covers, then call
/// [`Verifier::finish`].
#[derive(Debug, Clone)]
pub struct Verifier {
    public_key: Vec<u8>,
    /// The key hand-overs so far: from after each entry, its new key.
    handovers: Vec<(u64, [u8; 32])>,
    prev_hash: [u8; 32],
    prev_checkpoint: [u8; 32],
    last: u64,
    /// Checkpoints that name entries not yet seen, by sequence.
    ahead: std::collections::BTreeMap<u64, Checkpoint>,
    checkpoints: u64,
    signed_through: u64,
    /// The tree of the entries so far.
    tree: Frontier,
    /// A tree checkpoint naming entries not yet seen, and its note.
    tree_ahead: Option<(TreeHead, String)>,
    /// How many entries the last verified tree checkpoint covers.
    tree_signed: Option<u64>,
    /// Whether the log must end with a tree checkpoint covering every entry.
    require_tree: bool,
    /// A tree checkpoint kept from before, which the log must extend, and
    /// its note (checked with the key of its size once its entries are in).
    trusted: Option<(TreeHead, String)>,
    /// The origin (key name) tree checkpoints must have, if known.
    origin: Option<String>,
}

/// The most checkpoints a verifier holds while waiting for their entries.
const MAX_AHEAD: usize = 10_000;

impl Verifier {
    /// A verifier trusting checkpoints signed by this Ed25519 public key.
    pub fn new(public_key: &[u8]) -> Self {
        Self {
            public_key: public_key.to_vec(),
            handovers: Vec::new(),
            prev_hash: GENESIS_HASH,
            prev_checkpoint: GENESIS_HASH,
            last: 0,
            ahead: std::collections::BTreeMap::new(),
            checkpoints: 0,
            signed_through: 0,
            tree: Frontier::default(),
            tree_ahead: None,
            tree_signed: None,
            require_tree: false,
            trusted: None,
            origin: None,
        }
    }

    /// This verifier, accepting only tree checkpoints of the log `origin`
    /// (the key name of the audit key as the server prints it).
    pub fn for_origin(mut self, origin: &str) -> Self {
        self.origin = Some(origin.to_owned());
        self
    }

    /// This verifier, also checking that the log extends `signed_note`, a
    /// tree checkpoint kept from before (signed by the same key): its
    /// first entries must have exactly that root.
    pub fn extending(mut self, signed_note: &str) -> Result<Self, note::NoteError> {
        // Which key signed it depends on the hand-overs before its size:
        // its signature is checked when its last entry is read.
        let head = TreeHead::from_note(signed_note)?;
        self.trusted = Some((head, signed_note.to_owned()));
        Ok(self)
    }

    /// The audit key that signs checkpoints at `seq` (of the chain, or the
    /// tree of that size): the key handed over to by the last hand-over
    /// entry before `seq`, else the key this verifier was given.
    fn key_at(&self, seq: u64) -> &[u8] {
        self.handovers
            .iter()
            .rev()
            .find(|(after, _)| *after < seq)
            .map_or(self.public_key.as_slice(), |(_, key)| key.as_slice())
    }

    /// Follows a hand-over entry: both keys must have signed it, the old
    /// one being the key of its place, over the tree just before it.
    fn follow_handover(&mut self, entry: &AuditEntry) -> Result<(), Broken> {
        let broken = |reason: &str| Broken {
            seq: entry.seq,
            reason: reason.to_owned(),
        };
        let handover = entry
            .evidence
            .as_deref()
            .and_then(Handover::parse)
            .ok_or_else(|| broken("a key hand-over entry without a readable hand-over"))?;
        if handover.size != entry.seq - 1 || handover.root != self.tree.root() {
            return Err(broken(
                "the key hand-over names another tree than the log's before it",
            ));
        }
        let old: [u8; 32] = self
            .key_at(entry.seq)
            .try_into()
            .map_err(|_| broken("the audit key is not an Ed25519 key"))?;
        let new = handover.verify(&old).map_err(broken)?;
        self.handovers.push((entry.seq, new));
        Ok(())
    }

    /// The key a note names (by its origin line) with the audit key of
    /// tree size `size`.
    fn note_key(&self, signed_note: &str, size: u64) -> NoteKey {
        let name = match &self.origin {
            Some(origin) => origin.clone(),
            None => signed_note
                .split('\n')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        NoteKey {
            name,
            public_key: self.key_at(size).try_into().unwrap_or([0; 32]),
        }
    }

    /// This verifier, requiring a signed tree checkpoint that covers every
    /// entry (as every export of a server with the tree has): entries after
    /// it were added behind the server's back.
    pub fn requiring_tree_checkpoint(mut self) -> Self {
        self.require_tree = true;
        self
    }

    /// The next entry, with the hash the log recorded for it.
    pub fn entry(&mut self, entry: &AuditEntry, stored_hash: &[u8]) -> Result<(), Broken> {
        let expected = self.last + 1;
        if entry.seq != expected {
            return Err(Broken {
                seq: expected,
                reason: format!("expected entry {expected} next, found entry {}", entry.seq),
            });
        }
        let bytes = entry.canonical_bytes().map_err(|error| Broken {
            seq: entry.seq,
            reason: error.to_string(),
        })?;
        let hash = AuditEntry::chain_hash(&self.prev_hash, &bytes);
        if stored_hash != hash {
            return Err(Broken {
                seq: entry.seq,
                reason: "the entry's contents do not match its recorded hash (the entry was \
                         altered, or an entry before it was removed or reordered)"
                    .to_owned(),
            });
        }
        if entry.action == HANDOVER_ACTION && entry.outcome == Outcome::Allowed {
            self.follow_handover(entry)?;
        }
        self.prev_hash = hash;
        self.last = entry.seq;
        self.tree.append(leaf_hash(&bytes));
        if let Some(checkpoint) = self.ahead.remove(&entry.seq) {
            self.check(&checkpoint)?;
        }
        if let Some((_, signed_note)) = self.tree_ahead.take_if(|(head, _)| head.size == self.last)
        {
            self.tree_checkpoint(&signed_note)?;
        }
        if let Some((_, kept)) = self.trusted.take_if(|(head, _)| head.size == self.last) {
            let head = note::open_checkpoint(&kept, &self.note_key(&kept, self.last))
                .map_err(|error| Broken {
                    seq: 1,
                    reason: format!(
                        "the checkpoint you kept does not verify with the log's audit key at \
                         its size ({error})"
                    ),
                })?
                .head;
            if head.root != self.tree.root() {
                return Err(Broken {
                    seq: 1,
                    reason: format!(
                        "entries 1 to {} are not the log of the checkpoint you kept: the log was \
                         rewritten",
                        head.size
                    ),
                });
            }
        }
        Ok(())
    }

    /// The tree's signed checkpoint (a C2SP signed note), after the entry
    /// it covers.
    pub fn tree_checkpoint(&mut self, signed_note: &str) -> Result<(), Broken> {
        let unreadable = |error: note::NoteError| Broken {
            seq: self.last + 1,
            reason: format!("the tree checkpoint after entry {}: {error}", self.last),
        };
        // Which key signs it depends on its size: read that first, and
        // check the signature once its entries (and any hand-over among
        // them) are in.
        let size = TreeHead::from_note(signed_note).map_err(unreadable)?.size;
        if size > self.last && self.tree_ahead.is_none() {
            let head = TreeHead::from_note(signed_note).map_err(unreadable)?;
            self.tree_ahead = Some((head, signed_note.to_owned()));
            return Ok(());
        }
        if size != self.last {
            return Err(Broken {
                seq: size.min(self.last) + 1,
                reason: format!(
                    "a tree checkpoint of {} entries is out of place after entry {}",
                    size, self.last
                ),
            });
        }
        let head = note::open_checkpoint(signed_note, &self.note_key(signed_note, size))
            .map_err(unreadable)?
            .head;
        self.check_tree(&head)
    }

    fn check_tree(&mut self, head: &TreeHead) -> Result<(), Broken> {
        if self.tree.root() != head.root {
            let from = self.signed_through.max(self.tree_signed.unwrap_or(0)) + 1;
            return Err(Broken {
                seq: from,
                reason: format!(
                    "entries {from} to {} do not match the log's signed tree checkpoint of {} \
                     entries: they were altered, removed or added behind the server's back",
                    head.size, head.size
                ),
            });
        }
        self.tree_signed = Some(head.size);
        Ok(())
    }

    /// A checkpoint, after the entry it covers (or before, if the log
    /// lists it early).
    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), Broken> {
        if checkpoint.seq > self.last {
            if self.ahead.len() >= MAX_AHEAD || self.ahead.contains_key(&checkpoint.seq) {
                return Err(Broken {
                    seq: self.last + 1,
                    reason: format!(
                        "checkpoint {} is out of place: repeated, or far ahead of its entries",
                        checkpoint.seq
                    ),
                });
            }
            self.ahead.insert(checkpoint.seq, checkpoint.clone());
            return Ok(());
        }
        if checkpoint.seq < self.last {
            return Err(Broken {
                seq: checkpoint.seq,
                reason: format!(
                    "checkpoint {} names an entry the log does not have in that place",
                    checkpoint.seq
                ),
            });
        }
        self.check(checkpoint)
    }

    fn check(&mut self, checkpoint: &Checkpoint) -> Result<(), Broken> {
        let broken = |reason: String| Broken {
            seq: checkpoint.seq,
            reason,
        };
        check_checkpoint(
            checkpoint,
            self.last,
            &self.prev_hash,
            &self.prev_checkpoint,
            self.key_at(checkpoint.seq),
        )
        .map_err(broken)?;
        self.prev_checkpoint = checkpoint
            .hash()
            .ok_or_else(|| broken("malformed checkpoint".to_owned()))?;
        self.checkpoints += 1;
        self.signed_through = checkpoint.seq;
        Ok(())
    }

    /// The last sequence number verified so far.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// How many checkpoints verified so far.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// The last entry a verified checkpoint (the chain's or the tree's)
    /// covers (0 if none): entries after it are chained but not signed.
    pub fn signed_through(&self) -> u64 {
        self.signed_through.max(self.tree_signed.unwrap_or(0))
    }

    /// Ends the log: fails if a checkpoint covers entries that never came
    /// (entries removed from the end), or if no checkpoint covers any entry
    /// (the server seals the first entry at once, so a log without one has
    /// had its checkpoints removed). Returns the last sequence verified.
    pub fn finish(self) -> Result<u64, Broken> {
        if self.last > 0 && self.checkpoints == 0 {
            return Err(Broken {
                seq: 1,
                reason: "no signed checkpoint covers the log (the server signs one for its \
                         first entry at once): its checkpoints were removed"
                    .to_owned(),
            });
        }
        let ahead = self
            .ahead
            .values()
            .next()
            .map(|checkpoint| checkpoint.seq)
            .or(self.tree_ahead.as_ref().map(|(head, _)| head.size))
            .or(self.trusted.as_ref().map(|(head, _)| head.size));
        if let Some(through) = ahead {
            return Err(Broken {
                seq: self.last + 1,
                reason: format!(
                    "a signed checkpoint covers entries up to {through}, but the log ends at {}: \
                     entries were removed from its end",
                    self.last
                ),
            });
        }
        if self.require_tree && self.last > 0 {
            match self.tree_signed {
                None => {
                    return Err(Broken {
                        seq: 1,
                        reason: "the log has no signed tree checkpoint: it was removed, or the \
                                 export was made before the audit log's tree (verify such an \
                                 export with --chain-only)"
                            .to_owned(),
                    });
                }
                Some(signed) if signed < self.last => {
                    return Err(Broken {
                        seq: signed + 1,
                        reason: format!(
                            "entries {} to {} come after the log's signed tree checkpoint: they \
                             were added behind the server's back",
                            signed + 1,
                            self.last
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(self.last)
    }
}

fn check_checkpoint(
    checkpoint: &Checkpoint,
    entry_seq: u64,
    entry_hash: &[u8; 32],
    prev_checkpoint: &[u8; 32],
    public_key: &[u8],
) -> Result<(), String> {
    if checkpoint.seq != entry_seq {
        return Err(format!(
            "checkpoint {} names an entry the log does not have",
            checkpoint.seq
        ));
    }
    if !checkpoint.verify(public_key) {
        return Err("the checkpoint's signature does not verify with the audit key".to_owned());
    }
    if checkpoint.head_hash.as_slice() != entry_hash {
        return Err("the signed checkpoint names a different hash for this entry".to_owned());
    }
    if checkpoint.prev_checkpoint_hash.as_slice() != prev_checkpoint {
        return Err("the checkpoint does not follow the previous checkpoint".to_owned());
    }
    Ok(())
}
