//! `GET /v1/directory?q=TEXT`: signed-in users find active colleagues by
//! name or department (whatever the case, accents or script: see
//! `crate::search`), with their devices' public keys (which clients check
//! MLS credentials against).
//!
//! Colleagues in a closed network may look each other up, but not at
//! machine speed: searches and look-ups are limited per user, and a search
//! answers a page at a time (`limit`, `after`).

use axum::Json;
use axum::extract::{Query, State};
use curbside_proto::identity::{
    DEFAULT_DIRECTORY_PAGE, Directory, DirectoryDevice, DirectoryEntry, MAX_DIRECTORY_PAGE, Role,
};
use curbside_proto::routes;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{Error, Result};
use super::fields;
use super::state::AppState;
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::db::app_user::{self, DirectoryRow};

/// `GET /v1/directory`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(lookup))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = routes::DIRECTORY,
    operation_id = "directory.search",
    tag = "directory",
    params(SearchQuery),
    security(("session" = [])),
    responses((status = 200, description = "Active colleagues matching the search, a page at a time", body = Directory)),
)]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Directory>> {
    if query.q.chars().count() > 100 {
        return Err(Error::InvalidRequest(
            "the search text is longer than 100 characters".to_owned(),
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_DIRECTORY_PAGE);
    if !(1..=MAX_DIRECTORY_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "`limit` must be from 1 to {MAX_DIRECTORY_PAGE}"
        )));
    }
    let (after_name, after_id) = match &query.after {
        Some(cursor) => fields::parse_name_cursor(cursor)?,
        None => (String::new(), String::new()),
    };
    // A page costs by how many people it may list.
    let cost = f64::from(limit.div_ceil(25));
    state
        .auth
        .limits
        .check_cost(Limit::DirectorySearchPerUser, &caller.user_id, cost)?;
    let rows = app_user::directory_page(
        state.database.pool(),
        &query.q,
        &after_name,
        &after_id,
        i64::from(limit) + 1,
    )
    .await?;
    let mut entries = entries(rows)?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries
            .last()
            .map(|last| fields::name_cursor(&last.display_name, &last.user_id))
    } else {
        None
    };
    Ok(Json(Directory { entries, next }))
}

/// `GET /v1/directory/users/{user_id}`: one active user and their devices,
/// however large the directory (clients check credentials against it).
#[utoipa::path(
    get,
    path = routes::DIRECTORY_USER,
    operation_id = "directory.read",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("session" = [])),
    responses((status = 200, description = "The colleague", body = DirectoryEntry)),
)]
async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(user_id): axum::extract::Path<String>,
) -> Result<Json<DirectoryEntry>> {
    state
        .auth
        .limits
        .check(Limit::DirectoryReadPerUser, &caller.user_id)?;
    let rows = app_user::directory_entry(state.database.pool(), &user_id).await?;
    entries(rows)?.pop().map(Json).ok_or(Error::NotFound)
}

/// Directory entries from rows of users joined with their devices, in
/// user order.
fn entries(rows: Vec<DirectoryRow>) -> Result<Vec<DirectoryEntry>> {
    let mut entries: Vec<DirectoryEntry> = Vec::new();
    for DirectoryRow {
        user_id,
        display_name,
        role,
        department,
        device_id,
        device_name,
        public_key,
    } in rows
    {
        if entries.last().is_none_or(|entry| entry.user_id != user_id) {
            entries.push(DirectoryEntry {
                user_id,
                display_name,
                role: Role::parse(&role)
                    .ok_or_else(|| Error::Internal("unexpected role in app_user".to_owned()))?,
                department,
                devices: Vec::new(),
            });
        }
        if let (Some(entry), Some(device_id), Some(device_name), Some(public_key)) =
            (entries.last_mut(), device_id, device_name, public_key)
        {
            entry.devices.push(DirectoryDevice {
                device_id,
                device_name,
                public_key,
            });
        }
    }
    Ok(entries)
}
