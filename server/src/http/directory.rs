//! `GET /v1/directory?q=TEXT`: signed-in users find active colleagues by
//! name or department, with their devices' public keys (which clients check
//! MLS credentials against).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use curbside_proto::identity::{Directory, DirectoryDevice, DirectoryEntry, Role};
use serde::Deserialize;

use super::AppState;
use super::error::{Error, Result};
use crate::auth::sessions::Caller;

/// The most users one search returns.
pub const MAX_RESULTS: i64 = 200;

/// `GET /v1/directory`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/directory", get(search))
        .route("/v1/directory/users/{user_id}", get(lookup))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `text` as a case-insensitive `LIKE` pattern matching it anywhere, with
/// `%`, `_` and the escape character itself escaped.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

async fn search(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Directory>> {
    if query.q.chars().count() > 100 {
        return Err(Error::InvalidRequest(
            "the search text is longer than 100 characters".to_owned(),
        ));
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.user_id, u.display_name, u.role, u.department, \
                d.device_id, d.device_name, d.public_key \
         FROM (SELECT user_id, display_name, role, department FROM app_user \
               WHERE status = 'active' \
                 AND (LOWER(display_name) LIKE $1 ESCAPE '\\' \
                      OR LOWER(department) LIKE $1 ESCAPE '\\') \
               ORDER BY display_name, user_id LIMIT $2) u \
         LEFT JOIN device d ON d.user_id = u.user_id AND d.removed_at_ms IS NULL \
         ORDER BY u.display_name, u.user_id, d.created_at_ms, d.device_id",
    )
    .bind(contains_pattern(&query.q))
    .bind(MAX_RESULTS)
    .fetch_all(state.database.pool())
    .await?;
    Ok(Json(Directory {
        entries: entries(rows)?,
    }))
}

/// `GET /v1/directory/users/{user_id}`: one active user and their devices,
/// however large the directory (clients check credentials against it).
async fn lookup(
    State(state): State<AppState>,
    _caller: Caller,
    axum::extract::Path(user_id): axum::extract::Path<String>,
) -> Result<Json<DirectoryEntry>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.user_id, u.display_name, u.role, u.department, \
                d.device_id, d.device_name, d.public_key \
         FROM app_user u \
         LEFT JOIN device d ON d.user_id = u.user_id AND d.removed_at_ms IS NULL \
         WHERE u.user_id = $1 AND u.status = 'active' \
         ORDER BY d.created_at_ms, d.device_id",
    )
    .bind(&user_id)
    .fetch_all(state.database.pool())
    .await?;
    entries(rows)?.pop().map(Json).ok_or(Error::NotFound)
}

/// Directory entries from rows of users joined with their devices, in
/// user order.
fn entries(rows: Vec<Row>) -> Result<Vec<DirectoryEntry>> {
    let mut entries: Vec<DirectoryEntry> = Vec::new();
    for (user_id, display_name, role, department, device_id, device_name, public_key) in rows {
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
