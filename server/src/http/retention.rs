//! The organisation's retention policy and legal holds: administrators
//! set the one and place and lift the others, auditors see both, and the
//! sweep (`crate::sweep`) obeys them. Nothing here deletes anything: a
//! shorter policy takes effect at the sweep's next pass.

use axum::Json;
use axum::extract::{Path, State};
use curbside_proto::retention::{
    Hold, HoldList, HoldScope, MAX_MAX_AGE_S, MAX_REASON_CHARS, MIN_MAX_AGE_S, NewHold,
    RetentionPolicy, RetentionUpdate,
};
use curbside_proto::routes;
use curbside_proto::threads::is_thread_id;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin, Reviewer};
use super::state::AppState;
use crate::clock::now_ms;
use crate::db::app_user;
use crate::db::retention::{self, HoldRow, PolicyRow};

/// `/v1/admin/retention` and `/v1/admin/holds...`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(policy, set_policy))
        .routes(routes!(holds, place))
        .routes(routes!(lift))
}

fn to_policy(row: PolicyRow) -> RetentionPolicy {
    RetentionPolicy {
        max_age_s: row.max_age_ms.and_then(|ms| u64::try_from(ms / 1000).ok()),
        updated_at_ms: row.updated_at_ms,
        updated_by: row.updated_by,
    }
}

fn to_hold(row: HoldRow) -> Hold {
    Hold {
        hold_id: row.hold_id,
        scope: HoldScope::parse(&row.scope).unwrap_or(HoldScope::Thread),
        target_id: row.target_id,
        reason: row.reason,
        placed_by: row.placed_by,
        placed_at_ms: row.placed_at_ms,
        lifted_by: row.lifted_by,
        lifted_at_ms: row.lifted_at_ms,
    }
}

#[utoipa::path(
    get,
    path = routes::ADMIN_RETENTION,
    operation_id = "admin.retention.get",
    tag = "retention",
    security(("session" = [])),
    responses((status = 200, description = "The retention policy", body = RetentionPolicy)),
)]
async fn policy(
    State(state): State<AppState>,
    _reviewer: Reviewer,
) -> Result<Json<RetentionPolicy>> {
    Ok(Json(to_policy(
        retention::policy(state.database.pool()).await?,
    )))
}

#[utoipa::path(
    put,
    path = routes::ADMIN_RETENTION,
    operation_id = "admin.retention.set",
    tag = "retention",
    request_body = RetentionUpdate,
    security(("session" = [])),
    responses((status = 200, description = "The policy as set: the sweep's next pass applies it", body = RetentionPolicy)),
)]
async fn set_policy(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    extract::Json(request): extract::Json<RetentionUpdate>,
) -> Result<Json<RetentionPolicy>> {
    let max_age_ms = match request.max_age_s {
        None => None,
        Some(seconds) if (MIN_MAX_AGE_S..=MAX_MAX_AGE_S).contains(&seconds) => {
            i64::try_from(seconds * 1000).ok()
        }
        Some(_) => {
            return Err(Error::InvalidRequest(format!(
                "`max_age_s` must be from {MIN_MAX_AGE_S} seconds (one day) to {MAX_MAX_AGE_S} \
                 (a hundred years), or null to turn the retention policy off"
            )));
        }
    };
    access.evidence(match request.max_age_s {
        Some(seconds) => format!("max_age_s={seconds}"),
        None => "max_age_s=off".to_owned(),
    });
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    retention::set_policy(&mut *tx, max_age_ms, now, &admin.user_id).await?;
    access.commit(&state, tx).await?;
    Ok(Json(RetentionPolicy {
        max_age_s: request.max_age_s,
        updated_at_ms: Some(now),
        updated_by: Some(admin.user_id),
    }))
}

#[utoipa::path(
    get,
    path = routes::ADMIN_HOLDS,
    operation_id = "admin.hold.list",
    tag = "hold",
    security(("session" = [])),
    responses((status = 200, description = "Every legal hold, current and lifted, newest first", body = HoldList)),
)]
async fn holds(State(state): State<AppState>, _reviewer: Reviewer) -> Result<Json<HoldList>> {
    let rows = retention::holds(state.database.pool()).await?;
    Ok(Json(HoldList {
        holds: rows.into_iter().map(to_hold).collect(),
    }))
}

#[utoipa::path(
    post,
    path = routes::ADMIN_HOLDS,
    operation_id = "admin.hold.place",
    tag = "hold",
    request_body = NewHold,
    security(("session" = [])),
    responses((status = 200, description = "The hold: from now on nothing it covers is purged", body = Hold)),
)]
async fn place(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    extract::Json(request): extract::Json<NewHold>,
) -> Result<Json<Hold>> {
    let reason = request.reason.trim();
    let length = reason.chars().count();
    if length == 0 || length > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "`reason` must be 1 to {MAX_REASON_CHARS} characters on one line: say which matter \
             the hold is for"
        )));
    }
    let pool = state.database.pool();
    let exists = match request.scope {
        HoldScope::Thread => {
            is_thread_id(&request.target_id)
                && retention::thread_exists(pool, &request.target_id).await?
        }
        HoldScope::User => {
            crate::ids::is_id(&request.target_id)
                && app_user::find(pool, &request.target_id).await?.is_some()
        }
    };
    if !exists {
        access.reason("no_such_target");
        return Err(Error::NotFoundWhat(format!(
            "there is no {} with the id {}; copy the id from the audit log or the people list",
            request.scope.as_str(),
            request.target_id
        )));
    }
    let hold_id = crate::ids::new_id().map_err(|error| Error::Internal(error.to_string()))?;
    access.resource(&hold_id);
    access.evidence(format!(
        "scope={} target={}",
        request.scope.as_str(),
        request.target_id
    ));
    let row = HoldRow {
        hold_id,
        scope: request.scope.as_str().to_owned(),
        target_id: request.target_id,
        reason: reason.to_owned(),
        placed_by: admin.user_id,
        placed_at_ms: now_ms(),
        lifted_by: None,
        lifted_at_ms: None,
    };
    let mut tx = pool.begin().await?;
    // After this commits, no purge that has not seen it runs (see
    // `retention::serialize_with_holds`).
    retention::serialize_with_holds(&mut *tx).await?;
    retention::place(&mut *tx, &row).await?;
    access.commit(&state, tx).await?;
    Ok(Json(to_hold(row)))
}

#[utoipa::path(
    post,
    path = routes::ADMIN_HOLD_LIFT,
    operation_id = "admin.hold.lift",
    tag = "hold",
    params(("hold_id" = String, Path, description = "The hold's id")),
    security(("session" = [])),
    responses((status = 200, description = "The hold, lifted: the sweep's next pass purges what is due", body = Hold)),
)]
async fn lift(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    Path(hold_id): Path<String>,
) -> Result<Json<Hold>> {
    let not_found = || Error::NotFoundWhat(format!("there is no legal hold with the id {hold_id}"));
    if !crate::ids::is_id(&hold_id) {
        return Err(not_found());
    }
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    retention::serialize_with_holds(&mut *tx).await?;
    if !retention::lift(&mut *tx, &hold_id, &admin.user_id, now).await? {
        drop(tx);
        return match retention::hold(state.database.pool(), &hold_id).await? {
            Some(_) => {
                access.reason("already_lifted");
                Err(Error::Conflict(
                    "this hold was already lifted; place a new one if it is needed again"
                        .to_owned(),
                ))
            }
            None => Err(not_found()),
        };
    }
    let Some(row) = retention::hold(&mut *tx, &hold_id).await? else {
        return Err(not_found());
    };
    access.evidence(format!("scope={} target={}", row.scope, row.target_id));
    access.commit(&state, tx).await?;
    Ok(Json(to_hold(row)))
}
