//! `events_ticket`: single-use tickets that let a browser open the
//! live-events WebSocket, which cannot carry an `Authorization` header.
//! Only the ticket's SHA-256 is stored; the upgrade that uses it deletes it
//! in the same statement that reads it, so it serves once even when two
//! upgrades race. Expired ones are swept (`crate::sweep`).

use sqlx::Any;

/// Whose session a ticket opens the socket for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketHolder {
    /// The session it was issued to.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// Its device.
    pub device_id: String,
}

/// Records a ticket (by its SHA-256) for a session until `expires_at_ms`.
pub async fn insert<'c, E>(
    executor: E,
    ticket_hash: &[u8],
    holder: &TicketHolder,
    expires_at_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO events_ticket (ticket_hash, session_id, user_id, device_id, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket_hash)
    .bind(&holder.session_id)
    .bind(&holder.user_id)
    .bind(&holder.device_id)
    .bind(expires_at_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes the ticket with this hash and returns its holder, if it had not
/// expired at `now_ms`. One statement: a ticket serves once.
pub async fn take<'c, E>(
    executor: E,
    ticket_hash: &[u8],
    now_ms: i64,
) -> Result<Option<TicketHolder>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "DELETE FROM events_ticket WHERE ticket_hash = $1 AND expires_at_ms > $2 \
         RETURNING session_id, user_id, device_id",
    )
    .bind(ticket_hash)
    .bind(now_ms)
    .fetch_optional(executor)
    .await
}

/// Deletes at most `limit` tickets that expired before `before_ms`;
/// returns how many.
pub async fn delete_expired<'c, E>(
    executor: E,
    before_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    super::delete_expired_rows(executor, "events_ticket", "ticket_hash", before_ms, limit).await
}
