//! `enrollment_code`: one-time codes a device enrolls with. Only the
//! SHA-256 of a code is kept, with an id of its own to list and revoke it
//! by. A code with no user is a first-administrator code: enrolling with
//! it creates the user.

use curbside_proto::identity::OutstandingCode;
use sqlx::Any;

/// Records a code (by its hash) valid until `expires_at_ms`, for `user_id`,
/// or (with `None`) for a first administrator whom enrollment creates.
pub async fn insert<'c, E>(
    executor: E,
    code_hash: &[u8],
    code_id: &str,
    user_id: Option<&str>,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    // The table's check: a code has a user or a bootstrap role, not both.
    let bootstrap_role = user_id.is_none().then_some("admin");
    sqlx::query(
        "INSERT INTO enrollment_code (code_hash, user_id, bootstrap_role, created_at_ms, \
         expires_at_ms, code_id) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(code_hash)
    .bind(user_id)
    .bind(bootstrap_role)
    .bind(now_ms)
    .bind(expires_at_ms)
    .bind(code_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Whom a claimed code enrolls.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedCode {
    /// The user the code was issued for; `None` for a first-administrator
    /// code.
    pub user_id: Option<String>,
    /// The role of the user a first-administrator code creates.
    pub bootstrap_role: Option<String>,
}

/// Marks the code with this hash used, if it is unused, unrevoked and
/// unexpired at `now_ms`, and says whom it enrolls. One statement, so that
/// exactly one of racing claims wins.
pub async fn claim<'c, E>(
    executor: E,
    code_hash: &[u8],
    now_ms: i64,
) -> Result<Option<ClaimedCode>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "UPDATE enrollment_code SET used_at_ms = $1 \
         WHERE code_hash = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $1 \
         RETURNING user_id, bootstrap_role",
    )
    .bind(now_ms)
    .bind(code_hash)
    .fetch_optional(executor)
    .await
}

/// Where a code stands: when it expires, and whether it was used or
/// revoked.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct CodeState {
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
    /// When a device enrolled with it, if one did (Unix ms).
    pub used_at_ms: Option<i64>,
    /// When it was withdrawn, if it was (Unix ms).
    pub revoked_at_ms: Option<i64>,
}

/// Where the code with this hash stands, if there is one.
pub async fn find_state<'c, E>(
    executor: E,
    code_hash: &[u8],
) -> Result<Option<CodeState>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT expires_at_ms, used_at_ms, revoked_at_ms FROM enrollment_code WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(executor)
    .await
}

/// An outstanding code (unused, unrevoked, unexpired), without the code.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutstandingRow {
    /// The code's id.
    pub code_id: String,
    /// When it was issued (Unix ms).
    pub created_at_ms: i64,
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
}

impl OutstandingRow {
    /// The code as the API lists it.
    pub fn into_outstanding(self) -> OutstandingCode {
        OutstandingCode {
            code_id: self.code_id,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// A user's outstanding codes at `now_ms`, oldest first.
pub async fn list_outstanding<'c, E>(
    executor: E,
    user_id: &str,
    now_ms: i64,
) -> Result<Vec<OutstandingRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT code_id, created_at_ms, expires_at_ms FROM enrollment_code \
         WHERE user_id = $1 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $2 \
         ORDER BY created_at_ms, code_id",
    )
    .bind(user_id)
    .bind(now_ms)
    .fetch_all(executor)
    .await
}

/// Revokes the code `code_id` of `user_id` if it is outstanding at
/// `now_ms`; returns how many it revoked (0 or 1).
pub async fn revoke<'c, E>(
    executor: E,
    user_id: &str,
    code_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query(
        "UPDATE enrollment_code SET revoked_at_ms = $1 \
         WHERE code_id = $2 AND user_id = $3 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $1",
    )
    .bind(now_ms)
    .bind(code_id)
    .bind(user_id)
    .execute(executor)
    .await?
    .rows_affected())
}

/// Revokes a user's codes that are outstanding at `now_ms` (unused,
/// unrevoked, unexpired); returns how many.
pub async fn revoke_outstanding_for_user<'c, E>(
    executor: E,
    user_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query(
        "UPDATE enrollment_code SET revoked_at_ms = $1 \
         WHERE user_id = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $1",
    )
    .bind(now_ms)
    .bind(user_id)
    .execute(executor)
    .await?
    .rows_affected())
}

/// Revokes every unused, unrevoked code of a user, expired or not (a
/// deactivated user's codes are revoked, not "used": no device enrolled
/// with them); returns how many.
pub async fn revoke_all_unused_for_user<'c, E>(
    executor: E,
    user_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query(
        "UPDATE enrollment_code SET revoked_at_ms = $1 \
         WHERE user_id = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(user_id)
    .execute(executor)
    .await?
    .rows_affected())
}

/// How many first-administrator codes are unused and unexpired at
/// `now_ms`.
pub async fn count_pending_first_admin<'c, E>(executor: E, now_ms: i64) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM enrollment_code \
         WHERE bootstrap_role IS NOT NULL AND used_at_ms IS NULL AND expires_at_ms > $1",
    )
    .bind(now_ms)
    .fetch_one(executor)
    .await
}

/// Deletes at most `limit` enrollment codes (used, revoked or not) that
/// expired before `before_ms`; returns how many.
pub async fn delete_expired<'c, E>(
    executor: E,
    before_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    super::delete_expired_rows(executor, "enrollment_code", "code_hash", before_ms, limit).await
}
