//! Ending thread memberships: a user deactivated, a device removed, or a
//! member leaving a thread. The devices stay in the MLS groups until a
//! member's commit removes them (which the server accepts for former
//! members); from now on the server gives them nothing more of those
//! threads, and their pending welcomes to them are withdrawn.

use curbside_proto::threads::EndReason;
use sqlx::{Any, Transaction};

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
pub async fn end(
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
