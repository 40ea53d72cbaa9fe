//! `session`: one row per login, from the challenge-response sign-in until
//! it ends (logout, idleness, device removal, user deactivation). The
//! session cache (`crate::auth::sessions`) reads these and writes when a
//! session was last seen.

use sqlx::Any;

/// A session joined with its user and device: what deciding whether it is
/// live needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionState {
    /// The session's user.
    pub user_id: String,
    /// The session's device.
    pub device_id: String,
    /// When it stops working, however active (Unix ms).
    pub expires_at_ms: i64,
    /// When it was last seen, as last written (Unix ms).
    pub last_seen_at_ms: i64,
    /// When it ended, if it has (Unix ms).
    pub ended_at_ms: Option<i64>,
    /// The user's status (`active` or `deactivated`).
    pub user_status: String,
    /// The user's role.
    pub user_role: String,
    /// When the device was removed, if it was (Unix ms).
    pub device_removed_at_ms: Option<i64>,
    /// The current messaging policy version, if one was published.
    pub policy_version: Option<i64>,
    /// The latest policy version the user accepted, if any.
    pub policy_accepted: Option<i64>,
}

/// The columns `policy_version` and `policy_accepted` of a query over
/// `session s`: the current messaging policy version and the latest one
/// the session's user accepted.
const POLICY_STANDING: &str = "(SELECT MAX(version) FROM policy_version) AS policy_version, \
     (SELECT MAX(version) FROM policy_acceptance a WHERE a.user_id = s.user_id) \
     AS policy_accepted";

/// The session `session_id`, with its user's status and role and whether
/// its device was removed.
pub async fn find<'c, E>(executor: E, session_id: &str) -> Result<Option<SessionState>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT s.user_id AS user_id, s.device_id AS device_id, \
                s.expires_at_ms AS expires_at_ms, s.last_seen_at_ms AS last_seen_at_ms, \
                s.ended_at_ms AS ended_at_ms, u.status AS user_status, u.role AS user_role, \
                d.removed_at_ms AS device_removed_at_ms, {POLICY_STANDING} \
         FROM session s \
         JOIN app_user u ON u.user_id = s.user_id \
         JOIN device d ON d.device_id = s.device_id \
         WHERE s.session_id = $1"
    ))
    .bind(session_id)
    .fetch_optional(executor)
    .await
}

/// The times of a session that has not ended, and where its user stands
/// with the messaging policy.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct SessionTimes {
    /// When it stops working, however active (Unix ms).
    pub expires_at_ms: i64,
    /// When it was last seen, as last written (Unix ms).
    pub last_seen_at_ms: i64,
    /// The current messaging policy version, if one was published.
    pub policy_version: Option<i64>,
    /// The latest policy version the user accepted, if any.
    pub policy_accepted: Option<i64>,
}

/// The times of the session `session_id` if it has not ended, its device
/// is enrolled and its user active, with its user's policy standing.
pub async fn find_unended<'c, E>(
    executor: E,
    session_id: &str,
) -> Result<Option<SessionTimes>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT s.expires_at_ms AS expires_at_ms, s.last_seen_at_ms AS last_seen_at_ms, \
                {POLICY_STANDING} \
         FROM session s \
         JOIN app_user u ON u.user_id = s.user_id JOIN device d ON d.device_id = s.device_id \
         WHERE s.session_id = $1 AND s.ended_at_ms IS NULL AND d.removed_at_ms IS NULL \
           AND u.status = 'active'"
    ))
    .bind(session_id)
    .fetch_optional(executor)
    .await
}

/// Opens the session `session_id` for `device_id` and its user, signed in
/// from `client_address`, only if, at this instant, the device is enrolled
/// and the user active (so that a racing deactivation cannot be outrun);
/// returns whether it did.
pub async fn open<'c, E>(
    executor: E,
    session_id: &str,
    device_id: &str,
    client_address: &str,
    (now_ms, expires_at_ms): (i64, i64),
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let opened = sqlx::query(
        "INSERT INTO session (session_id, user_id, device_id, created_at_ms, expires_at_ms, \
         last_seen_at_ms, client_address) \
         SELECT $1, u.user_id, d.device_id, $2, $3, $2, $5 FROM device d \
         JOIN app_user u ON u.user_id = d.user_id \
         WHERE d.device_id = $4 AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(session_id)
    .bind(now_ms)
    .bind(expires_at_ms)
    .bind(device_id)
    .bind(client_address)
    .execute(executor)
    .await?;
    Ok(opened.rows_affected() == 1)
}

/// One live session of a user, for administrators.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveSession {
    /// The session's id.
    pub session_id: String,
    /// Its device.
    pub device_id: String,
    /// That device's name.
    pub device_name: String,
    /// When it was opened (Unix ms).
    pub created_at_ms: i64,
    /// When it was last seen, as last written (Unix ms).
    pub last_seen_at_ms: i64,
    /// When it stops working, however active (Unix ms).
    pub expires_at_ms: i64,
    /// The address it signed in from.
    pub client_address: Option<String>,
}

/// The sessions of `user_id` that have not ended, are within their
/// lifetime at `now_ms` and were seen since `seen_since_ms`, newest first.
pub async fn live_for_user<'c, E>(
    executor: E,
    user_id: &str,
    now_ms: i64,
    seen_since_ms: i64,
) -> Result<Vec<LiveSession>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT s.session_id AS session_id, s.device_id AS device_id, \
                d.device_name AS device_name, s.created_at_ms AS created_at_ms, \
                s.last_seen_at_ms AS last_seen_at_ms, s.expires_at_ms AS expires_at_ms, \
                s.client_address AS client_address \
         FROM session s JOIN device d ON d.device_id = s.device_id \
         WHERE s.user_id = $1 AND s.ended_at_ms IS NULL AND s.expires_at_ms > $2 \
           AND s.last_seen_at_ms >= $3 AND d.removed_at_ms IS NULL \
         ORDER BY s.created_at_ms DESC, s.session_id",
    )
    .bind(user_id)
    .bind(now_ms)
    .bind(seen_since_ms)
    .fetch_all(executor)
    .await
}

/// How many sessions have not ended, are within their lifetime at `now_ms`
/// and were seen since `seen_since_ms`.
pub async fn count_live<'c, E>(
    executor: E,
    now_ms: i64,
    seen_since_ms: i64,
) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM session \
         WHERE ended_at_ms IS NULL AND expires_at_ms > $1 AND last_seen_at_ms >= $2",
    )
    .bind(now_ms)
    .bind(seen_since_ms)
    .fetch_one(executor)
    .await
}

/// Whether `session_id` is a session of `user_id` (ended or not).
pub async fn belongs_to<'c, E>(
    executor: E,
    session_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM session WHERE session_id = $1 AND user_id = $2")
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(executor)
            .await?;
    Ok(found.is_some())
}

/// Records that the session was seen at `now_ms`, unless a later time is
/// recorded already.
pub async fn record_seen<'c, E>(
    executor: E,
    session_id: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "UPDATE session SET last_seen_at_ms = $1 WHERE session_id = $2 AND last_seen_at_ms < $1",
    )
    .bind(now_ms)
    .bind(session_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Whose sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum SessionsOf<'a> {
    /// One session.
    Session(&'a str),
    /// Every session of a user.
    User(&'a str),
    /// Every session of a device.
    Device(&'a str),
}

/// Ends the live sessions `which` names, recording why; returns how many.
pub async fn end<'c, E>(
    executor: E,
    which: SessionsOf<'_>,
    reason: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let (column, id) = match which {
        SessionsOf::Session(id) => ("session_id", id),
        SessionsOf::User(id) => ("user_id", id),
        SessionsOf::Device(id) => ("device_id", id),
    };
    Ok(sqlx::query(&format!(
        "UPDATE session SET ended_at_ms = $1, end_reason = $2 \
         WHERE {column} = $3 AND ended_at_ms IS NULL"
    ))
    .bind(now_ms)
    .bind(reason)
    .bind(id)
    .execute(executor)
    .await?
    .rows_affected())
}

/// Deletes at most `limit` sessions whose lifetime ended before
/// `before_ms` (ended early or not: a token never outlives its session's
/// `expires_at_ms`); returns how many.
pub async fn delete_expired<'c, E>(
    executor: E,
    before_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    super::delete_expired_rows(executor, "session", "session_id", before_ms, limit).await
}
