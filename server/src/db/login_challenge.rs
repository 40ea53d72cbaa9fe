//! `login_challenge`: single-use nonces a device signs to sign in. One is
//! issued for any well-formed device id, enrolled or not (so that asking
//! tells no one which devices exist); expired ones are swept
//! (`crate::sweep`).

use sqlx::Any;

/// Records a challenge for `device_id` with this nonce, valid until
/// `expires_at_ms`.
pub async fn insert<'c, E>(
    executor: E,
    challenge_id: &str,
    device_id: &str,
    nonce: &[u8],
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO login_challenge (challenge_id, device_id, nonce, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(challenge_id)
    .bind(device_id)
    .bind(nonce)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks the challenge used if it was issued to `device_id` and is unused
/// and unexpired at `now_ms`, and returns its nonce. One statement, so that
/// it serves once even when two logins race.
pub async fn claim<'c, E>(
    executor: E,
    challenge_id: &str,
    device_id: &str,
    now_ms: i64,
) -> Result<Option<Vec<u8>>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "UPDATE login_challenge SET used_at_ms = $1 \
         WHERE challenge_id = $2 AND device_id = $3 AND used_at_ms IS NULL AND expires_at_ms > $1 \
         RETURNING nonce",
    )
    .bind(now_ms)
    .bind(challenge_id)
    .bind(device_id)
    .fetch_optional(executor)
    .await
}

/// Where a challenge stands: whom it was issued to, when it expires, and
/// whether it was used.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChallengeState {
    /// The device it was issued to.
    pub device_id: String,
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
    /// When a login used it, if one did (Unix ms).
    pub used_at_ms: Option<i64>,
}

/// Where the challenge `challenge_id` stands, if there is one.
pub async fn find_state<'c, E>(
    executor: E,
    challenge_id: &str,
) -> Result<Option<ChallengeState>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT device_id, expires_at_ms, used_at_ms FROM login_challenge WHERE challenge_id = $1",
    )
    .bind(challenge_id)
    .fetch_optional(executor)
    .await
}

/// Deletes at most `limit` challenges that expired before `before_ms`;
/// returns how many.
pub async fn delete_expired<'c, E>(
    executor: E,
    before_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    super::delete_expired_rows(
        executor,
        "login_challenge",
        "challenge_id",
        before_ms,
        limit,
    )
    .await
}
