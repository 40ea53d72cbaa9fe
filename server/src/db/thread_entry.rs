//! `thread_entry`: each thread's log of MLS commits, application messages,
//! recalls and changes of lifespan, numbered from 1 by `seq`. Application
//! messages are appended in batches by the write pipeline
//! (`super::message_batch`), or one at a time when they carry
//! attachments; commits, recalls and lifespans one at a time by the
//! threads handler. A recalled or purged message keeps its row (the log
//! has no gaps) with its body erased (a recalled one's only once no legal
//! hold covers it, see `super::retention`; it is never served again).

use curbside_proto::threads::{Blob, EntryKind, MembershipChange, ThreadEntry};
use sqlx::Any;

/// One log row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    /// The thread.
    pub thread_id: String,
    /// Its place in the thread's log.
    pub seq: i64,
    /// `commit` or `application`.
    pub kind: String,
    /// The MLS epoch it was made in.
    pub epoch: i64,
    /// The sending user.
    pub sender_user: String,
    /// The sending device.
    pub sender_device: String,
    /// When the server accepted it (Unix ms).
    pub created_at_ms: i64,
    /// The MLS message (ciphertext; never logged).
    pub body: Vec<u8>,
    /// A commit's added devices, separated by spaces.
    pub added: Option<String>,
    /// A commit's removed devices, separated by spaces.
    pub removed: Option<String>,
    /// A recall's message.
    pub recalls: Option<i64>,
    /// When a message was recalled.
    pub recalled_at_ms: Option<i64>,
    /// A lifespan entry's new lifespan.
    pub lifespan_ms: Option<i64>,
    /// When the sweep erased a message.
    pub purged_at_ms: Option<i64>,
    /// 1 for an urgent message.
    pub urgent: i64,
}

/// The columns of [`EntryRow`], for `SELECT`.
const COLUMNS: &str = "thread_id, seq, kind, epoch, sender_user, sender_device, created_at_ms, \
     body, added, removed, recalls, recalled_at_ms, lifespan_ms, purged_at_ms, urgent";

fn ids(text: Option<String>) -> Vec<String> {
    text.map(|text| text.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

impl EntryRow {
    /// The entry as the API gives it.
    pub fn into_entry(self) -> ThreadEntry {
        let is_commit = self.kind == "commit";
        ThreadEntry {
            seq: u64::try_from(self.seq).unwrap_or(0),
            kind: match self.kind.as_str() {
                "commit" => EntryKind::Commit,
                "recall" => EntryKind::Recall,
                "lifespan" => EntryKind::Lifespan,
                _ => EntryKind::Application,
            },
            recalls: self.recalls.and_then(|seq| u64::try_from(seq).ok()),
            epoch: u64::try_from(self.epoch).unwrap_or(0),
            sender_user: self.sender_user,
            sender_device: self.sender_device,
            created_at_ms: self.created_at_ms,
            // A message recalled under a legal hold keeps its ciphertext
            // until the hold is lifted, but no one is served it.
            body: Blob(if self.recalled_at_ms.is_some() {
                Vec::new()
            } else {
                self.body
            }),
            change: is_commit.then(|| MembershipChange {
                add: ids(self.added),
                remove: ids(self.removed),
            }),
            lifespan_s: self
                .lifespan_ms
                .and_then(|ms| u64::try_from(ms / 1000).ok()),
            purged_at_ms: self.purged_at_ms,
            urgent: self.urgent != 0,
        }
    }
}

/// Entries of `thread_id` after `after` up to `through`, in order, at most
/// `limit`.
pub async fn page<'c, E>(
    executor: E,
    thread_id: &str,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<EntryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM thread_entry WHERE thread_id = $1 AND seq > $2 AND seq <= $3 \
         ORDER BY seq LIMIT $4"
    ))
    .bind(thread_id)
    .bind(after)
    .bind(through)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Exactly the entries named by (thread, seq) pairs, in one query.
pub async fn named<'c, E>(executor: E, wanted: &[(&str, i64)]) -> Result<Vec<EntryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<String> = (0..wanted.len())
        .map(|n| format!("(thread_id = ${} AND seq = ${})", 2 * n + 1, 2 * n + 2))
        .collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM thread_entry WHERE {}",
        pairs.join(" OR ")
    );
    let mut query = sqlx::query_as::<_, EntryRow>(&sql);
    for (thread, seq) in wanted {
        query = query.bind(*thread).bind(*seq);
    }
    query.fetch_all(executor).await
}

/// A commit to append to a thread's log.
#[derive(Clone, Copy)]
pub struct NewCommit<'a> {
    /// The thread.
    pub thread_id: &'a str,
    /// Its place in the log (taken by [`super::thread::advance_epoch`]).
    pub seq: i64,
    /// The epoch it was made in.
    pub epoch: i64,
    /// The sending user.
    pub sender_user: &'a str,
    /// The sending device.
    pub sender_device: &'a str,
    /// When the server accepted it (Unix ms).
    pub created_at_ms: i64,
    /// The MLS commit (never logged).
    pub body: &'a [u8],
    /// The devices it adds.
    pub add: &'a [String],
    /// The devices it removes.
    pub remove: &'a [String],
}

impl std::fmt::Debug for NewCommit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCommit")
            .field("thread_id", &self.thread_id)
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .field("sender_user", &self.sender_user)
            .field("sender_device", &self.sender_device)
            .field("created_at_ms", &self.created_at_ms)
            .field("add", &self.add)
            .field("remove", &self.remove)
            .finish_non_exhaustive()
    }
}

/// Appends a commit to its thread's log (messages are appended in the
/// audit writer's batches, see `crate::db::message_batch`).
pub async fn insert_commit<'c, E>(executor: E, commit: NewCommit<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
         created_at_ms, body, added, removed) \
         VALUES ($1, $2, 'commit', $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(commit.thread_id)
    .bind(commit.seq)
    .bind(commit.epoch)
    .bind(commit.sender_user)
    .bind(commit.sender_device)
    .bind(commit.created_at_ms)
    .bind(commit.body)
    .bind(commit.add.join(" "))
    .bind(commit.remove.join(" "))
    .execute(executor)
    .await?;
    Ok(())
}

/// What a recall needs to know of the entry it names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecallTarget {
    /// `commit`, `application` or `recall`.
    pub kind: String,
    /// Who sent it.
    pub sender_user: String,
    /// When it was recalled, if it was.
    pub recalled_at_ms: Option<i64>,
}

/// The entry at `seq` of `thread_id`, as a recall sees it, if there is one.
pub async fn recall_target<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
) -> Result<Option<RecallTarget>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT kind, sender_user, recalled_at_ms FROM thread_entry \
         WHERE thread_id = $1 AND seq = $2",
    )
    .bind(thread_id)
    .bind(seq)
    .fetch_optional(executor)
    .await
}

/// Marks the application message at `seq` recalled at `now_ms`, and
/// erases its ciphertext (its body becomes empty) if `erase` (not under a
/// legal hold), unless it already was recalled; returns whether it did.
pub async fn mark_recalled<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
    now_ms: i64,
    erase: bool,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    // The body's new value: empty, or (kept under a hold) itself.
    let body = if erase { "$4" } else { "body" };
    let sql = format!(
        "UPDATE thread_entry SET body = {body}, recalled_at_ms = $1 \
         WHERE thread_id = $2 AND seq = $3 AND kind = 'application' AND recalled_at_ms IS NULL"
    );
    let marked = sqlx::query(&sql).bind(now_ms).bind(thread_id).bind(seq);
    let marked = if erase {
        marked.bind(Vec::<u8>::new())
    } else {
        marked
    }
    .execute(executor)
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// A recall to append to a thread's log.
#[derive(Debug, Clone, Copy)]
pub struct NewRecall<'a> {
    /// The thread.
    pub thread_id: &'a str,
    /// Its place in the log.
    pub seq: i64,
    /// The thread's epoch (a recall does not change it).
    pub epoch: i64,
    /// The recalling user (the message's sender).
    pub sender_user: &'a str,
    /// The device it came from.
    pub sender_device: &'a str,
    /// When the server accepted it (Unix ms).
    pub created_at_ms: i64,
    /// The message it recalls.
    pub recalls: i64,
}

/// Appends a recall to its thread's log.
pub async fn insert_recall<'c, E>(executor: E, recall: NewRecall<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
         created_at_ms, body, recalls) \
         VALUES ($1, $2, 'recall', $3, $4, $5, $6, $7, $8)",
    )
    .bind(recall.thread_id)
    .bind(recall.seq)
    .bind(recall.epoch)
    .bind(recall.sender_user)
    .bind(recall.sender_device)
    .bind(recall.created_at_ms)
    .bind(Vec::<u8>::new())
    .bind(recall.recalls)
    .execute(executor)
    .await?;
    Ok(())
}

/// A change of lifespan to append to a thread's log.
#[derive(Debug, Clone, Copy)]
pub struct NewLifespan<'a> {
    /// The thread.
    pub thread_id: &'a str,
    /// Its place in the log.
    pub seq: i64,
    /// The thread's epoch (it does not change).
    pub epoch: i64,
    /// The member who set it.
    pub sender_user: &'a str,
    /// Their device.
    pub sender_device: &'a str,
    /// When the server accepted it (Unix ms).
    pub created_at_ms: i64,
    /// The new lifespan (`None`: off).
    pub lifespan_ms: Option<i64>,
}

/// Appends a change of lifespan to its thread's log.
pub async fn insert_lifespan<'c, E>(
    executor: E,
    lifespan: NewLifespan<'_>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
         created_at_ms, body, lifespan_ms) \
         VALUES ($1, $2, 'lifespan', $3, $4, $5, $6, $7, $8)",
    )
    .bind(lifespan.thread_id)
    .bind(lifespan.seq)
    .bind(lifespan.epoch)
    .bind(lifespan.sender_user)
    .bind(lifespan.sender_device)
    .bind(lifespan.created_at_ms)
    .bind(Vec::<u8>::new())
    .bind(lifespan.lifespan_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Appends one application message (one that carries attachments, which
/// its transaction binds to it, or an urgent one, which it records for
/// escalation; others go in the pipeline's batches).
pub async fn insert_message<'c, E>(
    executor: E,
    message: &super::message_batch::NewMessage,
    seq: i64,
    now_ms: i64,
    urgent: bool,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
         created_at_ms, body, urgent) VALUES ($1, $2, 'application', $3, $4, $5, $6, $7, $8)",
    )
    .bind(&message.thread_id)
    .bind(seq)
    .bind(message.epoch)
    .bind(&message.user_id)
    .bind(&message.device_id)
    .bind(now_ms)
    .bind(&message.ciphertext)
    .bind(i64::from(urgent))
    .execute(executor)
    .await?;
    Ok(())
}
