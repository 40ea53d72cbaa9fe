//! `thread_member`: a device's membership of a thread, from the commit that
//! added it (`joined_seq`; 0 for the creator's and the first members) until
//! the one that removed it (`removed_seq`), with its delivery receipt.
//!
//! A device is a current member of a thread when its row has no
//! `removed_seq`, the device is still enrolled and its user active: every
//! check of that (here, in [`super::thread`], and elsewhere) is built from
//! [`MEMBER_DEVICE`] and [`ENROLLED_AND_ACTIVE`], so that it is written
//! once.
//!
//! Ending memberships ([`end_memberships`]): a user deactivated, a device
//! removed, or a member leaving a thread. The devices stay in the MLS
//! groups until a member's commit removes them (which the server accepts
//! for former members); from now on the server gives them nothing more of
//! those threads, and their pending welcomes to them are withdrawn.

use std::sync::LazyLock;

use curbside_proto::threads::EndReason;
use sqlx::{Any, Transaction};

/// `thread_member m` with its device `d` and its user `u`, for a `FROM` clause.
pub const MEMBER_DEVICE: &str = "thread_member m JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id";
/// The condition that `m`'s device is enrolled and its user active (add `m.removed_seq IS NULL` for a current member).
pub const ENROLLED_AND_ACTIVE: &str = "d.removed_at_ms IS NULL AND u.status = 'active'";

/// A current member device of a thread, with its delivery receipt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// The device's user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The last entry the device has said it received.
    pub delivered_seq: i64,
}

/// A device's membership of a thread, current or ended.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    /// The entry that added it (it reads the entries after it).
    pub joined_seq: i64,
    /// The entry as of which it ended, if it ended.
    pub removed_seq: Option<i64>,
    /// The user who ended it, if recorded.
    pub removed_by: Option<String>,
    /// When it ended (Unix ms); for one that ended before the time was
    /// recorded, the time of the entry it ended at.
    pub removed_at_ms: Option<i64>,
    /// How it ended (an [`EndReason`]), if recorded.
    pub removed_reason: Option<String>,
}

/// The sequence `device_id` joined `thread_id` at, if it is a current
/// member (an enrolled device of an active user).
pub async fn joined_seq<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
) -> Result<Option<i64>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT m.joined_seq FROM {MEMBER_DEVICE} \
             WHERE m.thread_id = $1 AND m.device_id = $2 AND m.removed_seq IS NULL \
               AND {ENROLLED_AND_ACTIVE}"
        )
    });
    sqlx::query_scalar(&SQL)
        .bind(thread_id)
        .bind(device_id)
        .fetch_optional(executor)
        .await
}

/// `device_id`'s membership of `thread_id`, current or ended, if the device
/// is enrolled and its user active.
pub async fn membership<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
) -> Result<Option<MembershipRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            // Ended before the time was recorded (0007): the time of the
            // entry it ended at.
            "SELECT m.joined_seq, m.removed_seq, m.removed_by, \
               COALESCE(m.removed_at_ms, (SELECT e.created_at_ms FROM thread_entry e \
                 WHERE e.thread_id = m.thread_id AND e.seq = m.removed_seq)) AS removed_at_ms, \
               m.removed_reason \
             FROM {MEMBER_DEVICE} \
             WHERE m.thread_id = $1 AND m.device_id = $2 AND {ENROLLED_AND_ACTIVE}"
        )
    });
    sqlx::query_as(&SQL)
        .bind(thread_id)
        .bind(device_id)
        .fetch_optional(executor)
        .await
}

/// The current member devices of `thread_id` (enrolled devices of active
/// users), by user and device.
pub async fn current_members<'c, E>(
    executor: E,
    thread_id: &str,
) -> Result<Vec<MemberRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT m.user_id, m.device_id, m.delivered_seq FROM {MEMBER_DEVICE} \
             WHERE m.thread_id = $1 AND m.removed_seq IS NULL AND {ENROLLED_AND_ACTIVE} \
             ORDER BY m.user_id, m.device_id"
        )
    });
    sqlx::query_as(&SQL)
        .bind(thread_id)
        .fetch_all(executor)
        .await
}

/// How many devices have a current membership row in `thread_id`
/// (whatever their device's or user's state).
pub async fn count_current<'c, E>(executor: E, thread_id: &str) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM thread_member WHERE thread_id = $1 AND removed_seq IS NULL",
    )
    .bind(thread_id)
    .fetch_one(executor)
    .await
}

/// Whether `device_id` has ever been a member of `thread_id` (a row,
/// current or ended).
pub async fn was_ever_member<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let ever: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM thread_member WHERE thread_id = $1 AND device_id = $2",
    )
    .bind(thread_id)
    .bind(device_id)
    .fetch_one(executor)
    .await?;
    Ok(ever != 0)
}

/// `device_id`'s user, if it is an enrolled device of an active user (one
/// that may be added to a thread).
pub async fn enrolled_device_user<'c, E>(
    executor: E,
    device_id: &str,
) -> Result<Option<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT d.user_id FROM device d JOIN app_user u ON u.user_id = d.user_id \
             WHERE d.device_id = $1 AND {ENROLLED_AND_ACTIVE}"
        )
    });
    sqlx::query_scalar(&SQL)
        .bind(device_id)
        .fetch_optional(executor)
        .await
}

/// Makes the creator's device `device_id` of user `user_id` a member of
/// the new thread `thread_id` from its start.
pub async fn add_creator<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
    user_id: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread_member (thread_id, device_id, user_id, joined_seq, removed_seq, \
         delivered_seq) VALUES ($1, $2, $3, 0, NULL, 0)",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(user_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Makes `device_id` of user `user_id` a member of `thread_id` as of entry
/// `seq`, again if its membership had ended; returns false (changing
/// nothing) if it is a current member already.
pub async fn add_member<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
    user_id: &str,
    seq: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let added = sqlx::query(
        "INSERT INTO thread_member (thread_id, device_id, user_id, joined_seq, removed_seq, \
         delivered_seq) VALUES ($1, $2, $3, $4, NULL, $4) \
         ON CONFLICT (thread_id, device_id) DO UPDATE SET joined_seq = excluded.joined_seq, \
         removed_seq = NULL, delivered_seq = excluded.delivered_seq, removed_by = NULL, \
         removed_at_ms = NULL, removed_reason = NULL, evicted_seq = NULL \
         WHERE thread_member.removed_seq IS NOT NULL",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(user_id)
    .bind(seq)
    .execute(executor)
    .await?;
    Ok(added.rows_affected() == 1)
}

/// Ends `device_id`'s current membership of `thread_id` as of entry `seq`,
/// removed by a commit of `by_user` at `now_ms`; returns false (changing
/// nothing) if it had no current membership.
pub async fn remove_member<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
    seq: i64,
    by_user: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let removed = sqlx::query(
        "UPDATE thread_member SET removed_seq = $3, removed_by = $4, removed_at_ms = $5, \
         removed_reason = 'removed' \
         WHERE thread_id = $1 AND device_id = $2 AND removed_seq IS NULL",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(seq)
    .bind(by_user)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(removed.rows_affected() == 1)
}

/// Moves `device_id`'s delivery receipt in `thread_id` forward to `seq`
/// (never back) if it is a current member; returns whether it moved.
pub async fn advance_delivered<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
    seq: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let moved = sqlx::query(
        "UPDATE thread_member SET delivered_seq = $3 \
         WHERE thread_id = $1 AND device_id = $2 AND removed_seq IS NULL \
           AND delivered_seq < $3",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(seq)
    .execute(executor)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Whose memberships end.
#[derive(Debug, Clone, Copy)]
pub enum Leaving<'a> {
    /// Every device of a user, in every thread.
    User(&'a str),
    /// One device, in every thread.
    Device(&'a str),
    /// Every device of a user, in one thread.
    UserInThread {
        /// The user.
        user_id: &'a str,
        /// The thread.
        thread_id: &'a str,
    },
}

/// Ends the current memberships `leaving` names, as of each thread's last
/// entry, recording that `by_user` ended them at `now_ms`, and deletes the
/// welcomes waiting for those devices there; returns how many memberships
/// ended.
pub async fn end_memberships(
    tx: &mut Transaction<'_, Any>,
    leaving: Leaving<'_>,
    by_user: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let (members, welcomes, reason, first, second) = match leaving {
        Leaving::User(user_id) => (
            "user_id = $1",
            "device_id IN (SELECT device_id FROM device WHERE user_id = $1)",
            EndReason::Deactivated,
            user_id,
            None,
        ),
        Leaving::Device(device_id) => (
            "device_id = $1",
            "device_id = $1",
            EndReason::DeviceRemoved,
            device_id,
            None,
        ),
        Leaving::UserInThread { user_id, thread_id } => (
            "user_id = $1 AND thread_id = $4",
            "thread_id = $2 AND device_id IN (SELECT device_id FROM device WHERE user_id = $1)",
            EndReason::Left,
            user_id,
            Some(thread_id),
        ),
    };
    let update = format!(
        "UPDATE thread_member SET removed_seq = \
         (SELECT t.last_seq FROM thread t WHERE t.thread_id = thread_member.thread_id), \
         removed_by = $2, removed_at_ms = $3, removed_reason = '{}' \
         WHERE {members} AND removed_seq IS NULL",
        reason.as_str()
    );
    let delete = format!("DELETE FROM welcome WHERE {welcomes}");
    let mut update = sqlx::query(&update).bind(first).bind(by_user).bind(now_ms);
    let mut delete = sqlx::query(&delete).bind(first);
    if let Some(second) = second {
        update = update.bind(second);
        delete = delete.bind(second);
    }
    let ended = update.execute(&mut **tx).await?.rows_affected();
    delete.execute(&mut **tx).await?;
    Ok(ended)
}
