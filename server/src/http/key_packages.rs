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

use axum::Json;
use axum::extract::State;
use curbside_proto::identity::UserStatus;
use curbside_proto::threads::{
    Blob, CLAIM_PATH, ClaimedKeyPackage, ClaimedKeyPackages, KEY_PACKAGES_PATH, KeyPackageClaim,
    KeyPackageCount, KeyPackageUpload, MAX_KEY_PACKAGE_BYTES, MAX_UNCLAIMED, MAX_UPLOAD,
};
use sqlx::Any;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::state::AppState;
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::{app_user, device, key_package};
use crate::ids::new_id;

/// `/v1/key-packages` and `/v1/key-packages/claim`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, count))
        .routes(routes!(claim))
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
    let counts = key_package::count(executor, device_id).await?;
    Ok(KeyPackageCount {
        available: u32::try_from(counts.available).unwrap_or(u32::MAX),
        last_resort: counts.last_resorts > 0,
    })
}

#[utoipa::path(
    post,
    path = KEY_PACKAGES_PATH,
    operation_id = "key_package.upload",
    tag = "device",
    request_body = KeyPackageUpload,
    security(("session" = [])),
    responses((status = 200, description = "The device's packages, after the upload", body = KeyPackageCount)),
)]
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
        key_package::delete_last_resort(&mut *tx, &caller.device_id).await?;
    }
    // Writes first, then the count: a SQLite transaction that reads first
    // cannot become a writer while another writes.
    let packages = upload
        .packages
        .iter()
        .map(|package| (package, false))
        .chain(upload.last_resort.iter().map(|package| (package, true)));
    for (package, last_resort) in packages {
        key_package::insert(
            &mut *tx,
            &new_id()?,
            &caller.device_id,
            &package.0,
            last_resort,
            now,
        )
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

#[utoipa::path(
    get,
    path = KEY_PACKAGES_PATH,
    operation_id = "key_package.count",
    tag = "device",
    security(("session" = [])),
    responses((status = 200, description = "The device's packages", body = KeyPackageCount)),
)]
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

#[utoipa::path(
    post,
    path = CLAIM_PATH,
    operation_id = "key_package.claim",
    tag = "user",
    request_body = KeyPackageClaim,
    security(("session" = [])),
    responses((status = 200, description = "A package for each of the user's devices that has one", body = ClaimedKeyPackages)),
)]
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
    let active = app_user::find(pool, &request.user_id)
        .await?
        .is_some_and(|user| user.status == UserStatus::Active);
    if !active {
        return Err(Error::NotFound);
    }
    let devices = device::list_for_user(pool, &request.user_id).await?;
    let mut tx = pool.begin().await?;
    let mut answer = ClaimedKeyPackages {
        packages: Vec::new(),
        without_packages: Vec::new(),
    };
    if let Some(wanted) = &request.devices
        && wanted.len() > MAX_UPLOAD
    {
        return Err(Error::InvalidRequest(format!(
            "`devices` names at most {MAX_UPLOAD} devices"
        )));
    }
    for device in devices {
        if device.device_id == caller.device_id
            || request
                .devices
                .as_ref()
                .is_some_and(|wanted| !wanted.contains(&device.device_id))
        {
            continue;
        }
        match key_package::claim(&mut tx, &device.device_id).await? {
            Some(claimed) => answer.packages.push(ClaimedKeyPackage {
                device_id: device.device_id,
                key_package: Blob(claimed.package),
                last_resort: claimed.last_resort,
            }),
            None => answer.without_packages.push(device.device_id),
        }
    }
    access.commit(&state, tx).await?;
    Ok(Json(answer))
}
