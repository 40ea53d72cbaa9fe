//! Queries on users and devices shared by several handlers.

use curbside_proto::identity::{Device, Role, User, UserStatus};
use sqlx::Any;

/// The columns of `app_user` in the order [`UserRow`] reads them.
pub const USER_COLUMNS: &str =
    "user_id, display_name, role, department, licence_number, status, created_at_ms, updated_at_ms";

/// One `app_user` row.
pub type UserRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
);

/// The columns of `device` in the order [`DeviceRow`] reads them.
pub const DEVICE_COLUMNS: &str = "device_id, user_id, device_name, public_key, created_at_ms";

/// One `device` row.
pub type DeviceRow = (String, String, String, Vec<u8>, i64);

/// A user from its row.
pub fn user_from_row(row: UserRow) -> Result<User, sqlx::Error> {
    let (user_id, display_name, role, department, licence_number, status, created, updated) = row;
    let role = Role::parse(&role).ok_or_else(|| corrupt("app_user.role"))?;
    let status = UserStatus::parse(&status).ok_or_else(|| corrupt("app_user.status"))?;
    Ok(User {
        user_id,
        display_name,
        role,
        department,
        licence_number,
        status,
        created_at_ms: created,
        updated_at_ms: updated,
    })
}

/// A device from its row.
pub fn device_from_row(row: DeviceRow) -> Device {
    let (device_id, user_id, device_name, public_key, created_at_ms) = row;
    Device {
        device_id,
        user_id,
        device_name,
        public_key,
        created_at_ms,
    }
}

fn corrupt(column: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("unexpected value in {column}"))
}

/// The user with this id.
pub async fn find_user<'c, E>(executor: E, user_id: &str) -> Result<Option<User>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let sql = format!("SELECT {USER_COLUMNS} FROM app_user WHERE user_id = $1");
    sqlx::query_as::<_, UserRow>(&sql)
        .bind(user_id)
        .fetch_optional(executor)
        .await?
        .map(user_from_row)
        .transpose()
}

/// The enrolled (not removed) device with this id.
pub async fn find_device<'c, E>(executor: E, device_id: &str) -> Result<Option<Device>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM device WHERE device_id = $1 AND removed_at_ms IS NULL"
    );
    Ok(sqlx::query_as::<_, DeviceRow>(&sql)
        .bind(device_id)
        .fetch_optional(executor)
        .await?
        .map(device_from_row))
}

/// A user's enrolled (not removed) devices, oldest first.
pub async fn user_devices<'c, E>(executor: E, user_id: &str) -> Result<Vec<Device>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM device WHERE user_id = $1 AND removed_at_ms IS NULL \
         ORDER BY created_at_ms, device_id"
    );
    Ok(sqlx::query_as::<_, DeviceRow>(&sql)
        .bind(user_id)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(device_from_row)
        .collect())
}

/// Fills the search key (`crate::search`) of users made before it existed
/// (migration 0007); returns how many. Runs at every start; usually finds
/// none.
pub async fn fill_search_keys(pool: &sqlx::AnyPool) -> Result<u64, sqlx::Error> {
    let mut filled = 0;
    loop {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT user_id, display_name, department FROM app_user \
             WHERE search_key IS NULL LIMIT 500",
        )
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(filled);
        }
        let mut tx = pool.begin().await?;
        for (user_id, display_name, department) in rows {
            sqlx::query("UPDATE app_user SET search_key = $1 WHERE user_id = $2")
                .bind(crate::search::user_key(&display_name, &department))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            filled += 1;
        }
        tx.commit().await?;
    }
}
