//! `device`: each user's enrolled devices and their Ed25519 public keys.
//! A removed device keeps its row (`removed_at_ms` set), so that its key
//! is never enrolled again.

use curbside_proto::identity::Device;
use sqlx::Any;

/// One `device` row, without its removal time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    /// The device's id.
    pub device_id: String,
    /// Its owner.
    pub user_id: String,
    /// The name given at enrollment.
    pub device_name: String,
    /// Its Ed25519 public key.
    pub public_key: Vec<u8>,
    /// When it enrolled (Unix ms).
    pub created_at_ms: i64,
}

/// The columns of [`DeviceRow`], for `SELECT`.
const COLUMNS: &str = "device_id, user_id, device_name, public_key, created_at_ms";

impl DeviceRow {
    /// The device as the API gives it.
    pub fn into_device(self) -> Device {
        Device {
            device_id: self.device_id,
            user_id: self.user_id,
            device_name: self.device_name,
            public_key: self.public_key,
            created_at_ms: self.created_at_ms,
        }
    }
}

/// The enrolled (not removed) device with this id.
pub async fn find<'c, E>(executor: E, device_id: &str) -> Result<Option<Device>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query_as::<_, DeviceRow>(&format!(
        "SELECT {COLUMNS} FROM device WHERE device_id = $1 AND removed_at_ms IS NULL"
    ))
    .bind(device_id)
    .fetch_optional(executor)
    .await?
    .map(DeviceRow::into_device))
}

/// A user's enrolled (not removed) devices, oldest first.
pub async fn list_for_user<'c, E>(executor: E, user_id: &str) -> Result<Vec<Device>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query_as::<_, DeviceRow>(&format!(
        "SELECT {COLUMNS} FROM device WHERE user_id = $1 AND removed_at_ms IS NULL \
         ORDER BY created_at_ms, device_id"
    ))
    .bind(user_id)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(DeviceRow::into_device)
    .collect())
}

/// The device, enrolled now or removed since, that holds `public_key`.
pub async fn find_by_public_key<'c, E>(
    executor: E,
    public_key: &[u8],
) -> Result<Option<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT device_id FROM device WHERE public_key = $1")
        .bind(public_key)
        .fetch_optional(executor)
        .await
}

/// Enrolls a device. A key already enrolled fails with a unique violation.
pub async fn insert<'c, E>(
    executor: E,
    device_id: &str,
    user_id: &str,
    device_name: &str,
    public_key: &[u8],
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO device (device_id, user_id, device_name, public_key, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(device_id)
    .bind(user_id)
    .bind(device_name)
    .bind(public_key)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks the enrolled device `device_id` of `user_id` removed; returns how
/// many devices it removed (0 or 1).
pub async fn remove<'c, E>(
    executor: E,
    user_id: &str,
    device_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query(
        "UPDATE device SET removed_at_ms = $1 \
         WHERE device_id = $2 AND user_id = $3 AND removed_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(device_id)
    .bind(user_id)
    .execute(executor)
    .await?
    .rows_affected())
}

/// The owner and public key of a device that may sign in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignInKey {
    /// The device's owner.
    pub user_id: String,
    /// The device's Ed25519 public key.
    pub public_key: Vec<u8>,
}

/// The owner and key of `device_id` if it may sign in: enrolled (not
/// removed), and its user active.
pub async fn find_sign_in_key<'c, E>(
    executor: E,
    device_id: &str,
) -> Result<Option<SignInKey>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT d.user_id AS user_id, d.public_key AS public_key \
         FROM device d JOIN app_user u ON u.user_id = d.user_id \
         WHERE d.device_id = $1 AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(device_id)
    .fetch_optional(executor)
    .await
}

/// How many devices of active users are enrolled.
pub async fn count_active<'c, E>(executor: E) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM device d JOIN app_user u ON u.user_id = d.user_id \
         WHERE d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .fetch_one(executor)
    .await
}
