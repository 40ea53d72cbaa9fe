//! The reads of push delivery (`crate::push`): who is to be pushed what a
//! notice names, and, on PostgreSQL, the `NOTIFY` that carries notices to
//! the other replicas.

use sqlx::Any;

use super::batch::marks;
use super::thread_member::{ENROLLED_AND_ACTIVE, MEMBER_DEVICE};

/// A member device of a thread, with the sequence numbers it joined and
/// left at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberDevice {
    /// The thread.
    pub thread_id: String,
    /// The device.
    pub device_id: String,
    /// The commit that added it.
    pub joined_seq: i64,
    /// Where its membership ended, if it did.
    pub removed_seq: Option<i64>,
}

/// The member devices of `threads` (enrolled devices of active users) that
/// are members still or were removed at or after `since_seq` (a commit
/// that removes a device is pushed to it: that is how it learns of it).
pub async fn members_since<'c, E>(
    executor: E,
    threads: &[&str],
    since_seq: i64,
) -> Result<Vec<MemberDevice>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if threads.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT m.thread_id, m.device_id, m.joined_seq, m.removed_seq FROM {MEMBER_DEVICE} \
         WHERE m.thread_id IN ({}) AND (m.removed_seq IS NULL OR m.removed_seq >= $1) \
           AND {ENROLLED_AND_ACTIVE}",
        marks(2, threads.len())
    );
    let mut query = sqlx::query_as::<_, MemberDevice>(&sql).bind(since_seq);
    for thread in threads {
        query = query.bind(*thread);
    }
    query.fetch_all(executor).await
}

/// The devices that are current members of `thread_id` and joined before
/// `seq`, and are enrolled devices of active users.
pub async fn current_members<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
) -> Result<Vec<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(&format!(
        "SELECT m.device_id FROM {MEMBER_DEVICE} \
         WHERE m.thread_id = $1 AND m.removed_seq IS NULL AND m.joined_seq < $2 \
           AND {ENROLLED_AND_ACTIVE}"
    ))
    .bind(thread_id)
    .bind(seq)
    .fetch_all(executor)
    .await
}

/// A welcome waiting for a device.
#[derive(Clone, sqlx::FromRow)]
pub struct PendingWelcome {
    /// The thread it joins.
    pub thread_id: String,
    /// The epoch it joins at.
    pub epoch: i64,
    /// The commit that added the device.
    pub joined_seq: i64,
    /// The MLS Welcome (never logged).
    pub welcome: Vec<u8>,
}

impl std::fmt::Debug for PendingWelcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWelcome")
            .field("thread_id", &self.thread_id)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Welcome `welcome_id`, if it is still waiting for `device_id`.
pub async fn welcome<'c, E>(
    executor: E,
    welcome_id: &str,
    device_id: &str,
) -> Result<Option<PendingWelcome>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT thread_id, epoch, joined_seq, welcome FROM welcome \
         WHERE welcome_id = $1 AND device_id = $2",
    )
    .bind(welcome_id)
    .bind(device_id)
    .fetch_optional(executor)
    .await
}

/// Sends `payload` on the PostgreSQL notification `channel` (a
/// transaction and a commit of its own).
pub async fn notify<'c, E>(executor: E, channel: &str, payload: &str) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(executor)
        .await
        .map(drop)
}

/// A PostgreSQL connection of its own, listening on the notification
/// `channel` (it reconnects by itself; what was sent meanwhile is lost).
pub async fn listen(
    database_url: &str,
    channel: &str,
) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(database_url).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
