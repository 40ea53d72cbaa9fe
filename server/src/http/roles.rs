//! Roles ("Cardiology on-call") and the shifts that say who holds each
//! when: administrators define them, auditors read them, and every
//! signed-in user sees them in the directory, with who holds each now and
//! who next, so that a thread can be started with a role and a handoff is
//! visible. Where shifts overlap, the one that started last holds the role.
//!
//! The escalation policies (`super::escalation`) name roles as backups.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use curbside_proto::clinical::{
    MAX_ROLE_NAME_CHARS, MAX_SHIFT_S, NewRole, NewShift, OnCallRole, RoleList, Shift,
};
use curbside_proto::identity::UserStatus;
use curbside_proto::routes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin, Reviewer};
use super::state::AppState;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::app_user;
use crate::db::clinical::{self, RoleRow, ShiftRow};

/// `/v1/admin/roles...` and `/v1/directory/roles`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(assign))
        .routes(routes!(cancel))
        .routes(routes!(directory))
}

/// How long a shift that is over stays listed (for the handoff).
const ENDED_SHOWN_MS: i64 = 7 * 24 * 3600 * 1000;

fn to_shift(row: ShiftRow) -> Shift {
    Shift {
        shift_id: row.shift_id,
        role_id: row.role_id,
        user_id: row.user_id,
        display_name: row.display_name,
        starts_at_ms: row.starts_at_ms,
        ends_at_ms: row.ends_at_ms,
        timezone: row.timezone,
    }
}

/// Every role with its holder at `now` and its shifts: the last one over,
/// the current ones and the coming ones.
async fn role_list(state: &AppState) -> Result<RoleList> {
    let now = now_ms();
    let pool = state.database.pool();
    let roles = clinical::roles(pool).await?;
    let shifts = clinical::shifts_since(pool, now - ENDED_SHOWN_MS).await?;
    let mut out = Vec::with_capacity(roles.len());
    for role in roles {
        let mine: Vec<&ShiftRow> = shifts
            .iter()
            .filter(|shift| shift.role_id == role.role_id)
            .collect();
        let last_over = mine
            .iter()
            .filter(|shift| shift.ends_at_ms <= now)
            .max_by_key(|shift| shift.ends_at_ms);
        let mut listed: Vec<Shift> = mine
            .iter()
            .filter(|shift| {
                shift.ends_at_ms > now
                    || last_over.is_some_and(|last| last.shift_id == shift.shift_id)
            })
            .map(|shift| to_shift((*shift).clone()))
            .collect();
        listed.sort_by_key(|shift| (shift.starts_at_ms, shift.shift_id.clone()));
        // The same rule as `clinical::holder_at`, which escalation and
        // tests use: the current shift of an active user that started
        // last.
        let holder = clinical::holder_at(pool, &role.role_id, now)
            .await?
            .map(to_shift);
        out.push(OnCallRole {
            role_id: role.role_id,
            name: role.name,
            department: role.department,
            holder,
            shifts: listed,
        });
    }
    Ok(RoleList {
        roles: out,
        now_ms: now,
    })
}

#[utoipa::path(
    get,
    path = routes::ADMIN_ROLES,
    operation_id = "admin.role.list",
    tag = "role",
    security(("session" = [])),
    responses((status = 200, description = "Every role, its holder now and its shifts", body = RoleList)),
)]
async fn list(State(state): State<AppState>, _reviewer: Reviewer) -> Result<Json<RoleList>> {
    Ok(Json(role_list(&state).await?))
}

#[utoipa::path(
    get,
    path = routes::DIRECTORY_ROLES,
    operation_id = "directory.roles",
    tag = "directory",
    security(("session" = [])),
    responses((status = 200, description = "Every role, who holds it now and who next", body = RoleList)),
)]
async fn directory(State(state): State<AppState>, _caller: Caller) -> Result<Json<RoleList>> {
    Ok(Json(role_list(&state).await?))
}

/// A one-line text of 1 to `max` characters, trimmed; `what` names it in
/// the error.
fn one_line(text: &str, max: usize, what: &str, hint: &str) -> Result<String> {
    let text = text.trim();
    let length = text.chars().count();
    if length == 0 || length > max || text.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "`{what}` must be 1 to {max} characters on one line{hint}"
        )));
    }
    Ok(text.to_owned())
}

#[utoipa::path(
    post,
    path = routes::ADMIN_ROLES,
    operation_id = "admin.role.create",
    tag = "role",
    request_body = NewRole,
    security(("session" = [])),
    responses((status = 200, description = "The role, with no shifts yet", body = OnCallRole)),
)]
async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    extract::Json(request): extract::Json<NewRole>,
) -> Result<Json<OnCallRole>> {
    let name = one_line(
        &request.name,
        MAX_ROLE_NAME_CHARS,
        "name",
        ", such as \"Cardiology on-call\"",
    )?;
    let department = one_line(&request.department, 100, "department", "")?;
    let role_id = crate::ids::new_id().map_err(|error| Error::Internal(error.to_string()))?;
    access.resource(&role_id);
    let row = RoleRow {
        role_id,
        name,
        department,
    };
    let mut tx = state.database.pool().begin().await?;
    let key = curbside_proto::names::fold(&row.name);
    if !clinical::insert_role(&mut *tx, &row, &key, &admin.user_id, now_ms()).await? {
        access.reason("name_taken");
        return Err(Error::Conflict(format!(
            "a role named \"{}\" exists already; assign shifts to it, or choose another name",
            row.name
        )));
    }
    access.commit(&state, tx).await?;
    Ok(Json(OnCallRole {
        role_id: row.role_id,
        name: row.name,
        department: row.department,
        holder: None,
        shifts: Vec::new(),
    }))
}

/// Whether `zone` looks like an IANA time zone name ("Europe/Paris",
/// "UTC", "America/Argentina/Buenos_Aires"); clients check it against
/// their zone database, the server only keeps it to show.
fn is_zone_name(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() <= 64
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
        && !zone.starts_with('/')
        && !zone.contains("..")
}

#[utoipa::path(
    post,
    path = routes::ADMIN_ROLE_SHIFTS,
    operation_id = "admin.role.assign",
    tag = "role",
    params(("role_id" = String, Path, description = "The role's id")),
    request_body = NewShift,
    security(("session" = [])),
    responses((status = 200, description = "The shift", body = Shift)),
)]
async fn assign(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    Path(role_id): Path<String>,
    extract::Json(request): extract::Json<NewShift>,
) -> Result<Json<Shift>> {
    let pool = state.database.pool();
    if !crate::ids::is_id(&role_id) || clinical::role(pool, &role_id).await?.is_none() {
        return Err(Error::NotFoundWhat(format!(
            "there is no role with the id {role_id}; list them with `curbside admin role list`"
        )));
    }
    let length = request.ends_at_ms.saturating_sub(request.starts_at_ms);
    let longest = i64::try_from(MAX_SHIFT_S * 1000).unwrap_or(i64::MAX);
    if length <= 0 || length > longest {
        return Err(Error::InvalidRequest(
            "a shift must end after it starts, and last at most 31 days".to_owned(),
        ));
    }
    if request.ends_at_ms <= now_ms() {
        return Err(Error::InvalidRequest(
            "this shift is over already: give one that ends in the future".to_owned(),
        ));
    }
    if !is_zone_name(&request.timezone) {
        return Err(Error::InvalidRequest(
            "`timezone` must be an IANA time zone name, such as \"Europe/Paris\" or \"UTC\""
                .to_owned(),
        ));
    }
    let holder = if crate::ids::is_id(&request.user_id) {
        app_user::find(pool, &request.user_id).await?
    } else {
        None
    };
    let Some(holder) = holder.filter(|user| user.status == UserStatus::Active) else {
        access.reason("no_such_user");
        return Err(Error::InvalidRequest(format!(
            "no active user has the id {}: find people with `curbside directory search NAME`",
            request.user_id
        )));
    };
    let shift_id = crate::ids::new_id().map_err(|error| Error::Internal(error.to_string()))?;
    access.evidence(format!(
        "shift={shift_id} user={} starts_at_ms={} ends_at_ms={}",
        holder.user_id, request.starts_at_ms, request.ends_at_ms
    ));
    let row = ShiftRow {
        shift_id,
        role_id,
        user_id: holder.user_id,
        display_name: holder.display_name,
        starts_at_ms: request.starts_at_ms,
        ends_at_ms: request.ends_at_ms,
        timezone: request.timezone,
    };
    let mut tx = pool.begin().await?;
    clinical::insert_shift(&mut *tx, &row, &admin.user_id, now_ms()).await?;
    access.commit(&state, tx).await?;
    Ok(Json(to_shift(row)))
}

#[utoipa::path(
    delete,
    path = routes::ADMIN_ROLE_SHIFT,
    operation_id = "admin.role.unassign",
    tag = "role",
    params(
        ("role_id" = String, Path, description = "The role's id"),
        ("shift_id" = String, Path, description = "The shift's id"),
    ),
    security(("session" = [])),
    responses((status = 204, description = "The shift is cancelled")),
)]
async fn cancel(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    access: Access,
    Path((role_id, shift_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    access.evidence(format!("role={role_id}"));
    if !crate::ids::is_id(&role_id) || !crate::ids::is_id(&shift_id) {
        return Err(Error::NotFoundWhat(
            "there is no such shift: list them with `curbside admin role list`".to_owned(),
        ));
    }
    let mut tx = state.database.pool().begin().await?;
    if !clinical::cancel_shift(&mut *tx, &role_id, &shift_id, now_ms()).await? {
        return Err(Error::NotFoundWhat(
            "there is no such shift, or it was cancelled already: list them with `curbside \
             admin role list`"
                .to_owned(),
        ));
    }
    access.commit(&state, tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
