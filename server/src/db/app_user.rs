//! `app_user`: the people who use the server, their role and status, and
//! the folded search key (`crate::search`) that the administrators' list
//! and the directory search by.

use curbside_proto::identity::{Role, User, UserStatus};
use sqlx::{Any, Transaction};

use crate::search::{contains_pattern, user_key};

/// One `app_user` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// The user's id.
    pub user_id: String,
    /// The name colleagues see.
    pub display_name: String,
    /// `clinician`, `admin` or `auditor`.
    pub role: String,
    /// The user's department.
    pub department: String,
    /// A professional licence number, if recorded.
    pub licence_number: Option<String>,
    /// The name to match on (SCIM's `userName`), if given.
    pub user_name: Option<String>,
    /// The identity provider's id (SCIM's `externalId`), if given.
    pub external_id: Option<String>,
    /// `active` or `deactivated`.
    pub status: String,
    /// When the user was created (Unix ms).
    pub created_at_ms: i64,
    /// When the user was last changed (Unix ms).
    pub updated_at_ms: i64,
}

/// The columns of [`UserRow`], for `SELECT`.
const COLUMNS: &str = "user_id, display_name, role, department, licence_number, user_name, \
                       external_id, status, created_at_ms, updated_at_ms";

impl UserRow {
    /// The user as the API gives it; an error if the role or status is not
    /// one the server knows.
    pub fn into_user(self) -> Result<User, sqlx::Error> {
        let role = Role::parse(&self.role).ok_or_else(|| corrupt("app_user.role"))?;
        let status = UserStatus::parse(&self.status).ok_or_else(|| corrupt("app_user.status"))?;
        Ok(User {
            user_id: self.user_id,
            display_name: self.display_name,
            role,
            department: self.department,
            licence_number: self.licence_number,
            user_name: self.user_name,
            external_id: self.external_id,
            status,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

fn corrupt(column: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("unexpected value in {column}"))
}

/// The user with this id.
pub async fn find<'c, E>(executor: E, user_id: &str) -> Result<Option<User>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM app_user WHERE user_id = $1"
    ))
    .bind(user_id)
    .fetch_optional(executor)
    .await?
    .map(UserRow::into_user)
    .transpose()
}

/// Users whose name or department contains `query` (folded, see
/// `crate::search`), of `role` and `status` when given, after the user
/// named `after_name` with id `after_id` in order of name then id, at most
/// `limit`.
pub async fn list<'c, E>(
    executor: E,
    query: &str,
    role: Option<Role>,
    status: Option<UserStatus>,
    (after_name, after_id): (&str, &str),
    limit: i64,
) -> Result<Vec<User>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM app_user \
         WHERE search_key LIKE $1 ESCAPE '\\' \
           AND ($2 = '' OR role = $2) AND ($3 = '' OR status = $3) \
           AND (display_name > $4 OR (display_name = $4 AND user_id > $5)) \
         ORDER BY display_name, user_id LIMIT $6"
    ))
    .bind(contains_pattern(query))
    .bind(role.map_or("", Role::as_str))
    .bind(status.map_or("", UserStatus::as_str))
    .bind(after_name)
    .bind(after_id)
    .bind(limit)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(UserRow::into_user)
    .collect()
}

/// Active users who have not accepted policy `version`, by name, at most
/// `limit`.
pub async fn not_accepted<'c, E>(
    executor: E,
    version: i64,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM app_user u WHERE status = 'active' \
           AND NOT EXISTS (SELECT 1 FROM policy_acceptance a \
                           WHERE a.user_id = u.user_id AND a.version = $1) \
         ORDER BY display_name, user_id LIMIT $2"
    ))
    .bind(version)
    .bind(limit)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(UserRow::into_user)
    .collect()
}

/// How many users have `status`.
pub async fn count_with_status<'c, E>(executor: E, status: UserStatus) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT COUNT(*) FROM app_user WHERE status = $1")
        .bind(status.as_str())
        .fetch_one(executor)
        .await
}

/// What a user is made or changed to: everything but their id, status
/// and times.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    /// The name colleagues see.
    pub display_name: &'a str,
    /// What the user may do.
    pub role: Role,
    /// The user's department.
    pub department: &'a str,
    /// A professional licence number.
    pub licence_number: Option<&'a str>,
    /// The name to match on (SCIM's `userName`).
    pub user_name: Option<&'a str>,
    /// The identity provider's id (SCIM's `externalId`).
    pub external_id: Option<&'a str>,
}

/// The form of a user name that must be unique: names differing only in
/// case are the same name (RFC 7643 section 4.1.1: `userName` is not
/// case-exact).
pub fn user_name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

/// Whether `error` is a unique constraint's refusal (SQLite's
/// SQLITE_CONSTRAINT_UNIQUE, PostgreSQL's unique_violation).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => {
            matches!(error.code().as_deref(), Some("2067" | "1555" | "23505"))
        }
        _ => false,
    }
}

/// Adds an active user, with their search key.
pub async fn insert<'c, E>(
    executor: E,
    user_id: &str,
    profile: &Profile<'_>,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO app_user (user_id, display_name, role, department, licence_number, status, \
         created_at_ms, updated_at_ms, search_key, user_name, user_name_key, external_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)",
    )
    .bind(user_id)
    .bind(profile.display_name)
    .bind(profile.role.as_str())
    .bind(profile.department)
    .bind(profile.licence_number)
    .bind(UserStatus::Active.as_str())
    .bind(now_ms)
    .bind(user_key(profile.display_name, profile.department))
    .bind(profile.user_name)
    .bind(profile.user_name.map(user_name_key))
    .bind(profile.external_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// The user whose user name is `user_name`, whatever its case.
pub async fn find_by_user_name<'c, E>(
    executor: E,
    user_name: &str,
) -> Result<Option<User>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM app_user WHERE user_name_key = $1"
    ))
    .bind(user_name_key(user_name))
    .fetch_optional(executor)
    .await?
    .map(UserRow::into_user)
    .transpose()
}

/// Which users a provisioning query asks for (SCIM's filters that
/// Curbside answers).
#[derive(Debug, Clone, Copy)]
pub enum Match<'a> {
    /// Every user with a user name.
    All,
    /// The user with this user name, whatever its case.
    UserName(&'a str),
    /// The user with this external id.
    ExternalId(&'a str),
    /// The user with this id (and a user name).
    Id(&'a str),
}

impl Match<'_> {
    /// The condition, on `$1`, and the value to bind to it.
    fn clause(self) -> (&'static str, String) {
        match self {
            Match::All => ("$1 = ''", String::new()),
            Match::UserName(name) => ("u.user_name_key = $1", user_name_key(name)),
            Match::ExternalId(id) => ("u.external_id = $1", id.to_owned()),
            Match::Id(id) => ("u.user_id = $1", id.to_owned()),
        }
    }
}

/// One user as provisioning sees them (a clinician with a user name): the
/// row, and what the identity
/// provider last sent of them (`scim_user.resource`), if it did.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProvisionedRow {
    /// The user.
    #[sqlx(flatten)]
    pub user: UserRow,
    /// The SCIM resource as last written, JSON.
    pub resource: Option<String>,
}

/// Users with a user name that `matching` selects, newest first, from the
/// `offset`th (0-based), at most `limit`, each with what SCIM last wrote of
/// them.
pub async fn provisioned<'c, E>(
    executor: E,
    matching: Match<'_>,
    offset: i64,
    limit: i64,
) -> Result<Vec<(User, Option<String>)>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let (clause, value) = matching.clause();
    let columns = COLUMNS
        .split(", ")
        .map(|column| format!("u.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query_as::<_, ProvisionedRow>(&format!(
        "SELECT {columns}, s.resource AS resource FROM app_user u \
         LEFT JOIN scim_user s ON s.user_id = u.user_id \
         WHERE u.user_name IS NOT NULL AND u.role = 'clinician' AND {clause} \
         ORDER BY u.created_at_ms DESC, u.user_id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(value)
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|row| Ok((row.user.into_user()?, row.resource)))
    .collect()
}

/// Records what the identity provider last sent of a user (JSON).
pub async fn set_resource<'c, E>(
    executor: E,
    user_id: &str,
    resource: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO scim_user (user_id, resource) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET resource = excluded.resource",
    )
    .bind(user_id)
    .bind(resource)
    .execute(executor)
    .await?;
    Ok(())
}

/// Ends a user's provisioning (SCIM's delete): forgets their user name,
/// external id and SCIM resource. The user stays, for the audit log and
/// the threads' history.
pub async fn unprovision(tx: &mut Transaction<'_, Any>, user_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM scim_user WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE app_user SET user_name = NULL, user_name_key = NULL, external_id = NULL \
         WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many users with a user name `matching` selects.
pub async fn count_provisioned<'c, E>(executor: E, matching: Match<'_>) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let (clause, value) = matching.clause();
    sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM app_user u WHERE u.user_name IS NOT NULL AND u.role = 'clinician' \
         AND {clause}"
    ))
    .bind(value)
    .fetch_one(executor)
    .await
}

/// Rewrites everything of a user's but their id, status and creation
/// (and their search key).
pub async fn update<'c, E>(
    executor: E,
    user_id: &str,
    profile: &Profile<'_>,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "UPDATE app_user SET display_name = $1, department = $2, licence_number = $3, role = $4, \
         updated_at_ms = $5, search_key = $7, user_name = $8, user_name_key = $9, \
         external_id = $10 WHERE user_id = $6",
    )
    .bind(profile.display_name)
    .bind(profile.department)
    .bind(profile.licence_number)
    .bind(profile.role.as_str())
    .bind(now_ms)
    .bind(user_id)
    .bind(user_key(profile.display_name, profile.department))
    .bind(profile.user_name)
    .bind(profile.user_name.map(user_name_key))
    .bind(profile.external_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Sets a user's status, as `source` (who deactivated them: `admin` or
/// `scim`, kept while they are deactivated).
pub async fn set_status<'c, E>(
    executor: E,
    user_id: &str,
    status: UserStatus,
    source: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let deactivated_by = (status == UserStatus::Deactivated).then_some(source);
    sqlx::query(
        "UPDATE app_user SET status = $1, updated_at_ms = $2, deactivated_by = $4 \
         WHERE user_id = $3",
    )
    .bind(status.as_str())
    .bind(now_ms)
    .bind(user_id)
    .bind(deactivated_by)
    .execute(executor)
    .await?;
    Ok(())
}

/// Who deactivated the user (`admin` or `scim`), if they are deactivated
/// and it was recorded.
pub async fn deactivated_by<'c, E>(
    executor: E,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT deactivated_by FROM app_user WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(executor)
    .await?
    .flatten())
}

/// How many active administrators there are besides `user_id`.
pub async fn count_other_active_admins<'c, E>(
    executor: E,
    user_id: &str,
) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM app_user WHERE role = 'admin' AND status = 'active' AND user_id <> $1",
    )
    .bind(user_id)
    .fetch_one(executor)
    .await
}

/// How many users there are, whatever their status.
pub async fn count<'c, E>(executor: E) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT COUNT(*) FROM app_user")
        .fetch_one(executor)
        .await
}

/// One row of a directory query: an active user, and one of their enrolled
/// devices (all `None` when they have none).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectoryRow {
    /// The user's id.
    pub user_id: String,
    /// The name colleagues see.
    pub display_name: String,
    /// `clinician`, `admin` or `auditor`.
    pub role: String,
    /// The user's department.
    pub department: String,
    /// The device's id.
    pub device_id: Option<String>,
    /// The device's name.
    pub device_name: Option<String>,
    /// The device's Ed25519 public key.
    pub public_key: Option<Vec<u8>>,
}

/// Active users whose name or department contains `query` (folded, see
/// `crate::search`), after the user named `after_name` with id `after_id`
/// in order of name then id, at most `limit` users, each joined with their
/// enrolled devices (oldest first), in user order.
pub async fn directory_page<'c, E>(
    executor: E,
    query: &str,
    after_name: &str,
    after_id: &str,
    limit: i64,
) -> Result<Vec<DirectoryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT u.user_id AS user_id, u.display_name AS display_name, u.role AS role, \
                u.department AS department, d.device_id AS device_id, \
                d.device_name AS device_name, d.public_key AS public_key \
         FROM (SELECT user_id, display_name, role, department FROM app_user \
               WHERE status = 'active' AND search_key LIKE $1 ESCAPE '\\' \
                 AND (display_name > $2 OR (display_name = $2 AND user_id > $3)) \
               ORDER BY display_name, user_id LIMIT $4) u \
         LEFT JOIN device d ON d.user_id = u.user_id AND d.removed_at_ms IS NULL \
         ORDER BY u.display_name, u.user_id, d.created_at_ms, d.device_id",
    )
    .bind(contains_pattern(query))
    .bind(after_name)
    .bind(after_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// The active user `user_id` joined with their enrolled devices (oldest
/// first); no rows if there is no such active user.
pub async fn directory_entry<'c, E>(
    executor: E,
    user_id: &str,
) -> Result<Vec<DirectoryRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT u.user_id AS user_id, u.display_name AS display_name, u.role AS role, \
                u.department AS department, d.device_id AS device_id, \
                d.device_name AS device_name, d.public_key AS public_key \
         FROM app_user u \
         LEFT JOIN device d ON d.user_id = u.user_id AND d.removed_at_ms IS NULL \
         WHERE u.user_id = $1 AND u.status = 'active' \
         ORDER BY d.created_at_ms, d.device_id",
    )
    .bind(user_id)
    .fetch_all(executor)
    .await
}

/// A user without a search key, and what it is made from.
#[derive(Debug, sqlx::FromRow)]
struct Unkeyed {
    /// The user's id.
    user_id: String,
    /// The name colleagues see.
    display_name: String,
    /// The user's department.
    department: String,
}

/// Fills the search key (`crate::search`) of users made before it existed
/// (migration 0007); returns how many. Runs at every start; usually finds
/// none.
pub async fn fill_search_keys(pool: &sqlx::AnyPool) -> Result<u64, sqlx::Error> {
    let mut filled = 0;
    loop {
        let rows: Vec<Unkeyed> = sqlx::query_as(
            "SELECT user_id, display_name, department FROM app_user \
             WHERE search_key IS NULL LIMIT 500",
        )
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        let mut tx = pool.begin().await?;
        for row in rows {
            sqlx::query("UPDATE app_user SET search_key = $1 WHERE user_id = $2")
                .bind(user_key(&row.display_name, &row.department))
                .bind(row.user_id)
                .execute(&mut *tx)
                .await?;
            filled += 1;
        }
        tx.commit().await?;
    }
}
