//! The administrators' API: users, enrollment codes, devices, sessions and
//! the overview. Every route that changes something takes the [`Admin`]
//! extractor; auditors may read users and the overview ([`Reviewer`]);
//! clinicians get 403.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use curbside_proto::identity::{
    DayCounts, DeviceList, EnrollmentCodeIssued, IssueCodeQuery, MAX_USER_LIST, NewUser,
    OutstandingCodes, Overview, Role, SessionInfo, SessionList, User, UserList, UserStatus,
    UserUpdate, format_enrollment_code,
};
use curbside_proto::routes;
use serde::Deserialize;
use sqlx::{Any, Transaction};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin, Reviewer};
use super::fields::{self, LICENCE_MAX, NAME_MAX};
use super::state::AppState;
use super::state::{DayCount, finish};
use crate::auth::sessions::{LAST_SEEN_WRITE_EVERY_MS, SessionsOf, end_sessions};
use crate::auth::{IssueError, issue_enrollment_code};
use crate::clock::now_ms;
use crate::db::thread_member::{self, Leaving};
use crate::db::{app_user, audit, device, enrollment_code, session};
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
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(overview))
}

fn licence(value: Option<&str>) -> Result<Option<String>> {
    value
        .map(|licence| fields::text("licence_number", licence, LICENCE_MAX))
        .transpose()
}

/// A unique constraint's refusal as a 409 that says what to do; any other
/// error as it is.
pub(super) fn taken(error: sqlx::Error) -> Error {
    if app_user::is_unique_violation(&error) {
        Error::Conflict(
            "another user already has this user_name or external_id; find them with \
             `curbside admin user list --query NAME`, or choose another"
                .to_owned(),
        )
    } else {
        error.into()
    }
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
    let user_name = fields::identifier("user_name", new.user_name.as_deref())?;
    let external_id = fields::identifier("external_id", new.external_id.as_deref())?;
    let user_id = new_id()?;
    let now = now_ms();
    let profile = app_user::Profile {
        display_name: &display_name,
        role: new.role,
        department: &department,
        licence_number: licence_number.as_deref(),
        user_name: user_name.as_deref(),
        external_id: external_id.as_deref(),
    };
    let mut tx = state.database.pool().begin().await?;
    app_user::insert(&mut *tx, &user_id, &profile, now)
        .await
        .map_err(taken)?;
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
    /// Text the name or department contains.
    #[serde(default)]
    q: String,
    role: Option<Role>,
    status: Option<UserStatus>,
    /// Where the page starts: the `next` of the page before.
    after: Option<String>,
    /// How many users the page holds, 1 to 500 (500 if not given).
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = routes::ADMIN_USERS,
    operation_id = "admin.user.list",
    tag = "user",
    params(ListQuery),
    security(("session" = [])),
    responses((status = 200, description = "The users matching the query, a page at a time, by name", body = UserList)),
)]
async fn list_users(
    State(state): State<AppState>,
    _reviewer: Reviewer,
    Query(query): Query<ListQuery>,
) -> Result<Json<UserList>> {
    if query.q.chars().count() > 100 {
        return Err(Error::InvalidRequest(
            "the search text is longer than 100 characters".to_owned(),
        ));
    }
    let limit = query.limit.unwrap_or(MAX_USER_LIST);
    if !(1..=MAX_USER_LIST).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "`limit` must be from 1 to {MAX_USER_LIST}"
        )));
    }
    let (after_name, after_id) = match &query.after {
        Some(cursor) => fields::parse_name_cursor(cursor)?,
        None => (String::new(), String::new()),
    };
    let mut users = app_user::list(
        state.database.pool(),
        &query.q,
        query.role,
        query.status,
        (&after_name, &after_id),
        i64::from(limit) + 1,
    )
    .await?;
    let next = if users.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        users.pop();
        users
            .last()
            .map(|last| fields::name_cursor(&last.display_name, &last.user_id))
    } else {
        None
    };
    Ok(Json(UserList { users, next }))
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
    _reviewer: Reviewer,
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
    // An empty user name or external id removes it.
    let user_name = match update.user_name {
        Some(user_name) => fields::identifier("user_name", Some(&user_name))?,
        None => current.user_name,
    };
    let external_id = match update.external_id {
        Some(external_id) => fields::identifier("external_id", Some(&external_id))?,
        None => current.external_id,
    };
    // Sessions carry the role: the next request re-reads it, even if this
    // request is cancelled after the update commits.
    let target = user_id.clone();
    let evict_state = state.clone();
    finish(async move {
        let mut tx = evict_state.database.pool().begin().await?;
        let profile = app_user::Profile {
            display_name: &display_name,
            role,
            department: &department,
            licence_number: licence_number.as_deref(),
            user_name: user_name.as_deref(),
            external_id: external_id.as_deref(),
        };
        app_user::update(&mut *tx, &target, &profile, now_ms())
            .await
            .map_err(taken)?;
        access.commit(&evict_state, tx).await?;
        evict_state.auth.sessions.evict_user(&target);
        Ok(())
    })
    .await?;
    Ok(Json(user_or_404(&state, &user_id).await?))
}

/// Refuses a change that would leave no active administrator.
pub(super) async fn keep_an_admin(state: &AppState, target: &User) -> Result<()> {
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
    let mut tx = state.database.pool().begin().await?;
    change_status(&mut tx, user_id, status, by_user, BY_ADMIN, now_ms()).await?;
    access.commit(state, tx).await?;
    state.auth.sessions.evict_user(user_id);
    user_or_404(state, user_id).await
}

/// Who deactivated a user: an administrator.
pub(super) const BY_ADMIN: &str = "admin";
/// Who deactivated a user: the identity provider, through SCIM.
pub(super) const BY_SCIM: &str = "scim";

/// Gives the user `status` in `tx`, as `source` ([`BY_ADMIN`] or
/// [`BY_SCIM`]) did. Deactivating also ends their sessions,
/// their memberships (recorded as ended by `by_user`) and their unused
/// enrollment codes; once `tx` commits, the caller evicts the user's
/// cached sessions (`auth.sessions.evict_user`).
pub(super) async fn change_status(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    status: UserStatus,
    by_user: &str,
    source: &str,
    now: i64,
) -> Result<()> {
    app_user::set_status(&mut **tx, user_id, status, source, now).await?;
    if status == UserStatus::Deactivated {
        end_sessions(
            &mut **tx,
            SessionsOf::User(user_id),
            "user_deactivated",
            now,
        )
        .await?;
        // Out of every thread for good: reactivation does not bring the
        // devices back (they would read what was said meanwhile); members
        // add them again, and remove them from the MLS group.
        thread_member::end_memberships(tx, Leaving::User(user_id), by_user, now).await?;
        // Codes issued before deactivation must not bring the user back:
        // revoked (not "used": no device enrolled with them).
        enrollment_code::revoke_all_unused_for_user(&mut **tx, user_id, now).await?;
    }
    Ok(())
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

#[utoipa::path(
    get,
    path = routes::ADMIN_USER_SESSIONS,
    operation_id = "admin.session.list",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The user's live sessions, newest first", body = SessionList)),
)]
async fn list_sessions(
    State(state): State<AppState>,
    _admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<SessionList>> {
    user_or_404(&state, &user_id).await?;
    let now = now_ms();
    let sessions = session::live_for_user(
        state.database.pool(),
        &user_id,
        now,
        seen_since(&state, now),
    )
    .await?
    .into_iter()
    .map(|live| SessionInfo {
        session_id: live.session_id,
        device_id: live.device_id,
        device_name: live.device_name,
        created_at_ms: live.created_at_ms,
        last_seen_at_ms: live.last_seen_at_ms,
        expires_at_ms: live.expires_at_ms,
        client_address: live.client_address,
    })
    .collect();
    Ok(Json(SessionList { sessions }))
}

#[utoipa::path(
    post,
    path = routes::ADMIN_USER_SESSION_END,
    operation_id = "admin.session.end",
    tag = "session",
    params(("user_id" = String, Path, description = "The user's id"), ("session_id" = String, Path, description = "The session's id")),
    security(("session" = [])),
    responses((status = 204, description = "The session has ended: its next request is refused")),
)]
async fn end_session(
    State(state): State<AppState>,
    _admin: Admin,
    access: Access,
    Path((user_id, session_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    finish(async move {
        let mut tx = state.database.pool().begin().await?;
        if !session::belongs_to(&mut *tx, &session_id, &user_id).await? {
            return Err(Error::NotFoundWhat(format!(
                "this user has no session {}; list their sessions with the console's People page",
                super::error::shown(&session_id)
            )));
        }
        end_sessions(
            &mut *tx,
            SessionsOf::Session(&session_id),
            "ended_by_admin",
            now_ms(),
        )
        .await?;
        access.commit(&state, tx).await?;
        state.auth.sessions.evict(&session_id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The earliest last-seen time, as the database has it, of a session
/// that may still be live at `now`: the database lags the session cache
/// by up to [`LAST_SEEN_WRITE_EVERY_MS`], so it errs towards listing one
/// that has just gone idle rather than hiding one still in use.
fn seen_since(state: &AppState, now: i64) -> i64 {
    now.saturating_sub(state.auth.sessions.idle_timeout_ms())
        .saturating_sub(LAST_SEEN_WRITE_EVERY_MS)
}

/// How many days the overview counts, today included.
const OVERVIEW_DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;

#[utoipa::path(
    get,
    path = routes::ADMIN_OVERVIEW,
    operation_id = "admin.overview",
    tag = "installation",
    security(("session" = [])),
    responses((status = 200, description = "The installation at a glance", body = Overview)),
)]
async fn overview(State(state): State<AppState>, _reviewer: Reviewer) -> Result<Json<Overview>> {
    let pool = state.database.pool();
    let now = now_ms();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let head = audit::head(pool).await?;
    let audit_size = count(head.seq);
    // Day boundaries (UTC midnights), oldest first, and the end of today.
    let today = now - now.rem_euclid(DAY_MS);
    let starts: Vec<i64> = (0..OVERVIEW_DAYS)
        .rev()
        .map(|back| today - back * DAY_MS)
        .collect();
    let mut days = Vec::with_capacity(starts.len());
    for &start in &starts {
        let counts = day_counts(&state, start, now).await?;
        days.push(DayCounts {
            day: day_name(start),
            messages: counts.messages,
            audit_entries: counts.audit_entries,
        });
    }
    let seen_since = seen_since(&state, now);
    let tree_size = head
        .tree_note
        .as_deref()
        .and_then(|note| note.lines().nth(1))
        .and_then(|size| size.parse::<u64>().ok());
    Ok(Json(Overview {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        certificate_fingerprint: state
            .certificate
            .fingerprint()
            .map(|fingerprint| fingerprint.to_string())
            .unwrap_or_default(),
        users_active: count(app_user::count_with_status(pool, UserStatus::Active).await?),
        users_deactivated: count(app_user::count_with_status(pool, UserStatus::Deactivated).await?),
        devices_active: count(device::count_active(pool).await?),
        sessions_active: count(session::count_live(pool, now, seen_since).await?),
        days,
        audit_size,
        checkpoint_size: tree_size,
        checkpoint_time_ms: (head.checkpoint_time_ms > 0).then_some(head.checkpoint_time_ms),
    }))
}

/// The counts of the UTC day starting at `start`: from the cache once the
/// day is over (with a minute's grace for entries timed just before
/// midnight and written just after), else from the database.
async fn day_counts(state: &AppState, start: i64, now: i64) -> Result<DayCount> {
    let end = start + DAY_MS;
    let finished = now >= end + 60_000;
    let cached = state
        .finished_days
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&start)
        .copied();
    if let (true, Some(counts)) = (finished, cached) {
        return Ok(counts);
    }
    let pool = state.database.pool();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let audit_entries = count(audit::count_between(pool, start, end).await?);
    let messages = if audit_entries == 0 {
        0
    } else {
        count(audit::count_allowed_between(pool, "thread.message.send", start, end).await?)
    };
    let counts = DayCount {
        messages,
        audit_entries,
    };
    if finished {
        state
            .finished_days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(start, counts);
    }
    Ok(counts)
}

/// `YYYY-MM-DD` of the UTC day starting at `start_ms`.
fn day_name(start_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(start_ms.div_euclid(1000))
        .map(time::OffsetDateTime::date)
        .unwrap_or(time::Date::MIN);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}
