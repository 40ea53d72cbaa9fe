//! `thread`: one row per MLS group (`thread_id` is the group id), with the
//! epoch the server accepts commits and messages for, the last entry of its
//! log, and when it was last active.
//!
//! A commit is accepted only for the thread's current epoch: one
//! compare-and-swap `UPDATE` ([`advance_epoch`]) moves the epoch and takes
//! the next sequence number, so of two commits made at the same epoch
//! exactly one wins. The same statement checks that the sender is still a
//! member, so a device removed a moment ago cannot slip a message in.

use std::sync::LazyLock;

use sqlx::Any;

use super::thread_member::{ENROLLED_AND_ACTIVE, MEMBER_DEVICE};

/// A thread as a member device sees it in a list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SummaryRow {
    /// The thread (its MLS group id).
    pub thread_id: String,
    /// The epoch the server accepts.
    pub epoch: i64,
    /// Its log's last entry.
    pub last_seq: i64,
    /// Application messages from other users since the device joined that
    /// its user has not read.
    pub unread: i64,
    /// When the thread was last active (Unix ms).
    pub last_activity_ms: i64,
    /// Its lifespan (disappearing messages), if it has one.
    pub lifespan_ms: Option<i64>,
}

/// [`SummaryRow`]s of the threads device `$1` of user `$2` is a current
/// member of; the caller adds conditions with `AND` (placeholders from
/// `$3`).
const SUMMARY_SQL: &str = "SELECT t.thread_id, t.epoch, t.last_seq, \
     (SELECT COUNT(*) FROM thread_entry e WHERE e.thread_id = t.thread_id \
        AND e.kind = 'application' AND e.sender_user <> $2 AND e.seq > m.joined_seq \
        AND e.recalled_at_ms IS NULL AND e.purged_at_ms IS NULL \
        AND e.seq > COALESCE((SELECT r.read_seq FROM read_receipt r \
                              WHERE r.thread_id = t.thread_id AND r.user_id = $2), 0)) AS unread, \
     t.last_activity_ms, t.lifespan_ms \
     FROM thread t JOIN thread_member m ON m.thread_id = t.thread_id \
     WHERE m.device_id = $1 AND m.removed_seq IS NULL";

/// Makes thread `thread_id`, created by `created_by` at `now_ms` at
/// `epoch`, with an empty log. A thread of that id already there is a
/// unique violation.
pub async fn create<'c, E>(
    executor: E,
    thread_id: &str,
    created_by: &str,
    now_ms: i64,
    epoch: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread (thread_id, created_by, created_at_ms, epoch, last_seq, \
         last_activity_ms) VALUES ($1, $2, $3, $4, 0, $3)",
    )
    .bind(thread_id)
    .bind(created_by)
    .bind(now_ms)
    .bind(epoch)
    .execute(executor)
    .await?;
    Ok(())
}

/// The compare-and-swap that moves thread `$1` on by one entry if it is
/// at epoch `$2` and device `$5` is a member: to epoch `$3`, with activity
/// at `$4`. Returns the entry's sequence number, or no row.
static ADVANCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE thread SET epoch = $3, last_seq = last_seq + 1, last_activity_ms = $4 \
         WHERE thread_id = $1 AND epoch = $2 AND \
         EXISTS (SELECT 1 FROM {MEMBER_DEVICE} \
                 WHERE m.thread_id = $1 AND m.device_id = $5 AND m.removed_seq IS NULL \
                   AND {ENROLLED_AND_ACTIVE}) \
         RETURNING last_seq"
    )
});

/// Moves `thread_id` on by one entry, to `next_epoch` with activity at
/// `now_ms`, if it is at `epoch` and `device_id` is a current member;
/// returns the entry's sequence number, or `None` (changing nothing).
pub async fn advance_epoch<'c, E>(
    executor: E,
    thread_id: &str,
    epoch: i64,
    next_epoch: i64,
    now_ms: i64,
    device_id: &str,
) -> Result<Option<i64>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(&ADVANCE)
        .bind(thread_id)
        .bind(epoch)
        .bind(next_epoch)
        .bind(now_ms)
        .bind(device_id)
        .fetch_optional(executor)
        .await
}

/// Like [`ADVANCE`] at whatever epoch the thread is at, which it keeps.
/// Returns the entry's sequence number and the epoch, or no row.
static ADVANCE_LOG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE thread SET last_seq = last_seq + 1, last_activity_ms = $2 \
         WHERE thread_id = $1 AND \
         EXISTS (SELECT 1 FROM {MEMBER_DEVICE} \
                 WHERE m.thread_id = $1 AND m.device_id = $3 AND m.removed_seq IS NULL \
                   AND {ENROLLED_AND_ACTIVE}) \
         RETURNING last_seq, epoch"
    )
});

/// Moves `thread_id` on by one entry at its epoch (an entry that is no
/// MLS message: a recall), with activity at `now_ms`, if `device_id` is a
/// current member; returns the entry's sequence number and the epoch, or
/// `None` (changing nothing).
pub async fn advance_log<'c, E>(
    executor: E,
    thread_id: &str,
    now_ms: i64,
    device_id: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&ADVANCE_LOG)
        .bind(thread_id)
        .bind(now_ms)
        .bind(device_id)
        .fetch_optional(executor)
        .await
}

/// The last entry of `thread_id`'s log (an error if there is no such
/// thread).
pub async fn last_seq<'c, E>(executor: E, thread_id: &str) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT last_seq FROM thread WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_one(executor)
        .await
}

/// The last entry of `thread_id`'s log and its lifespan (an error if
/// there is no such thread).
pub async fn log_state<'c, E>(
    executor: E,
    thread_id: &str,
) -> Result<(i64, Option<i64>), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as("SELECT last_seq, lifespan_ms FROM thread WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_one(executor)
        .await
}

/// The epoch `thread_id` is at (an error if there is no such thread).
pub async fn current_epoch<'c, E>(executor: E, thread_id: &str) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT epoch FROM thread WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_one(executor)
        .await
}

/// A page of the threads `device_id` of `user_id` is a current member of,
/// most recently active first: those after the place (`before_ms`,
/// `after_id`) in that order, at most `limit`.
pub async fn summaries_for_device<'c, E>(
    executor: E,
    device_id: &str,
    user_id: &str,
    before_ms: i64,
    after_id: &str,
    limit: i64,
) -> Result<Vec<SummaryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{SUMMARY_SQL} AND (t.last_activity_ms < $3 OR (t.last_activity_ms = $3 AND t.thread_id > $4)) \
             ORDER BY t.last_activity_ms DESC, t.thread_id LIMIT $5"
        )
    });
    sqlx::query_as(&SQL)
        .bind(device_id)
        .bind(user_id)
        .bind(before_ms)
        .bind(after_id)
        .bind(limit)
        .fetch_all(executor)
        .await
}

/// Thread `thread_id` as `device_id` of `user_id` sees it, if the device
/// is a current member.
pub async fn summary_for_device<'c, E>(
    executor: E,
    device_id: &str,
    user_id: &str,
    thread_id: &str,
) -> Result<Option<SummaryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| format!("{SUMMARY_SQL} AND t.thread_id = $3"));
    sqlx::query_as(&SQL)
        .bind(device_id)
        .bind(user_id)
        .bind(thread_id)
        .fetch_optional(executor)
        .await
}

/// Sets `thread_id`'s lifespan (`None`: messages stay) by its entry at
/// `seq`, noting the first entry to set one, and records the change.
pub async fn set_lifespan(
    connection: &mut sqlx::AnyConnection,
    thread_id: &str,
    lifespan_ms: Option<i64>,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE thread SET lifespan_ms = $1, lifespan_since_seq = \
         CASE WHEN lifespan_since_seq IS NULL AND $1 IS NOT NULL THEN $2 \
         ELSE lifespan_since_seq END WHERE thread_id = $3",
    )
    .bind(lifespan_ms)
    .bind(seq)
    .bind(thread_id)
    .execute(&mut *connection)
    .await?;
    sqlx::query("INSERT INTO thread_lifespan (thread_id, seq, lifespan_ms) VALUES ($1, $2, $3)")
        .bind(thread_id)
        .bind(seq)
        .bind(lifespan_ms)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
