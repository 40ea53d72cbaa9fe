//! `key_package`: MLS KeyPackages that devices publish so that others can
//! add them to threads. An ordinary package is deleted as it is handed out
//! (claims never share one, and used key material does not linger); a
//! device's one last-resort package is handed out when it has no other
//! left, and stays. Packages are opaque to the server.

use sqlx::{Any, Transaction};

/// Deletes a device's last-resort package, if it has one.
pub async fn delete_last_resort<'c, E>(executor: E, device_id: &str) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("DELETE FROM key_package WHERE device_id = $1 AND last_resort = 1")
        .bind(device_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Stores a package of `device_id`, ordinary or last-resort. A second
/// last-resort package of a device fails with a unique violation.
pub async fn insert<'c, E>(
    executor: E,
    package_id: &str,
    device_id: &str,
    package: &[u8],
    last_resort: bool,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO key_package (package_id, device_id, package, last_resort, uploaded_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(package_id)
    .bind(device_id)
    .bind(package)
    .bind(i64::from(last_resort))
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// How many packages a device has on file, of each kind.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct PackageCounts {
    /// Ordinary packages.
    pub available: i64,
    /// Last-resort packages (0 or 1).
    pub last_resorts: i64,
}

/// How many packages `device_id` has on file, of each kind.
pub async fn count<'c, E>(executor: E, device_id: &str) -> Result<PackageCounts, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        // COUNT, not SUM: PostgreSQL sums BIGINT into NUMERIC.
        "SELECT COUNT(CASE WHEN last_resort = 0 THEN 1 END) AS available, \
                COUNT(CASE WHEN last_resort = 1 THEN 1 END) AS last_resorts \
         FROM key_package WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_one(executor)
    .await
}

/// A package handed out by a claim.
#[derive(Clone)]
pub struct ClaimedPackage {
    /// The serialized MLS KeyPackage.
    pub package: Vec<u8>,
    /// Whether it is the device's last-resort package (which stays on
    /// file).
    pub last_resort: bool,
}

impl std::fmt::Debug for ClaimedPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedPackage")
            .field("last_resort", &self.last_resort)
            .finish_non_exhaustive()
    }
}

/// Claims one package of `device_id`: an ordinary one if any is left
/// (deleting it), else the last-resort one (which stays).
pub async fn claim(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
) -> Result<Option<ClaimedPackage>, sqlx::Error> {
    // Ordinary packages only run out, so this ends: each lost race means
    // another claim took (deleted) one.
    loop {
        // Pick and delete in one statement, which is also a write from its
        // start (SQLite cannot turn a read into a write under a racing
        // writer). On PostgreSQL a racing claim that took the same package
        // first leaves this one nothing to delete, and it tries the next.
        let claimed: Option<Vec<u8>> = sqlx::query_scalar(
            "DELETE FROM key_package WHERE package_id = ( \
                 SELECT package_id FROM key_package WHERE device_id = $1 AND last_resort = 0 \
                 ORDER BY uploaded_at_ms, package_id LIMIT 1) \
             RETURNING package",
        )
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(package) = claimed {
            return Ok(Some(ClaimedPackage {
                package,
                last_resort: false,
            }));
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM key_package WHERE device_id = $1 AND last_resort = 0",
        )
        .bind(device_id)
        .fetch_one(&mut **tx)
        .await?;
        if left == 0 {
            break;
        }
    }
    let last_resort: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT package FROM key_package WHERE device_id = $1 AND last_resort = 1",
    )
    .bind(device_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(last_resort.map(|package| ClaimedPackage {
        package,
        last_resort: true,
    }))
}
