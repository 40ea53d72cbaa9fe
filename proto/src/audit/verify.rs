//! Verifying a whole log: the chain from its first entry, and every
//! checkpoint against the audit key.

use super::checkpoint::Checkpoint;
use super::entry::{AuditEntry, GENESIS_HASH};

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
    prev_hash: [u8; 32],
    prev_checkpoint: [u8; 32],
    last: u64,
    /// Checkpoints that name entries not yet seen, by sequence.
    ahead: std::collections::BTreeMap<u64, Checkpoint>,
    checkpoints: u64,
    signed_through: u64,
}

/// The most checkpoints a verifier holds while waiting for their entries.
const MAX_AHEAD: usize = 10_000;

impl Verifier {
    /// A verifier trusting checkpoints signed by this Ed25519 public key.
    pub fn new(public_key: &[u8]) -> Self {
        Self {
            public_key: public_key.to_vec(),
            prev_hash: GENESIS_HASH,
            prev_checkpoint: GENESIS_HASH,
            last: 0,
            ahead: std::collections::BTreeMap::new(),
            checkpoints: 0,
            signed_through: 0,
        }
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
        let hash = entry.hash(&self.prev_hash).map_err(|error| Broken {
            seq: entry.seq,
            reason: error.to_string(),
        })?;
        if stored_hash != hash {
            return Err(Broken {
                seq: entry.seq,
                reason: "the entry's contents do not match its recorded hash (the entry was \
                         altered, or an entry before it was removed or reordered)"
                    .to_owned(),
            });
        }
        self.prev_hash = hash;
        self.last = entry.seq;
        if let Some(checkpoint) = self.ahead.remove(&entry.seq) {
            self.check(&checkpoint)?;
        }
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
            &self.public_key,
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

    /// The last entry a verified checkpoint covers (0 if none): entries
    /// after it are chained but not yet signed.
    pub fn signed_through(&self) -> u64 {
        self.signed_through
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
        if let Some(checkpoint) = self.ahead.values().next() {
            return Err(Broken {
                seq: self.last + 1,
                reason: format!(
                    "a signed checkpoint covers entries up to {}, but the log ends at {}: \
                     entries were removed from its end",
                    checkpoint.seq, self.last
                ),
            });
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
