//! `audit_entry`, `audit_checkpoint`, `audit_subtree` and `audit_head`:
//! the audit log's rows. Numbering, hashing and signing are `crate::audit`'s; here are the
//! statements that store and read what it computes.
//!
//! Every append takes the head row first ([`take_head`]): an `UPDATE`,
//! which is a row lock on PostgreSQL and the write lock on SQLite, so that
//! appends from any number of tasks and server processes form one chain.

use curbside_proto::audit::{AuditEntry, Checkpoint, Outcome};
use curbside_proto::audit_review::AuditFilter;
use sqlx::{Any, Transaction};

use std::sync::LazyLock;

use super::batch::{LinkError, Row, Shapes, Statement, Value, rows_of};

/// The single `audit_head` row: the chain's last entry and last
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HeadRow {
    /// The last entry's sequence number (0 before the first).
    pub seq: i64,
    /// The last entry's hash.
    pub entry_hash: Vec<u8>,
    /// The sequence number the last checkpoint seals.
    pub checkpoint_seq: i64,
    /// The last checkpoint's hash.
    pub checkpoint_hash: Vec<u8>,
    /// When the last checkpoint was signed (Unix ms).
    pub checkpoint_time_ms: i64,
    /// The Merkle tree's frontier (`proto::merkle::Frontier::to_bytes`);
    /// `None` in a log made before the tree, until it is built.
    pub tree_frontier: Option<Vec<u8>>,
    /// The tree's latest signed checkpoint (a C2SP signed note).
    pub tree_note: Option<String>,
}

/// The [`HeadRow`] columns.
const HEAD_COLUMNS: &str = "seq, entry_hash, checkpoint_seq, checkpoint_hash, checkpoint_time_ms, tree_frontier, tree_note";

/// Takes the head and returns it: the [`HeadRow`] columns.
static TAKE_HEAD: LazyLock<String> = LazyLock::new(|| {
    format!("UPDATE audit_head SET seq = seq WHERE head_row = 1 RETURNING {HEAD_COLUMNS}")
});

impl HeadRow {
    /// The head among the rows a batch returned: the one of seven columns
    /// ([`take_head`]'s).
    pub fn from_rows(rows: &[Row]) -> Result<Self, LinkError> {
        let head = rows
            .iter()
            .find(|row| row.columns() == 7)
            .ok_or(LinkError::Column(0))?;
        Ok(Self {
            seq: head.int(0)?,
            entry_hash: head.bytes(1)?,
            checkpoint_seq: head.int(2)?,
            checkpoint_hash: head.bytes(3)?,
            checkpoint_time_ms: head.int(4)?,
            tree_frontier: head.opt_bytes(5)?,
            tree_note: head.opt_text(6)?,
        })
    }
}

/// The statement that takes the log's head (the row lock on PostgreSQL,
/// the write lock on SQLite) and reads it. Every transaction that appends
/// takes the head last, after any thread rows it locks.
pub fn take_head() -> Statement<'static> {
    Statement::new(TAKE_HEAD.as_str())
}

/// Takes the head in `tx` ([`take_head`]) and reads it.
pub async fn take_head_in(tx: &mut Transaction<'_, Any>) -> Result<HeadRow, sqlx::Error> {
    sqlx::query_as(TAKE_HEAD.as_str())
        .fetch_one(&mut **tx)
        .await
}

/// Reads the head without taking it: what has committed.
pub async fn head(pool: &sqlx::AnyPool) -> Result<HeadRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {HEAD_COLUMNS} FROM audit_head WHERE head_row = 1"
    ))
    .fetch_one(pool)
    .await
}

/// Entries per multi-row `INSERT`.
const ROWS_PER_INSERT: usize = 64;
/// The entries' `INSERT` for each number of rows.
static ENTRY_INSERTS: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(ROWS_PER_INSERT, |rows| {
        format!(
            "INSERT INTO audit_entry (seq, time_ms, actor_user, actor_device, client_addr, \
             request_id, action, resource_type, resource_id, outcome, reason, evidence, \
             entry_hash) VALUES {}",
            rows_of("({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})", rows)
        )
    })
});

/// One `audit_subtree` row: a perfect subtree of the Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubtreeRow {
    /// Its height (8 or more: smaller ones are not stored).
    pub level: i64,
    /// Its place among the subtrees of its height, from 0.
    pub idx: i64,
    /// Its hash.
    pub hash: Vec<u8>,
}

/// The statements that append `entries` (each with its sequence number
/// and hash), insert `checkpoint` if one was signed and the tree's
/// `subtrees` completed, and move the head to `head`.
pub fn append<'a>(
    entries: &'a [(i64, AuditEntry, [u8; 32])],
    checkpoint: Option<&'a Checkpoint>,
    subtrees: &'a [SubtreeRow],
    head: &'a HeadRow,
) -> Vec<Statement<'a>> {
    let mut statements = Vec::new();
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut insert = Statement::new(ENTRY_INSERTS.get(chunk.len()));
        for (seq, entry, hash) in chunk {
            insert
                .bind(Value::Int(*seq))
                .bind(Value::Int(entry.time_ms))
                .bind(Value::OptText(entry.actor_user.as_deref()))
                .bind(Value::OptText(entry.actor_device.as_deref()))
                .bind(Value::OptText(entry.client_addr.as_deref()))
                .bind(Value::Text(&entry.request_id))
                .bind(Value::Text(&entry.action))
                .bind(Value::Text(&entry.resource_type))
                .bind(Value::OptText(entry.resource_id.as_deref()))
                .bind(Value::Text(entry.outcome.as_str()))
                .bind(Value::Text(&entry.reason))
                .bind(Value::OptText(entry.evidence.as_deref()))
                .bind(Value::Bytes(hash));
        }
        statements.push(insert);
    }
    if let Some(checkpoint) = checkpoint {
        let mut insert = Statement::new(
            "INSERT INTO audit_checkpoint (seq, head_hash, time_ms, prev_checkpoint_hash, \
             signature) VALUES ($1, $2, $3, $4, $5)",
        );
        insert
            .bind(Value::Int(head.checkpoint_seq))
            .bind(Value::Bytes(&checkpoint.head_hash))
            .bind(Value::Int(checkpoint.time_ms))
            .bind(Value::Bytes(&checkpoint.prev_checkpoint_hash))
            .bind(Value::Bytes(&checkpoint.signature));
        statements.push(insert);
    }
    for subtree in subtrees {
        let mut insert =
            Statement::new("INSERT INTO audit_subtree (level, idx, hash) VALUES ($1, $2, $3)");
        insert
            .bind(Value::Int(subtree.level))
            .bind(Value::Int(subtree.idx))
            .bind(Value::Bytes(&subtree.hash));
        statements.push(insert);
    }
    let mut update = Statement::new(
        "UPDATE audit_head SET seq = $1, entry_hash = $2, checkpoint_seq = $3, \
         checkpoint_hash = $4, checkpoint_time_ms = $5, tree_frontier = $6, tree_note = $7 \
         WHERE head_row = 1",
    );
    update
        .bind(Value::Int(head.seq))
        .bind(Value::Bytes(&head.entry_hash))
        .bind(Value::Int(head.checkpoint_seq))
        .bind(Value::Bytes(&head.checkpoint_hash))
        .bind(Value::Int(head.checkpoint_time_ms))
        .bind(Value::OptBytes(head.tree_frontier.as_deref()))
        .bind(Value::OptText(head.tree_note.as_deref()));
    statements.push(update);
    statements
}

/// The statement that removes every stored subtree (before the tree is
/// built again from the entries).
pub fn clear_subtrees() -> Statement<'static> {
    Statement::new("DELETE FROM audit_subtree")
}

/// The stored perfect subtree at `level` and `idx`, if there is one.
pub async fn subtree(
    pool: &sqlx::AnyPool,
    level: i64,
    idx: i64,
) -> Result<Option<SubtreeRow>, sqlx::Error> {
    sqlx::query_as("SELECT level, idx, hash FROM audit_subtree WHERE level = $1 AND idx = $2")
        .bind(level)
        .bind(idx)
        .fetch_optional(pool)
        .await
}

/// Entries `from..=through` by sequence number, in order (for hashing the
/// tree's leaves a proof needs, and for building the tree of an older log).
pub async fn entries_between<'e, E>(
    executor: E,
    from: i64,
    through: i64,
) -> Result<Vec<EntryRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE seq >= $1 AND seq <= $2 ORDER BY seq"
    ))
    .bind(from)
    .bind(through)
    .fetch_all(executor)
    .await
}

/// Whether the log holds an allowed key hand-over to the key `verifier`
/// (its resource id).
pub async fn has_handover_to(pool: &sqlx::AnyPool, verifier: &str) -> Result<bool, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Found {
        found: i64,
    }
    let found: Option<Found> = sqlx::query_as(
        "SELECT 1 AS found FROM audit_entry WHERE action = $1 AND resource_id = $2 \
         AND outcome = 'allowed' LIMIT 1",
    )
    .bind(curbside_proto::audit::handover::HANDOVER_ACTION)
    .bind(verifier)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some_and(|found| found.found == 1))
}

/// Whether the log holds anything the audit key signed or will sign: an
/// entry, a checkpoint, or a head past the start (so its key must not
/// change silently).
pub async fn has_signed(pool: &sqlx::AnyPool) -> Result<bool, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Found {
        found: i64,
    }
    let found: Option<Found> = sqlx::query_as(
        "SELECT 1 AS found FROM audit_head WHERE head_row = 1 \
         AND (seq > 0 OR checkpoint_seq > 0 OR tree_note IS NOT NULL \
         OR EXISTS (SELECT 1 FROM audit_entry) OR EXISTS (SELECT 1 FROM audit_checkpoint))",
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some_and(|found| found.found == 1))
}

/// A statement that returns a row if entries were appended since the last
/// checkpoint and that checkpoint was signed at or before `signed_by_ms`.
/// It takes no lock: most times it finds nothing due.
pub fn checkpoint_due(signed_by_ms: i64) -> Statement<'static> {
    let mut due = Statement::new(
        "SELECT seq FROM audit_head WHERE head_row = 1 AND seq > checkpoint_seq \
         AND checkpoint_time_ms <= $1",
    );
    due.bind(Value::Int(signed_by_ms));
    due
}

/// One `audit_entry` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    /// Its place in the log, from 1.
    pub seq: i64,
    /// When (Unix ms).
    pub time_ms: i64,
    /// The acting user.
    pub actor_user: Option<String>,
    /// The acting device.
    pub actor_device: Option<String>,
    /// The client's address.
    pub client_addr: Option<String>,
    /// The request's id.
    pub request_id: String,
    /// What was done.
    pub action: String,
    /// The kind of resource.
    pub resource_type: String,
    /// Which resource.
    pub resource_id: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: String,
    /// A short reason code.
    pub reason: String,
    /// What the client proved (a receipt's signature), if anything.
    pub evidence: Option<String>,
    /// The entry's hash as stored.
    pub entry_hash: Vec<u8>,
}

/// The columns of [`EntryRow`].
const ENTRY_COLUMNS: &str = "seq, time_ms, actor_user, actor_device, client_addr, request_id, \
     action, resource_type, resource_id, outcome, reason, evidence, entry_hash";

impl EntryRow {
    /// The entry and its stored hash; `None` if its sequence number is
    /// negative (a damaged row).
    pub fn into_entry(self) -> Option<(AuditEntry, Vec<u8>)> {
        let entry = AuditEntry {
            seq: u64::try_from(self.seq).ok()?,
            time_ms: self.time_ms,
            actor_user: self.actor_user,
            actor_device: self.actor_device,
            client_addr: self.client_addr,
            request_id: self.request_id,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            // Anything but "allowed" reads as denied: an edited value then
            // fails the hash check at its entry, as any edit does.
            outcome: if self.outcome == Outcome::Allowed.as_str() {
                Outcome::Allowed
            } else {
                Outcome::Denied
            },
            reason: self.reason,
            evidence: self.evidence,
        };
        Some((entry, self.entry_hash))
    }
}

/// One `audit_checkpoint` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckpointRow {
    /// The sequence number it seals.
    pub seq: i64,
    /// The hash of that entry.
    pub head_hash: Vec<u8>,
    /// When it was signed (Unix ms).
    pub time_ms: i64,
    /// The previous checkpoint's hash.
    pub prev_checkpoint_hash: Vec<u8>,
    /// The Ed25519 signature.
    pub signature: Vec<u8>,
}

impl CheckpointRow {
    /// The checkpoint.
    pub fn into_checkpoint(self) -> Checkpoint {
        Checkpoint {
            seq: u64::try_from(self.seq).unwrap_or(0),
            head_hash: self.head_hash,
            time_ms: self.time_ms,
            prev_checkpoint_hash: self.prev_checkpoint_hash,
            signature: self.signature,
        }
    }
}

/// A bound parameter of a dynamically built query.
enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// Entries matching `filter` after `after` up to `through`, oldest
/// first, at most `limit`. Only the filters given become conditions, so
/// each query can use its index.
pub async fn entries<'c, E>(
    executor: E,
    filter: &AuditFilter,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<EntryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let mut conditions = vec!["seq > $1".to_owned(), "seq <= $2".to_owned()];
    let mut params = vec![Param::Int(after), Param::Int(through)];
    let mut add = |column: &str, operator: &str, param| {
        params.push(param);
        conditions.push(format!("{column} {operator} ${}", params.len()));
    };
    if let Some(actor) = &filter.actor {
        add("actor_user", "=", Param::Text(actor));
    }
    if let Some(resource) = &filter.resource {
        add("resource_id", "=", Param::Text(resource));
    }
    if let Some(action) = &filter.action {
        add("action", "=", Param::Text(action));
    }
    if let Some(outcome) = filter.outcome {
        add("outcome", "=", Param::Text(outcome.as_str()));
    }
    if let Some(since) = filter.since_ms {
        add("time_ms", ">=", Param::Int(since));
    }
    if let Some(until) = filter.until_ms {
        add("time_ms", "<", Param::Int(until));
    }
    params.push(Param::Int(limit));
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE {} ORDER BY seq LIMIT ${}",
        conditions.join(" AND "),
        params.len()
    );
    let mut query = sqlx::query_as::<_, EntryRow>(&sql);
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(n) => query.bind(n),
        };
    }
    query.fetch_all(executor).await
}

/// Every entry, oldest first (for verification of small logs and tests).
pub async fn all_entries<'c, E>(executor: E) -> Result<Vec<EntryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY seq"
    ))
    .fetch_all(executor)
    .await
}

/// The columns of [`CheckpointRow`].
const CHECKPOINT_COLUMNS: &str = "seq, head_hash, time_ms, prev_checkpoint_hash, signature";

/// Checkpoints sealing entries after `after` up to `through`, oldest
/// first.
pub async fn checkpoints<'c, E>(
    executor: E,
    after: i64,
    through: i64,
) -> Result<Vec<CheckpointRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint WHERE seq > $1 AND seq <= $2 \
         ORDER BY seq"
    ))
    .bind(after)
    .bind(through)
    .fetch_all(executor)
    .await
}

/// How far the log's rows reach, for an export's end, read in one
/// statement (one snapshot).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Extent {
    /// The head's sequence number.
    pub head: i64,
    /// The tree's checkpoint at the head (a signed note).
    pub tree_note: Option<String>,
    /// The last checkpoint row's sequence number.
    pub last_checkpoint: Option<i64>,
    /// The last entry row's sequence number.
    pub last_entry: Option<i64>,
}

/// The head and the last entry and checkpoint rows (rows past the head
/// count: they show a log cut short or hidden).
pub async fn extent<'c, E>(executor: E) -> Result<Extent, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT h.seq AS head, h.tree_note AS tree_note, \
         (SELECT MAX(seq) FROM audit_checkpoint) AS last_checkpoint, \
         (SELECT MAX(seq) FROM audit_entry) AS last_entry FROM audit_head h WHERE h.head_row = 1",
    )
    .fetch_one(executor)
    .await
}

/// How many entries were written from `from_ms` until before `until_ms`
/// (counted on the time index).
pub async fn count_between<'c, E>(
    executor: E,
    from_ms: i64,
    until_ms: i64,
) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_entry WHERE time_ms >= $1 AND time_ms < $2")
        .bind(from_ms)
        .bind(until_ms)
        .fetch_one(executor)
        .await
}

/// How many allowed entries of `action` were written from `from_ms` until
/// before `until_ms`. It reads every entry in that time (the index is by
/// time): an overview of days, not a hot path.
pub async fn count_allowed_between<'c, E>(
    executor: E,
    action: &str,
    from_ms: i64,
    until_ms: i64,
) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_entry \
         WHERE time_ms >= $1 AND time_ms < $2 AND action = $3 AND outcome = 'allowed'",
    )
    .bind(from_ms)
    .bind(until_ms)
    .bind(action)
    .fetch_one(executor)
    .await
}
