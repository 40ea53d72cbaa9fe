//! One gap-free hash chain per database: each entry's hash covers the one
//! before, and a checkpoint signed every so often seals the chain up to
//! its entry.
//!
//! [`Appended`] numbers and hashes entries after the head and signs a
//! checkpoint when the policy says one is due; `crate::db::audit` writes
//! what it computed. [`append_in`] does both in a caller's transaction,
//! for a write that must commit with its entry; the group-commit writer
//! (`crate::pipeline::writer`) does them for everything else.

use std::time::Duration;

use curbside_proto::audit::{AuditEntry, Checkpoint};
use sqlx::{Any, Transaction};

use super::entry::NewEntry;
use super::error::AuditError;
use super::signer::AuditSigner;
use crate::config::CheckpointPolicy;
use crate::db::Database;
use crate::db::audit::{self as rows, HeadRow};
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
    /// The new head.
    head: HeadRow,
}

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
        let mut seqs = Vec::with_capacity(entries.len());
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let full = entry.at(seq);
            let hash = full.hash(&prev).map_err(|_| AuditError::FieldTooLong)?;
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
        };
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
            head: next,
        })
    }

    /// The entries' inserts, the checkpoint's and the head's update.
    pub fn statements(&self) -> Vec<Statement<'_>> {
        rows::append(&self.rows, self.checkpoint.as_ref(), &self.head)
    }
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
