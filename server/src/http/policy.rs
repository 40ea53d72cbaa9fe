//! The organisation's messaging policy: administrators publish numbered
//! versions; every signed-in user reads the current one and accepts it
//! before threads let them in (see [`super::extract::PolicyGate`]).
//!
//! Publishing forgets every cached session and accepting forgets the
//! caller's, so this server enforces the change from the next request;
//! another replica does within `auth::sessions::REVALIDATE_AFTER`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use curbside_proto::policy::{
    AcceptPolicy, MAX_POLICY_CHARS, PolicyPending, PolicyState, PolicyVersion, PolicyVersions,
    PublishPolicy,
};
use curbside_proto::routes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract::{self, Admin, Reviewer};
use super::state::{AppState, finish};
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::{app_user, policy};

/// The most users the list of those who have not accepted holds.
const MAX_PENDING_LIST: i64 = 1000;

/// `/v1/policy...` and `/v1/admin/policy...`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current))
        .routes(routes!(accept))
        .routes(routes!(publish))
        .routes(routes!(versions))
        .routes(routes!(pending))
}

#[utoipa::path(
    get,
    path = routes::POLICY,
    operation_id = "policy.read",
    tag = "policy",
    security(("session" = [])),
    responses((status = 200, description = "The current messaging policy and the latest version the caller accepted", body = PolicyState)),
)]
async fn current(State(state): State<AppState>, caller: Caller) -> Result<Json<PolicyState>> {
    let pool = state.database.pool();
    let current = policy::current(pool).await?;
    let accepted = policy::accepted(pool, &caller.user_id).await?;
    Ok(Json(PolicyState {
        current,
        accepted_version: accepted.and_then(|version| u64::try_from(version).ok()),
    }))
}

#[utoipa::path(
    post,
    path = routes::POLICY_ACCEPT,
    operation_id = "policy.accept",
    tag = "policy",
    request_body = AcceptPolicy,
    security(("session" = [])),
    responses((status = 204, description = "Accepted: threads let the caller in from the next request")),
)]
async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
    extract::Json(request): extract::Json<AcceptPolicy>,
) -> Result<StatusCode> {
    let version = i64::try_from(request.version).unwrap_or(i64::MAX);
    access.resource(&request.version.to_string());
    finish(async move {
        let mut tx = state.database.pool().begin().await?;
        let accepted = policy::accept(
            &mut *tx,
            &caller.user_id,
            &caller.device_id,
            version,
            now_ms(),
        )
        .await?;
        if !accepted {
            access.reason("not_current");
            return Err(Error::Conflict(
                "that is not the current version of the messaging policy; read the current one \
                 (`curbside policy show`) and accept that"
                    .to_owned(),
            ));
        }
        access.commit(&state, tx).await?;
        state.auth.sessions.evict_user(&caller.user_id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = routes::ADMIN_POLICY,
    operation_id = "admin.policy.publish",
    tag = "policy",
    request_body = PublishPolicy,
    security(("session" = [])),
    responses((status = 201, description = "The new current version: every user must accept it before using threads", body = PolicyVersion)),
)]
async fn publish(
    State(state): State<AppState>,
    Admin(admin): Admin,
    access: Access,
    extract::Json(request): extract::Json<PublishPolicy>,
) -> Result<(StatusCode, Json<PolicyVersion>)> {
    let text = policy_text(&request.text)?;
    let published = finish(async move {
        let now = now_ms();
        let mut tx = state.database.pool().begin().await?;
        let version = match policy::publish(&mut *tx, &text, &admin.user_id, now).await {
            Ok(version) => version,
            // Another administrator's version took the number first.
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                access.reason("conflict");
                return Err(Error::Conflict(
                    "another administrator published a version at the same moment; read the \
                     current version and publish again if yours is still needed"
                        .to_owned(),
                ));
            }
            Err(error) => return Err(error.into()),
        };
        access.resource(&version.to_string());
        access.commit(&state, tx).await?;
        // Every cached session may now be one that must accept first.
        state.auth.sessions.evict_all();
        Ok(PolicyVersion {
            version: u64::try_from(version).unwrap_or(0),
            text,
            published_at_ms: now,
            published_by: admin.user_id,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(published)))
}

/// The policy's text with line endings made `\n` and the ends trimmed, if
/// it is 1 to [`MAX_POLICY_CHARS`] characters with no control characters
/// but line breaks and tabs.
fn policy_text(text: &str) -> Result<String> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    let length = text.chars().count();
    if length == 0
        || length > MAX_POLICY_CHARS
        || text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::InvalidRequest(format!(
            "`text` must be 1 to {MAX_POLICY_CHARS} characters of plain text (line breaks and \
             tabs allowed, no other control characters)"
        )));
    }
    Ok(text.to_owned())
}

#[utoipa::path(
    get,
    path = routes::ADMIN_POLICY_VERSIONS,
    operation_id = "admin.policy.versions",
    tag = "policy",
    security(("session" = [])),
    responses((status = 200, description = "Every version of the policy, newest first", body = PolicyVersions)),
)]
async fn versions(
    State(state): State<AppState>,
    _reviewer: Reviewer,
) -> Result<Json<PolicyVersions>> {
    Ok(Json(PolicyVersions {
        versions: policy::versions(state.database.pool()).await?,
    }))
}

#[utoipa::path(
    get,
    path = routes::ADMIN_POLICY_PENDING,
    operation_id = "admin.policy.pending",
    tag = "policy",
    security(("session" = [])),
    responses((status = 200, description = "Active users who have not accepted the current version, by name (at most 1,000)", body = PolicyPending)),
)]
async fn pending(
    State(state): State<AppState>,
    _reviewer: Reviewer,
) -> Result<Json<PolicyPending>> {
    let pool = state.database.pool();
    let Some(current) = policy::current(pool).await? else {
        return Ok(Json(PolicyPending {
            version: None,
            users: Vec::new(),
        }));
    };
    let version = i64::try_from(current.version).unwrap_or(i64::MAX);
    Ok(Json(PolicyPending {
        version: Some(current.version),
        users: app_user::not_accepted(pool, version, MAX_PENDING_LIST).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_text_keeps_paragraphs_and_refuses_other_controls() {
        assert_eq!(
            policy_text("  Use initials.\r\n\r\nNever names.\n").unwrap(),
            "Use initials.\n\nNever names."
        );
        assert!(policy_text(" \n ").is_err());
        assert!(policy_text("bell \u{7}").is_err());
        assert!(policy_text(&"x".repeat(MAX_POLICY_CHARS + 1)).is_err());
    }
}
