//! The administrators' API: users, enrollment codes and devices. Every route
//! takes the [`Admin`] extractor, so clinicians and auditors get 403.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use curbside_proto::identity::{
    DeviceList, EnrollmentCodeIssued, IssueCodeQuery, NewUser, OutstandingCode, OutstandingCodes,
    Role, User, UserList, UserStatus, UserUpdate, format_enrollment_code,
};
use serde::Deserialize;

use super::AppState;
use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin};
use super::fields::{self, LICENCE_MAX, NAME_MAX};
use super::finish;
use crate::auth::sessions::{SessionsOf, end_sessions};
use crate::auth::{IssueError, issue_enrollment_code};
use crate::clock::now_ms;
use crate::db::identity::{USER_COLUMNS, UserRow, find_user, user_devices, user_from_row};
use crate::db::membership::{self, Leaving};
use crate::ids::new_id;
use crate::search::{contains_pattern, user_key};

/// `/v1/admin/...`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/users", post(create_user).get(list_users))
        .route(
            "/v1/admin/users/{user_id}",
            get(get_user).patch(update_user),
        )
        .route("/v1/admin/users/{user_id}/deactivate", post(deactivate))
        .route("/v1/admin/users/{user_id}/reactivate", post(reactivate))
        .route(
            "/v1/admin/users/{user_id}/enrollment-codes",
            post(issue_code).get(list_codes),
        )
        .route(
            "/v1/admin/users/{user_id}/enrollment-codes/{code_id}",
            delete(revoke_code),
        )
        .route("/v1/admin/users/{user_id}/devices", get(list_devices))
        .route(
            "/v1/admin/users/{user_id}/devices/{device_id}",
            delete(remove_device),
        )
}

fn licence(value: Option<&str>) -> Result<Option<String>> {
    value
        .map(|licence| fields::text("licence_number", licence, LICENCE_MAX))
        .transpose()
}

async fn user_or_404(state: &AppState, user_id: &str) -> Result<User> {
    find_user(state.database.pool(), user_id)
        .await?
        .ok_or_else(|| {
            Error::NotFoundWhat(format!(
                "no user has the id {}; find people with `curbside admin user list`",
                super::error::shown(user_id)
            ))
        })
}

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
    let search_key = user_key(&display_name, &department);
    let mut tx = state.database.pool().begin().await?;
    sqlx::query(
        "INSERT INTO app_user (user_id, display_name, role, department, licence_number, status, \
         created_at_ms, updated_at_ms, search_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
    )
    .bind(&user_id)
    .bind(display_name)
    .bind(new.role.as_str())
    .bind(department)
    .bind(licence_number)
    .bind(UserStatus::Active.as_str())
    .bind(now)
    .bind(search_key)
    .execute(&mut *tx)
    .await?;
    access.resource(&user_id);
    access.commit(&state, tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(user_or_404(&state, &user_id).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    q: String,
    role: Option<Role>,
    status: Option<UserStatus>,
}

async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<UserList>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM app_user \
         WHERE search_key LIKE $1 ESCAPE '\\' \
           AND ($2 = '' OR role = $2) AND ($3 = '' OR status = $3) \
         ORDER BY display_name, user_id LIMIT $4"
    );
    let rows: Vec<UserRow> = sqlx::query_as(&sql)
        .bind(contains_pattern(&query.q))
        .bind(query.role.map_or("", Role::as_str))
        .bind(query.status.map_or("", UserStatus::as_str))
        .bind(i64::from(curbside_proto::identity::MAX_USER_LIST))
        .fetch_all(state.database.pool())
        .await?;
    let users = rows
        .into_iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Json(UserList { users }))
}

async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<User>> {
    Ok(Json(user_or_404(&state, &user_id).await?))
}

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
        let search_key = user_key(&display_name, &department);
        sqlx::query(
            "UPDATE app_user SET display_name = $1, department = $2, licence_number = $3, role = $4, \
             updated_at_ms = $5, search_key = $7 WHERE user_id = $6",
        )
        .bind(display_name)
        .bind(department)
        .bind(licence_number)
        .bind(role.as_str())
        .bind(now_ms())
        .bind(&target)
        .bind(search_key)
        .execute(&mut *tx)
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
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM app_user WHERE role = 'admin' AND status = 'active' AND user_id <> $1",
    )
    .bind(&target.user_id)
    .fetch_one(state.database.pool())
    .await?;
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
    sqlx::query("UPDATE app_user SET status = $1, updated_at_ms = $2 WHERE user_id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    if status == UserStatus::Deactivated {
        end_sessions(&mut *tx, SessionsOf::User(user_id), "user_deactivated", now).await?;
        // Out of every thread for good: reactivation does not bring the
        // devices back (they would read what was said meanwhile); members
        // add them again, and remove them from the MLS group.
        membership::end(&mut tx, Leaving::User(user_id), by_user, now).await?;
        // Codes issued before deactivation must not bring the user back:
        // revoked (not "used": no device enrolled with them).
        sqlx::query(
            "UPDATE enrollment_code SET revoked_at_ms = $1 \
             WHERE user_id = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    }
    access.commit(state, tx).await?;
    state.auth.sessions.evict_user(user_id);
    user_or_404(state, user_id).await
}

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
        sqlx::query(
            "UPDATE enrollment_code SET revoked_at_ms = $1 \
             WHERE user_id = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
               AND expires_at_ms > $1",
        )
        .bind(now)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
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

async fn list_codes(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<OutstandingCodes>> {
    user_or_404(&state, &user_id).await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT code_id, created_at_ms, expires_at_ms FROM enrollment_code \
         WHERE user_id = $1 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $2 \
         ORDER BY created_at_ms, code_id",
    )
    .bind(&user_id)
    .bind(now_ms())
    .fetch_all(state.database.pool())
    .await?;
    Ok(Json(OutstandingCodes {
        codes: rows
            .into_iter()
            .map(|(code_id, created_at_ms, expires_at_ms)| OutstandingCode {
                code_id,
                created_at_ms,
                expires_at_ms,
            })
            .collect(),
    }))
}

async fn revoke_code(
    State(state): State<AppState>,
    _admin: Admin,
    access: Access,
    Path((user_id, code_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    let revoked = sqlx::query(
        "UPDATE enrollment_code SET revoked_at_ms = $1 \
         WHERE code_id = $2 AND user_id = $3 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
           AND expires_at_ms > $1",
    )
    .bind(now)
    .bind(&code_id)
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    if revoked.rows_affected() != 1 {
        return Err(Error::NotFoundWhat(format!(
            "no outstanding enrollment code {} for this user (used, expired, or revoked \
             already); list them with `curbside admin user codes USER`",
            super::error::shown(&code_id)
        )));
    }
    access.commit(&state, tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_devices(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<DeviceList>> {
    user_or_404(&state, &user_id).await?;
    Ok(Json(DeviceList {
        devices: user_devices(state.database.pool(), &user_id).await?,
    }))
}

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
        let removed = sqlx::query(
            "UPDATE device SET removed_at_ms = $1 \
             WHERE device_id = $2 AND user_id = $3 AND removed_at_ms IS NULL",
        )
        .bind(now)
        .bind(&device_id)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
        if removed.rows_affected() != 1 {
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
        membership::end(&mut tx, Leaving::Device(&device_id), &by_user, now).await?;
        access.commit(&state, tx).await?;
        state.auth.sessions.evict_device(&device_id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
