//! `policy_version` and `policy_acceptance`: the organisation's messaging
//! policy in numbered versions (the highest is current), and who accepted
//! which.

use curbside_proto::policy::PolicyVersion;
use sqlx::Any;

/// The columns of [`VersionRow`], for `SELECT`.
const COLUMNS: &str = "version, body, published_at_ms, published_by";

/// One `policy_version` row.
#[derive(Debug, Clone, sqlx::FromRow)]
struct VersionRow {
    version: i64,
    body: String,
    published_at_ms: i64,
    published_by: String,
}

impl VersionRow {
    fn into_version(self) -> PolicyVersion {
        PolicyVersion {
            version: u64::try_from(self.version).unwrap_or(0),
            text: self.body,
            published_at_ms: self.published_at_ms,
            published_by: self.published_by,
        }
    }
}

/// The current (highest) version, if any was published.
pub async fn current<'c, E>(executor: E) -> Result<Option<PolicyVersion>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {COLUMNS} FROM policy_version ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(executor)
    .await?
    .map(VersionRow::into_version))
}

/// Every version, newest first.
pub async fn versions<'c, E>(executor: E) -> Result<Vec<PolicyVersion>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {COLUMNS} FROM policy_version ORDER BY version DESC"
    ))
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(VersionRow::into_version)
    .collect())
}

/// Publishes `body` as the next version; returns its number. Two racing
/// publishers cannot take the same number: the primary key refuses the
/// second, whose transaction then fails.
pub async fn publish<'c, E>(
    executor: E,
    body: &str,
    published_by: &str,
    now_ms: i64,
) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "INSERT INTO policy_version (version, body, published_at_ms, published_by) \
         SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3 FROM policy_version \
         RETURNING version",
    )
    .bind(body)
    .bind(now_ms)
    .bind(published_by)
    .fetch_one(executor)
    .await
}

/// The latest version `user_id` accepted, if any.
pub async fn accepted<'c, E>(executor: E, user_id: &str) -> Result<Option<i64>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT MAX(version) FROM policy_acceptance WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(executor)
        .await
}

/// Records that `user_id` on `device_id` accepted `version`, if it is the
/// current one; returns whether it is (accepting twice is not an error).
pub async fn accept<'c, E>(
    executor: E,
    user_id: &str,
    device_id: &str,
    version: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let current: Option<i64> = sqlx::query_scalar(
        "INSERT INTO policy_acceptance (user_id, version, accepted_at_ms, device_id) \
         SELECT $1, version, $2, $3 FROM policy_version \
         WHERE version = $4 AND version = (SELECT MAX(version) FROM policy_version) \
         ON CONFLICT (user_id, version) DO UPDATE SET user_id = excluded.user_id \
         RETURNING version",
    )
    .bind(user_id)
    .bind(now_ms)
    .bind(device_id)
    .bind(version)
    .fetch_optional(executor)
    .await?;
    Ok(current.is_some())
}
