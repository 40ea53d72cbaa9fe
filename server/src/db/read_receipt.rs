//! `read_receipt`: how far each user has read each thread (one receipt per
//! user, whichever device read; delivery is per device, in
//! `thread_member`).

use sqlx::Any;

/// How far a user has read a thread.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReadRow {
    /// The user.
    pub user_id: String,
    /// The last entry they have read.
    pub read_seq: i64,
}

/// Moves `user_id`'s read receipt in `thread_id` forward to `seq` (never
/// back); returns whether it moved.
pub async fn advance<'c, E>(
    executor: E,
    thread_id: &str,
    user_id: &str,
    seq: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let moved = sqlx::query(
        "INSERT INTO read_receipt (thread_id, user_id, read_seq) VALUES ($1, $2, $3) \
         ON CONFLICT (thread_id, user_id) DO UPDATE SET read_seq = excluded.read_seq \
         WHERE read_receipt.read_seq < excluded.read_seq",
    )
    .bind(thread_id)
    .bind(user_id)
    .bind(seq)
    .execute(executor)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// The read receipts in `thread_id` of active users with a current
/// membership there, by user.
pub async fn of_current_members<'c, E>(
    executor: E,
    thread_id: &str,
) -> Result<Vec<ReadRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    // Per user, not per device: any current membership row of an active
    // user counts, whatever state its device is in.
    sqlx::query_as(
        "SELECT r.user_id, r.read_seq FROM read_receipt r WHERE r.thread_id = $1 \
         AND EXISTS (SELECT 1 FROM thread_member m JOIN app_user u ON u.user_id = m.user_id \
                     WHERE m.thread_id = r.thread_id AND m.user_id = r.user_id \
                       AND m.removed_seq IS NULL AND u.status = 'active') \
         ORDER BY r.user_id",
    )
    .bind(thread_id)
    .fetch_all(executor)
    .await
}
