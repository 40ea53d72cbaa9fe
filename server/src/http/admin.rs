//! The administrators' API: users, enrollment codes and devices. Every route
//! takes the [`Admin`] extractor, so clinicians and auditors get 403.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use curbside_proto::identity::{
    DeviceList, EnrollmentCodeIssued, IssueCodeQuery, NewUser, OutstandingCodes, Role, User,
    UserList, UserStatus, UserUpdate, format_enrollment_code,
};
use curbside_proto::routes;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin};
use super::fields::{self, LICENCE_MAX, NAME_MAX};
use super::state::AppState;
use super::state::finish;
use crate::auth::sessions::{SessionsOf, end_sessions};
use crate::auth::{IssueError, issue_enrollment_code};
use crate::clock::now_ms;
use crate::db::thread_member::{self, Leaving};
use crate::db::{app_user, device, enrollment_code};
use crate::ids::new_id;

/// `/v1/admin/...`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(issue_code, list_codes))
        .routes(routes!(revoke_code))
        .routes(routes!(list_devices))
        .routes(routes!(remove_device))
}

fn licence(value: Option<&str>) -> Result<Option<String>> {
    value
        .map(|licence| fields::text("licence_number", licence, LICENCE_MAX))
        .transpose()
}

async fn user_or_404(state: &AppState, user_id: &str) -> Result<User> {
    app_user::find(state.database.pool(), user_id)
        .await?
        .ok_or_else(|| {
            Error::NotFoundWhat(format!(
                "no user has the id {}; find people with `curbside admin user list`",
                super::error::shown(user_id)
            ))
        })
}

#[utoipa::path(
    post,
    path = routes::ADMIN_USERS,
    operation_id = "admin.user.create",
    tag = "user",
    request_body = NewUser,
    security(("session" = [])),
    responses((status = 201, description = "The user, made", body = User)),
)]
async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    access: Access,
    extract::Json(new): extract::Json<NewUser>,
) -> Result<(StatusCode, Json<User>)> {
    let display_name = fields::text("display_name", &new.display_name, NAME_MAX)?;
    let department = fields::text("department", &new.department, NAME_MAX)?;
    let licence_number = licence(new.licence_number.as_deref())?;
    let user_id = new_id()?;
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    app_user::insert(
        &mut *tx,
        &user_id,
        &display_name,
        new.role,
        &department,
        licence_number.as_deref(),
        now,
    )
    .await?;
    access.resource(&user_id);
    access.commit(&state, tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(user_or_404(&state, &user_id).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    q: String,
    role: Option<Role>,
    status: Option<UserStatus>,
}

#[utoipa::path(
    get,
    path = routes::ADMIN_USERS,
    operation_id = "admin.user.list",
    tag = "user",
    params(ListQuery),
    security(("session" = [])),
    responses((status = 200, description = "The users matching the query", body = UserList)),
)]
async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<UserList>> {
    let users = app_user::list(
        state.database.pool(),
        &query.q,
        query.role,
        query.status,
        i64::from(curbside_proto::identity::MAX_USER_LIST),
    )
    .await?;
    Ok(Json(UserList { users }))
}

#[utoipa::path(
    get,
    path = routes::ADMIN_USER,
    operation_id = "admin.user.read",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The user", body = User)),
)]
async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<User>> {
    Ok(Json(user_or_404(&state, &user_id).await?))
}

#[utoipa::path(
    patch,
    path = routes::ADMIN_USER,
    operation_id = "admin.user.update",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    request_body = UserUpdate,
    security(("session" = [])),
    responses((status = 200, description = "The user, changed", body = User)),
)]
async fn update_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    Path(user_id): Path<String>,
    extract::Json(update): extract::Json<UserUpdate>,
) -> Result<Json<User>> {
    let current = user_or_404(&state, &user_id).await?;
    let role = update.role.unwrap_or(current.role);
    if role != Role::Admin && current.role == Role::Admin {
        if admin.user_id == user_id {
            return Err(Error::Conflict(
                "you cannot remove your own administrator role; ask another administrator"
                    .to_owned(),
            ));
        }
        keep_an_admin(&state, &current).await?;
    }
    let display_name = match update.display_name {
        Some(name) => fields::text("display_name", &name, NAME_MAX)?,
        None => current.display_name,
    };
    let department = match update.department {
        Some(department) => fields::text("department", &department, NAME_MAX)?,
        None => current.department,
    };
    let licence_number = match update.licence_number {
        Some(licence_number) => licence(Some(&licence_number))?,
        None => current.licence_number,
    };
    // Sessions carry the role: the next request re-reads it, even if this
    // request is cancelled after the update commits.
    let target = user_id.clone();
    let evict_state = state.clone();
    finish(async move {
        let mut tx = evict_state.database.pool().begin().await?;
        app_user::update(
            &mut *tx,
            &target,
            &display_name,
            &department,
            licence_number.as_deref(),
            role,
            now_ms(),
        )
        .await?;
        access.commit(&evict_state, tx).await?;
        evict_state.auth.sessions.evict_user(&target);
        Ok(())
    })
    .await?;
    Ok(Json(user_or_404(&state, &user_id).await?))
}

/// Refuses a change that would leave no active administrator.
async fn keep_an_admin(state: &AppState, target: &User) -> Result<()> {
    if target.role != Role::Admin || target.status != UserStatus::Active {
        return Ok(());
    }
    let others =
        app_user::count_other_active_admins(state.database.pool(), &target.user_id).await?;
    if others == 0 {
        return Err(Error::Conflict(
            "this would leave no active administrator; make someone else an administrator first"
                .to_owned(),
        ));
    }
    Ok(())
}

async fn set_status(
    state: &AppState,
    access: &Access,
    by_user: &str,
    user_id: &str,
    status: UserStatus,
) -> Result<User> {
    let target = user_or_404(state, user_id).await?;
    if status == UserStatus::Deactivated {
        keep_an_admin(state, &target).await?;
    }
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    app_user::set_status(&mut *tx, user_id, status, now).await?;
    if status == UserStatus::Deactivated {
        end_sessions(&mut *tx, SessionsOf::User(user_id), "user_deactivated", now).await?;
        // Out of every thread for good: reactivation does not bring the
        // devices back (they would read what was said meanwhile); members
        // add them again, and remove them from the MLS group.
        thread_member::end_memberships(&mut tx, Leaving::User(user_id), by_user, now).await?;
        // Codes issued before deactivation must not bring the user back:
        // revoked (not "used": no device enrolled with them).
        enrollment_code::revoke_all_unused_for_user(&mut *tx, user_id, now).await?;
    }
    access.commit(state, tx).await?;
    state.auth.sessions.evict_user(user_id);
    user_or_404(state, user_id).await
}

#[utoipa::path(
    post,
    path = routes::ADMIN_USER_DEACTIVATE,
    operation_id = "admin.user.deactivate",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The user, deactivated: sessions ended, memberships ended, codes revoked", body = User)),
)]
async fn deactivate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    Path(user_id): Path<String>,
) -> Result<Json<User>> {
    if admin.user_id == user_id {
        return Err(Error::Conflict(
            "you cannot deactivate your own account; ask another administrator".to_owned(),
        ));
    }
    Ok(Json(
        finish(async move {
            set_status(
                &state,
                &access,
                &admin.user_id,
                &user_id,
                UserStatus::Deactivated,
            )
            .await
        })
        .await?,
    ))
}

#[utoipa::path(
    post,
    path = routes::ADMIN_USER_REACTIVATE,
    operation_id = "admin.user.reactivate",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The user, active again", body = User)),
)]
async fn reactivate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    Path(user_id): Path<String>,
) -> Result<Json<User>> {
    Ok(Json(
        finish(async move {
            set_status(
                &state,
                &access,
                &admin.user_id,
                &user_id,
                UserStatus::Active,
            )
            .await
        })
        .await?,
    ))
}

#[utoipa::path(
    post,
    path = routes::ADMIN_USER_CODES,
    operation_id = "admin.enrollment_code.issue",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id"), IssueCodeQuery),
    security(("session" = [])),
    responses((status = 201, description = "A one-time enrollment code (shown once)", body = EnrollmentCodeIssued)),
)]
async fn issue_code(
    State(state): State<AppState>,
    _admin: Admin,
    access: Access,
    Path(user_id): Path<String>,
    Query(query): Query<IssueCodeQuery>,
) -> Result<(StatusCode, Json<EnrollmentCodeIssued>)> {
    let user = user_or_404(&state, &user_id).await?;
    if user.status != UserStatus::Active {
        return Err(Error::Conflict(
            "this user is deactivated; reactivate them before issuing a code".to_owned(),
        ));
    }
    let now = now_ms();
    let lifetime =
        i64::try_from(state.auth.enrollment_code_lifetime.as_millis()).unwrap_or(i64::MAX / 2);
    let mut tx = state.database.pool().begin().await?;
    // A new code replaces the ones handed out before, unless told not to:
    // a code sent to the wrong place is withdrawn by issuing another.
    let revoked = if query.keep_others {
        0
    } else {
        enrollment_code::revoke_outstanding_for_user(&mut *tx, &user_id, now).await?
    };
    let issued = issue_enrollment_code(&mut *tx, Some(&user_id), now, now + lifetime)
        .await
        .map_err(|error| match error {
            IssueError::Database(error) => Error::from(error),
            other => Error::Internal(other.to_string()),
        })?;
    access.commit(&state, tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentCodeIssued {
            code: format_enrollment_code(&issued.code),
            code_id: issued.code_id,
            user_id,
            expires_at_ms: now + lifetime,
            revoked,
        }),
    ))
}

#[utoipa::path(
    get,
    path = routes::ADMIN_USER_CODES,
    operation_id = "admin.enrollment_code.list",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The user's unused, unexpired codes", body = OutstandingCodes)),
)]
async fn list_codes(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<OutstandingCodes>> {
    user_or_404(&state, &user_id).await?;
    let rows = enrollment_code::list_outstanding(state.database.pool(), &user_id, now_ms()).await?;
    Ok(Json(OutstandingCodes {
        codes: rows
            .into_iter()
            .map(enrollment_code::OutstandingRow::into_outstanding)
            .collect(),
    }))
}

#[utoipa::path(
    delete,
    path = routes::ADMIN_USER_CODE,
    operation_id = "admin.enrollment_code.revoke",
    tag = "enrollment_code",
    params(("user_id" = String, Path, description = "The user's id"), ("code_id" = String, Path, description = "The enrollment code's id")),
    security(("session" = [])),
    responses((status = 204, description = "The code is revoked")),
)]
async fn revoke_code(
    State(state): State<AppState>,
    _admin: Admin,
    access: Access,
    Path((user_id, code_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    let revoked = enrollment_code::revoke(&mut *tx, &user_id, &code_id, now).await?;
    if revoked != 1 {
        return Err(Error::NotFoundWhat(format!(
            "no outstanding enrollment code {} for this user (used, expired, or revoked \
             already); list them with `curbside admin user codes USER`",
            super::error::shown(&code_id)
        )));
    }
    access.commit(&state, tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = routes::ADMIN_USER_DEVICES,
    operation_id = "admin.device.list",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The user's enrolled devices", body = DeviceList)),
)]
async fn list_devices(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<DeviceList>> {
    user_or_404(&state, &user_id).await?;
    Ok(Json(DeviceList {
        devices: device::list_for_user(state.database.pool(), &user_id).await?,
    }))
}

#[utoipa::path(
    delete,
    path = routes::ADMIN_USER_DEVICE,
    operation_id = "admin.device.remove",
    tag = "device",
    params(("user_id" = String, Path, description = "The user's id"), ("device_id" = String, Path, description = "The device's id")),
    security(("session" = [])),
    responses((status = 204, description = "The device is removed: its sessions and memberships ended")),
)]
async fn remove_device(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    Path((user_id, device_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let by_user = admin.user_id;
    finish(async move {
        let now = now_ms();
        let mut tx = state.database.pool().begin().await?;
        let removed = device::remove(&mut *tx, &user_id, &device_id, now).await?;
        if removed != 1 {
            return Err(Error::NotFoundWhat(format!(
                "this user has no enrolled device {} (removed already, or another user's); \
                 list their devices with `curbside admin device list USER`",
                super::error::shown(&device_id)
            )));
        }
        end_sessions(
            &mut *tx,
            SessionsOf::Device(&device_id),
            "device_removed",
            now,
        )
        .await?;
        thread_member::end_memberships(&mut tx, Leaving::Device(&device_id), &by_user, now).await?;
        access.commit(&state, tx).await?;
        state.auth.sessions.evict_device(&device_id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
