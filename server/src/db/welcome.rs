//! `welcome`: the MLS Welcome queued for each device added to a thread,
//! until the device acknowledges it (or its membership ends, see
//! [`super::thread_member::end_memberships`]).

use sqlx::Any;

/// A welcome waiting for a device.
#[derive(Clone, sqlx::FromRow)]
pub struct WelcomeRow {
    /// The welcome.
    pub welcome_id: String,
    /// The thread it admits the device to.
    pub thread_id: String,
    /// The epoch it admits the device at.
    pub epoch: i64,
    /// The entry that added the device (it reads the entries after it).
    pub joined_seq: i64,
    /// The MLS Welcome (never logged).
    pub welcome: Vec<u8>,
}

impl std::fmt::Debug for WelcomeRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WelcomeRow")
            .field("welcome_id", &self.welcome_id)
            .field("thread_id", &self.thread_id)
            .field("epoch", &self.epoch)
            .field("joined_seq", &self.joined_seq)
            .finish_non_exhaustive()
    }
}

/// A welcome to queue.
#[derive(Clone, Copy)]
pub struct NewWelcome<'a> {
    /// Its id.
    pub welcome_id: &'a str,
    /// The device it is for.
    pub device_id: &'a str,
    /// The thread it admits the device to.
    pub thread_id: &'a str,
    /// The epoch it admits the device at.
    pub epoch: i64,
    /// The entry that added the device.
    pub joined_seq: i64,
    /// The MLS Welcome.
    pub welcome: &'a [u8],
    /// When it was queued (Unix ms).
    pub created_at_ms: i64,
}

impl std::fmt::Debug for NewWelcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWelcome")
            .field("welcome_id", &self.welcome_id)
            .field("device_id", &self.device_id)
            .field("thread_id", &self.thread_id)
            .field("epoch", &self.epoch)
            .field("joined_seq", &self.joined_seq)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// Queues `new` for its device.
pub async fn queue<'c, E>(executor: E, new: NewWelcome<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO welcome (welcome_id, device_id, thread_id, epoch, joined_seq, welcome, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new.welcome_id)
    .bind(new.device_id)
    .bind(new.thread_id)
    .bind(new.epoch)
    .bind(new.joined_seq)
    .bind(new.welcome)
    .bind(new.created_at_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes the welcomes to `thread_id` waiting for `device_id`.
pub async fn withdraw<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("DELETE FROM welcome WHERE thread_id = $1 AND device_id = $2")
        .bind(thread_id)
        .bind(device_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The first 100 welcomes waiting for `device_id`, oldest first, to
/// threads it is still a member of.
pub async fn pending_for_device<'c, E>(
    executor: E,
    device_id: &str,
) -> Result<Vec<WelcomeRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    // Only welcomes to threads the device is still a member of: one whose
    // membership ended (a removal, a deactivation, leaving) is withdrawn.
    sqlx::query_as(
        "SELECT w.welcome_id, w.thread_id, w.epoch, w.joined_seq, w.welcome FROM welcome w \
         JOIN thread_member m ON m.thread_id = w.thread_id AND m.device_id = w.device_id \
         WHERE w.device_id = $1 AND m.removed_seq IS NULL \
         ORDER BY w.created_at_ms, w.welcome_id LIMIT 100",
    )
    .bind(device_id)
    .fetch_all(executor)
    .await
}

/// Deletes welcome `welcome_id` if it is `device_id`'s; returns whether it
/// was.
pub async fn acknowledge<'c, E>(
    executor: E,
    welcome_id: &str,
    device_id: &str,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let deleted = sqlx::query("DELETE FROM welcome WHERE welcome_id = $1 AND device_id = $2")
        .bind(welcome_id)
        .bind(device_id)
        .execute(executor)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Deletes at most `limit` welcomes that can never be delivered: to a
/// thread whose membership ended for their device (it left, was
/// deactivated or removed; a removal by commit withdraws them at once);
/// returns how many.
pub async fn delete_undeliverable<'c, E>(executor: E, limit: i64) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query(
        "DELETE FROM welcome WHERE welcome_id IN \
         (SELECT w.welcome_id FROM welcome w JOIN thread_member m \
          ON m.thread_id = w.thread_id AND m.device_id = w.device_id \
          WHERE m.removed_seq IS NOT NULL LIMIT $1)",
    )
    .bind(limit)
    .execute(executor)
    .await?
    .rows_affected())
}
