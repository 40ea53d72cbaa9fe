//! The organisation's escalation policies, one per department (and `*`
//! for the rest): how long an urgent message may wait for an
//! acknowledgement before its recipients are alerted again, and then
//! before it reaches the backup, a role's holder or a named user.
//! Administrators set them; auditors read them. `crate::escalation` acts
//! on them.

use axum::Json;
use axum::extract::State;
use curbside_proto::clinical::{
    ANY_DEPARTMENT, Backup, EscalationPolicies, EscalationPolicy, MAX_ESCALATION_S,
};
use curbside_proto::identity::UserStatus;
use curbside_proto::routes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin, Reviewer};
use super::state::AppState;
use crate::clock::now_ms;
use crate::db::app_user;
use crate::db::clinical::{self, PolicyRow};

/// `/v1/admin/escalation`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, set))
}

fn seconds(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

/// The policy as the API gives it.
pub(super) fn to_policy(row: PolicyRow) -> EscalationPolicy {
    EscalationPolicy {
        department: row.department,
        realert_after_s: seconds(row.realert_after_ms),
        escalate_after_s: seconds(row.escalate_after_ms),
        backup: match (row.backup_role, row.backup_user) {
            (Some(role_id), _) => Backup::Role { role_id },
            (None, user) => Backup::User {
                user_id: user.unwrap_or_default(),
            },
        },
    }
}

#[utoipa::path(
    get,
    path = routes::ADMIN_ESCALATION,
    operation_id = "admin.escalation.list",
    tag = "escalation",
    security(("session" = [])),
    responses((status = 200, description = "Every department's escalation policy", body = EscalationPolicies)),
)]
async fn list(
    State(state): State<AppState>,
    _reviewer: Reviewer,
) -> Result<Json<EscalationPolicies>> {
    let rows = clinical::policies(state.database.pool()).await?;
    Ok(Json(EscalationPolicies {
        policies: rows.into_iter().map(to_policy).collect(),
    }))
}

#[utoipa::path(
    put,
    path = routes::ADMIN_ESCALATION,
    operation_id = "admin.escalation.set",
    tag = "escalation",
    request_body = EscalationPolicy,
    security(("session" = [])),
    responses((status = 200, description = "The policy as set: urgent messages sent from now on follow it", body = EscalationPolicy)),
)]
async fn set(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    extract::Json(request): extract::Json<EscalationPolicy>,
) -> Result<Json<EscalationPolicy>> {
    let department = request.department.trim().to_owned();
    if department.is_empty()
        || department.chars().count() > 100
        || department.chars().any(char::is_control)
    {
        return Err(Error::InvalidRequest(format!(
            "`department` must be a department's name as users have it, 1 to 100 characters, \
             or \"{ANY_DEPARTMENT}\" for every department without a policy of its own"
        )));
    }
    if !(1..=MAX_ESCALATION_S).contains(&request.realert_after_s)
        || request.escalate_after_s <= request.realert_after_s
        || request.escalate_after_s > MAX_ESCALATION_S
    {
        return Err(Error::InvalidRequest(format!(
            "`realert_after_s` must be 1 to {MAX_ESCALATION_S} seconds, and \
             `escalate_after_s` longer than it and at most {MAX_ESCALATION_S} (a day)"
        )));
    }
    access.resource(&department);
    let pool = state.database.pool();
    let (backup_role, backup_user) = match &request.backup {
        Backup::Role { role_id } => {
            if !crate::ids::is_id(role_id) || clinical::role(pool, role_id).await?.is_none() {
                return Err(Error::InvalidRequest(format!(
                    "there is no role with the id {role_id}; list them with `curbside admin \
                     role list`"
                )));
            }
            (Some(role_id.clone()), None)
        }
        Backup::User { user_id } => {
            let user = if crate::ids::is_id(user_id) {
                app_user::find(pool, user_id).await?
            } else {
                None
            };
            if !user.is_some_and(|user| user.status == UserStatus::Active) {
                return Err(Error::InvalidRequest(format!(
                    "no active user has the id {user_id}: find people with `curbside directory \
                     search NAME`"
                )));
            }
            (None, Some(user_id.clone()))
        }
    };
    access.evidence(format!(
        "realert_after_s={} escalate_after_s={} backup={}",
        request.realert_after_s,
        request.escalate_after_s,
        backup_role.as_deref().map_or_else(
            || format!("user:{}", backup_user.as_deref().unwrap_or("")),
            |role| { format!("role:{role}") }
        )
    ));
    let row = PolicyRow {
        department,
        realert_after_ms: i64::try_from(request.realert_after_s * 1000).unwrap_or(i64::MAX),
        escalate_after_ms: i64::try_from(request.escalate_after_s * 1000).unwrap_or(i64::MAX),
        backup_role,
        backup_user,
    };
    let mut tx = pool.begin().await?;
    clinical::set_policy(&mut *tx, &row, &admin.user_id, now_ms()).await?;
    access.commit(&state, tx).await?;
    Ok(Json(to_policy(row)))
}
