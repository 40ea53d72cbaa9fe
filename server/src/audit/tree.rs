//! The audit log's Merkle tree as stored: proofs made from its stored
//! subtrees and its entries, and the one-time build of the tree for a log
//! made before it.
//!
//! Leaf `i` of the tree is entry `i + 1`, hashed as RFC 9162 hashes a leaf
//! over the entry's canonical bytes. [`super::Appended`] grows the tree
//! with every append; here the tree is only read, except by [`build`].

use curbside_proto::audit::Verifier;
use curbside_proto::merkle::{self, Frontier, Hash, Subtree};
use sqlx::AnyPool;

use super::chain::{STORED_SUBTREE_LEVEL, grow};
use super::error::AuditError;
use super::signer::AuditSigner;
use crate::db::audit::{self as rows, EntryRow, SubtreeRow};
use crate::db::batch;

/// The hash of each range, in order: the nodes of a proof.
async fn hashes(
    pool: &AnyPool,
    ranges: Vec<std::ops::Range<u64>>,
) -> Result<Vec<Hash>, AuditError> {
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let mut parts = Vec::new();
        for subtree in merkle::decompose(range) {
            parts.push(subtree_hash(pool, subtree).await?);
        }
        out.push(merkle::fold(&parts));
    }
    Ok(out)
}

/// The hash of a perfect subtree: stored if it is large, else hashed from
/// its entries.
async fn subtree_hash(pool: &AnyPool, subtree: Subtree) -> Result<Hash, AuditError> {
    if subtree.level >= STORED_SUBTREE_LEVEL {
        let row = rows::subtree(
            pool,
            i64::from(subtree.level),
            i64::try_from(subtree.index).map_err(damaged)?,
        )
        .await?
        .ok_or(AuditError::TreeDamaged)?;
        return Hash::try_from(row.hash).map_err(damaged);
    }
    let leaves = subtree.leaves();
    let first = i64::try_from(leaves.start + 1).map_err(damaged)?;
    let last = i64::try_from(leaves.end).map_err(damaged)?;
    let entries = rows::entries_between(pool, first, last).await?;
    let mut tree = Frontier::default();
    for (expected, row) in (first..=last).zip(&entries) {
        tree.append(leaf(row, expected)?);
    }
    if tree.size() != leaves.end - leaves.start {
        return Err(AuditError::TreeDamaged);
    }
    Ok(tree.root())
}

fn damaged<T>(_: T) -> AuditError {
    AuditError::TreeDamaged
}

/// The leaf hash of an entry row, which must be entry `seq`.
fn leaf(row: &EntryRow, seq: i64) -> Result<Hash, AuditError> {
    if row.seq != seq {
        return Err(AuditError::TreeDamaged);
    }
    let (entry, _) = row.clone().into_entry().ok_or(AuditError::TreeDamaged)?;
    entry.leaf_hash().map_err(|_| AuditError::FieldTooLong)
}

/// The inclusion proof of leaf `index` (entry `index + 1`) in the tree of
/// `size` leaves. The caller checks that `index < size <=` the log's size.
pub async fn inclusion_proof(
    pool: &AnyPool,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, AuditError> {
    hashes(pool, merkle::inclusion_ranges(index, size)).await
}

/// The consistency proof between the trees of `first` and `second`
/// leaves. The caller checks that `0 < first <= second <=` the log's size.
pub async fn consistency_proof(
    pool: &AnyPool,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, AuditError> {
    hashes(pool, merkle::consistency_ranges(first, second)).await
}

/// The leaf hash of entry `seq`.
pub async fn leaf_hash(pool: &AnyPool, seq: i64) -> Result<Hash, AuditError> {
    let entries = rows::entries_between(pool, seq, seq).await?;
    let row = entries.first().ok_or(AuditError::TreeDamaged)?;
    leaf(row, seq)
}

/// Entries read at a time while building the tree of an older log.
const BUILD_PAGE: i64 = 10_000;

/// Builds the Merkle tree of a log made before it (its head has no
/// frontier), in one transaction that holds the head, and signs its first
/// checkpoint. It first verifies the chain and its signed checkpoints, so
/// the tree never vouches for a log that was already altered; and if the
/// head has a signed tree checkpoint (the frontier was removed behind the
/// server's back), the rebuilt tree must match it. Does nothing for a log
/// that has its tree. Returns how many entries it read.
pub async fn build(pool: &AnyPool, signer: &AuditSigner) -> Result<u64, AuditError> {
    let mut tx = pool.begin().await?;
    let mut head = rows::take_head_in(&mut tx).await?;
    if head.tree_frontier.is_some() {
        tx.rollback().await?;
        return Ok(0);
    }
    let signed = match head.tree_note.as_deref() {
        Some(note) => Some(signer.opens(note).ok_or(AuditError::TreeDamaged)?),
        None => None,
    };
    let mut chain = Verifier::new(&signer.public_key());
    let mut checkpoints = rows::checkpoints(&mut *tx, 0, head.seq)
        .await?
        .into_iter()
        .map(rows::CheckpointRow::into_checkpoint)
        .peekable();
    let mut tree = Frontier::default();
    let mut stored: Vec<SubtreeRow> = Vec::new();
    let mut next = 1;
    while next <= head.seq {
        let through = head.seq.min(next + BUILD_PAGE - 1);
        let page = rows::entries_between(&mut *tx, next, through).await?;
        if i64::try_from(page.len()).ok() != Some(through - next + 1) {
            // Entries are missing: the log was cut, and a tree over what
            // is left would vouch for it.
            return Err(AuditError::TreeDamaged);
        }
        for row in &page {
            // The chain's check puts the entries in order, from 1, no gaps.
            let (entry, stored_hash) = row.clone().into_entry().ok_or(AuditError::TreeDamaged)?;
            chain
                .entry(&entry, &stored_hash)
                .map_err(|_| AuditError::TreeDamaged)?;
            while let Some(checkpoint) = checkpoints.next_if(|c| c.seq <= entry.seq) {
                chain
                    .checkpoint(&checkpoint)
                    .map_err(|_| AuditError::TreeDamaged)?;
            }
            let leaf = entry.leaf_hash().map_err(|_| AuditError::FieldTooLong)?;
            grow(&mut tree, leaf, &mut stored)?;
        }
        next = through + 1;
    }
    if checkpoints.next().is_some() || chain.finish().is_err() {
        return Err(AuditError::TreeDamaged);
    }
    if signed.is_some_and(|signed| signed != (tree.size(), tree.root())) {
        return Err(AuditError::TreeDamaged);
    }
    let read = tree.size();
    head.tree_frontier = Some(tree.to_bytes());
    head.tree_note = (read > 0).then(|| signer.sign_tree(read, &tree.root()));
    // Whatever subtrees were stored are made again from the entries.
    let mut statements = vec![rows::clear_subtrees()];
    statements.extend(rows::append(&[], None, &stored, &head));
    batch::run(&mut tx, &statements).await?;
    tx.commit().await?;
    Ok(read)
}
