//! One gap-free hash chain per database: each entry's hash covers the one
//! before, and a checkpoint signed every so often seals the chain up to
//! its entry. Over the same entries grows a Merkle tree (RFC 9162), whose
//! checkpoint (a C2SP signed note) is signed with every append, so the
//! unsigned tail is only what is in flight.
//!
//! [`Appended`] numbers and hashes entries after the head, adds them to
//! the tree, signs the tree's checkpoint, and signs the chain's when the
//! policy says one is due; `crate::db::audit` writes
//! what it computed. [`append_in`] does both in a caller's transaction,
//! for a write that must commit with its entry; the group-commit writer
//! (`crate::pipeline::writer`) does them for everything else.

use std::time::Duration;

use curbside_proto::audit::{AuditEntry, Checkpoint};
use curbside_proto::merkle::{Frontier, leaf_hash};
use sqlx::{Any, Transaction};

use super::entry::NewEntry;
use super::error::AuditError;
use super::signer::AuditSigner;
use crate::config::CheckpointPolicy;
use crate::db::Database;
use crate::db::audit::{self as rows, HeadRow, SubtreeRow};
use crate::db::batch::{self, Statement};

/// Appends `entries` in the caller's transaction, after taking the log's
/// head; returns their sequence numbers. They are durable when `tx`
/// commits, and vanish with it if it rolls back.
pub async fn append_in(
    tx: &mut Transaction<'_, Any>,
    entries: &[NewEntry],
    signer: &AuditSigner,
    policy: CheckpointPolicy,
) -> Result<Vec<u64>, AuditError> {
    // Take the head first: the row lock (PostgreSQL) or write lock (SQLite)
    // that makes every append, from any process, one linear chain.
    let head = rows::take_head_in(tx).await?;
    let appended = Appended::new(&head, entries, signer, policy)?;
    // One round trip on SQLite (see `db::batch`).
    batch::run(tx, &appended.statements()).await?;
    Ok(appended.seqs)
}

/// Entries numbered and hashed after a head, the checkpoint if one is due,
/// and the new head: what [`Appended::statements`] writes.
#[derive(Debug)]
pub struct Appended {
    /// The entries' sequence numbers.
    pub seqs: Vec<u64>,
    /// Each entry with its sequence number and hash.
    rows: Vec<(i64, AuditEntry, [u8; 32])>,
    /// The checkpoint signed with them, if one was due.
    pub checkpoint: Option<Checkpoint>,
    /// The tree's perfect subtrees they completed that are stored.
    subtrees: Vec<SubtreeRow>,
    /// The new head.
    head: HeadRow,
}

/// The smallest perfect subtree stored (256 leaves); a proof hashes the
/// leaves of smaller ones from the entries.
pub const STORED_SUBTREE_LEVEL: u32 = 8;

fn damaged<T>(_: T) -> AuditError {
    AuditError::Damaged
}

impl Appended {
    /// Numbers and hashes `entries` after `head`, and signs a checkpoint
    /// at their end if `policy` says one is due.
    pub fn new(
        head: &HeadRow,
        entries: &[NewEntry],
        signer: &AuditSigner,
        policy: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        let mut seq = u64::try_from(head.seq).map_err(damaged)?;
        let mut prev: [u8; 32] = head.entry_hash.as_slice().try_into().map_err(damaged)?;
        let mut tree = tree_of(head, signer)?;
        let mut seqs = Vec::with_capacity(entries.len());
        let mut rows = Vec::with_capacity(entries.len());
        let mut subtrees = Vec::new();
        for entry in entries {
            seq += 1;
            let full = entry.at(seq);
            let bytes = full
                .canonical_bytes()
                .map_err(|_| AuditError::FieldTooLong)?;
            let hash = AuditEntry::chain_hash(&prev, &bytes);
            grow(&mut tree, leaf_hash(&bytes), &mut subtrees)?;
            rows.push((i64::try_from(seq).map_err(damaged)?, full, hash));
            seqs.push(seq);
            prev = hash;
        }

        let now = crate::clock::now_ms();
        let last = i64::try_from(seq).unwrap_or(i64::MAX);
        let mut next = HeadRow {
            seq: last,
            entry_hash: prev.to_vec(),
            checkpoint_seq: head.checkpoint_seq,
            checkpoint_hash: head.checkpoint_hash.clone(),
            checkpoint_time_ms: head.checkpoint_time_ms,
            tree_frontier: Some(tree.to_bytes()),
            tree_note: head.tree_note.clone(),
        };
        if !entries.is_empty() || head.tree_note.is_none() && tree.size() > 0 {
            next.tree_note = Some(signer.sign_tree(tree.size(), &tree.root()));
        }
        let due_by_count =
            last - head.checkpoint_seq >= i64::try_from(policy.every_entries).unwrap_or(i64::MAX);
        let due_by_time = now - head.checkpoint_time_ms
            >= i64::try_from(policy.every.as_millis()).unwrap_or(i64::MAX);
        let mut checkpoint = None;
        if seq > 0 && last > head.checkpoint_seq && (due_by_count || due_by_time) {
            let prev_checkpoint: [u8; 32] = head
                .checkpoint_hash
                .as_slice()
                .try_into()
                .map_err(damaged)?;
            let signed = signer.sign(seq, &prev, now, &prev_checkpoint);
            next.checkpoint_seq = last;
            next.checkpoint_hash = signed.hash().ok_or(AuditError::Damaged)?.to_vec();
            next.checkpoint_time_ms = now;
            checkpoint = Some(signed);
        }
        Ok(Self {
            seqs,
            rows,
            checkpoint,
            subtrees,
            head: next,
        })
    }

    /// Adds `signer`'s signature to the tree checkpoint these entries end
    /// with (a key hand-over's, signed by both keys).
    pub fn add_tree_signature(&mut self, signer: &AuditSigner) -> Result<(), AuditError> {
        let note = self.head.tree_note.as_deref().ok_or(AuditError::Damaged)?;
        self.head.tree_note = Some(signer.add_signature(note).ok_or(AuditError::Damaged)?);
        Ok(())
    }

    /// The entries' inserts, the checkpoint's, the stored subtrees' and the
    /// head's update.
    pub fn statements(&self) -> Vec<Statement<'_>> {
        rows::append(
            &self.rows,
            self.checkpoint.as_ref(),
            &self.subtrees,
            &self.head,
        )
    }
}

/// The tree the head holds, which must have as many leaves as the log has
/// entries and be the tree this server last signed: a frontier rewritten
/// behind its back is refused (fail closed) rather than signed.
fn tree_of(head: &HeadRow, signer: &AuditSigner) -> Result<Frontier, AuditError> {
    let bytes = head
        .tree_frontier
        .as_deref()
        .ok_or(AuditError::TreeNotBuilt)?;
    let tree = Frontier::from_bytes(bytes).map_err(damaged)?;
    if i64::try_from(tree.size()).ok() != Some(head.seq) {
        return Err(AuditError::Damaged);
    }
    let signed = match head.tree_note.as_deref() {
        Some(note) => signer.opens(note),
        // Only the empty log has no signed tree.
        None => (tree.size() == 0).then_some((0, tree.root())),
    };
    if signed != Some((tree.size(), tree.root())) {
        return Err(AuditError::TreeDamaged);
    }
    Ok(tree)
}

/// Adds `leaf` to `tree`, keeping in `stored` the rows of the perfect
/// subtrees it completes that are stored (256 leaves and up).
pub(super) fn grow(
    tree: &mut Frontier,
    leaf: [u8; 32],
    stored: &mut Vec<SubtreeRow>,
) -> Result<(), AuditError> {
    let mut out_of_range = false;
    tree.push(leaf, |subtree, hash| {
        if subtree.level < STORED_SUBTREE_LEVEL {
            return;
        }
        match i64::try_from(subtree.index) {
            Ok(idx) => stored.push(SubtreeRow {
                level: i64::from(subtree.level),
                idx,
                hash: hash.to_vec(),
            }),
            Err(_) => out_of_range = true,
        }
    });
    if out_of_range {
        return Err(AuditError::Damaged);
    }
    Ok(())
}

/// Signs a checkpoint for the current head if entries were appended since
/// the last one (used at shutdown).
pub async fn checkpoint_now(database: &Database, signer: &AuditSigner) -> Result<(), AuditError> {
    let mut tx = database.pool().begin().await?;
    append_in(
        &mut tx,
        &[],
        signer,
        CheckpointPolicy {
            every_entries: 0,
            every: Duration::ZERO,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An entry and its stored hash.
pub type Recorded = (AuditEntry, Vec<u8>);

/// Every entry (with its stored hash) and checkpoint, in order, for
/// verification. Reads the whole log into memory: for tests and small logs;
/// the export streams instead.
pub async fn read_all(database: &Database) -> Result<(Vec<Recorded>, Vec<Checkpoint>), AuditError> {
    let entries = rows::all_entries(database.pool())
        .await?
        .into_iter()
        .map(|row| row.into_entry().ok_or(AuditError::Damaged))
        .collect::<Result<_, _>>()?;
    let checkpoints = rows::checkpoints(database.pool(), i64::MIN, i64::MAX)
        .await?
        .into_iter()
        .map(rows::CheckpointRow::into_checkpoint)
        .collect();
    Ok((entries, checkpoints))
}
