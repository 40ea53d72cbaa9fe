//! MLS key packages: a device publishes a stock of KeyPackages (and one
//! last-resort package), and a colleague who wants to add a user to a
//! thread claims one package for each of that user's active devices.
//!
//! Each ordinary package is handed out once: the claim deletes it in the
//! same statement that picks it, so two racing claims never get the same
//! one, and used key material does not linger.
//! When a device has none left, its last-resort package is handed out
//! (and kept). Packages are opaque here; clients check them against the
//! directory before using them.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use curbside_proto::identity::UserStatus;
use curbside_proto::threads::{
    Blob, CLAIM_PATH, ClaimedKeyPackage, ClaimedKeyPackages, KEY_PACKAGES_PATH, KeyPackageClaim,
    KeyPackageCount, KeyPackageUpload, MAX_KEY_PACKAGE_BYTES, MAX_UNCLAIMED, MAX_UPLOAD,
};
use sqlx::{Any, Transaction};

use super::AppState;
use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::identity::{find_user, user_devices};
use crate::ids::new_id;

/// `/v1/key-packages` and `/v1/key-packages/claim`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(KEY_PACKAGES_PATH, post(upload).get(count))
        .route(CLAIM_PATH, post(claim))
}

fn check_size(name: &str, package: &Blob) -> Result<()> {
    if package.0.is_empty() || package.0.len() > MAX_KEY_PACKAGE_BYTES {
        return Err(Error::InvalidRequest(format!(
            "{name} is empty or larger than {MAX_KEY_PACKAGE_BYTES} bytes; send serialized MLS \
             KeyPackages"
        )));
    }
    Ok(())
}

async fn counted<'c, E>(executor: E, device_id: &str) -> Result<KeyPackageCount>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let (available, last_resort): (i64, i64) = sqlx::query_as(
        // COUNT, not SUM: PostgreSQL sums BIGINT into NUMERIC.
        "SELECT COUNT(CASE WHEN last_resort = 0 THEN 1 END), \
                COUNT(CASE WHEN last_resort = 1 THEN 1 END) \
         FROM key_package WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_one(executor)
    .await?;
    Ok(KeyPackageCount {
        available: u32::try_from(available).unwrap_or(u32::MAX),
        last_resort: last_resort > 0,
    })
}

async fn upload(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    extract::Json(upload): extract::Json<KeyPackageUpload>,
) -> Result<Json<KeyPackageCount>> {
    access.resource(&caller.device_id);
    if upload.packages.is_empty() && upload.last_resort.is_none() {
        return Err(Error::InvalidRequest(
            "send at least one key package in `packages` or `last_resort`".to_owned(),
        ));
    }
    if upload.packages.len() > MAX_UPLOAD {
        return Err(Error::InvalidRequest(format!(
            "send at most {MAX_UPLOAD} key packages at a time"
        )));
    }
    for (index, package) in upload.packages.iter().enumerate() {
        check_size(&format!("`packages[{index}]`"), package)?;
    }
    if let Some(package) = &upload.last_resort {
        check_size("`last_resort`", package)?;
    }

    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    if upload.last_resort.is_some() {
        sqlx::query("DELETE FROM key_package WHERE device_id = $1 AND last_resort = 1")
            .bind(&caller.device_id)
            .execute(&mut *tx)
            .await?;
    }
    // Writes first, then the count: a SQLite transaction that reads first
    // cannot become a writer while another writes.
    let packages = upload
        .packages
        .iter()
        .map(|package| (package, 0))
        .chain(upload.last_resort.iter().map(|package| (package, 1)));
    for (package, last_resort) in packages {
        sqlx::query(
            "INSERT INTO key_package (package_id, device_id, package, last_resort, uploaded_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id()?)
        .bind(&caller.device_id)
        .bind(&package.0)
        .bind(i64::from(last_resort))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => Error::Conflict(
                "another upload from this device replaced its last-resort package at the \
                     same moment; upload again"
                    .to_owned(),
            ),
            _ => Error::from(error),
        })?;
    }
    let count = counted(&mut *tx, &caller.device_id).await?;
    if count.available > MAX_UNCLAIMED {
        // Dropping the transaction takes the upload back.
        return Err(Error::Conflict(format!(
            "this device would hold {} unused key packages, and at most {MAX_UNCLAIMED} may \
             wait; upload fewer",
            count.available
        )));
    }
    access.commit(&state, tx).await?;
    Ok(Json(count))
}

async fn count(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<Json<KeyPackageCount>> {
    access.resource(&caller.device_id);
    Ok(Json(
        counted(state.database.pool(), &caller.device_id).await?,
    ))
}

/// Claims one package of `device_id`: an ordinary one if any is left, else
/// the last-resort one.
async fn claim_one(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
) -> Result<Option<(Vec<u8>, bool)>> {
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
            return Ok(Some((package, false)));
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
    Ok(last_resort.map(|package| (package, true)))
}

async fn claim(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    extract::Json(request): extract::Json<KeyPackageClaim>,
) -> Result<Json<ClaimedKeyPackages>> {
    access.resource(&request.user_id);
    state
        .auth
        .limits
        .check(Limit::ClaimPerUser, &caller.user_id)?;
    let pool = state.database.pool();
    let active = find_user(pool, &request.user_id)
        .await?
        .is_some_and(|user| user.status == UserStatus::Active);
    if !active {
        return Err(Error::NotFound);
    }
    let devices = user_devices(pool, &request.user_id).await?;
    let mut tx = pool.begin().await?;
    let mut answer = ClaimedKeyPackages {
        packages: Vec::new(),
        without_packages: Vec::new(),
    };
    for device in devices {
        if device.device_id == caller.device_id {
            continue;
        }
        match claim_one(&mut tx, &device.device_id).await? {
            Some((package, last_resort)) => answer.packages.push(ClaimedKeyPackage {
                device_id: device.device_id,
                key_package: Blob(package),
                last_resort,
            }),
            None => answer.without_packages.push(device.device_id),
        }
    }
    access.commit(&state, tx).await?;
    Ok(Json(answer))
}
