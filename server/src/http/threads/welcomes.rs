//! How a device joins a thread: it is made a member with the group's MLS
//! Welcome queued for it (when a thread is made or a commit adds it), and
//! it lists and acknowledges the welcomes waiting for it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use curbside_proto::routes;
use curbside_proto::threads::{Blob, WELCOMES_PATH, Welcome, WelcomeList};
use sqlx::{Any, Transaction};

use super::checks::to_u64;
use crate::auth::sessions::Caller;
use crate::db::thread_member;
use crate::db::welcome::{self, NewWelcome};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::state::AppState;
use crate::ids::new_id;
use crate::push::Notice;

/// Adds `device_id` to the thread as of `seq`, with `welcome` queued for
/// it; returns the welcome's id.
pub(super) async fn add_member(
    tx: &mut Transaction<'_, Any>,
    thread_id: &str,
    device_id: &str,
    seq: i64,
    epoch: i64,
    welcome: &Blob,
    now: i64,
) -> Result<String> {
    let user_id = thread_member::enrolled_device_user(&mut **tx, device_id)
        .await?
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "device {device_id} is not an enrolled device of an active user; claim key \
             packages again and rebuild the commit"
            ))
        })?;
    if !thread_member::add_member(&mut **tx, thread_id, device_id, &user_id, seq).await? {
        // Not 409: that tells clients to catch up and retry, which would
        // not help.
        return Err(Error::InvalidRequest(format!(
            "device {device_id} is already a member of this thread; do not add it again"
        )));
    }
    let welcome_id = new_id()?;
    welcome::queue(
        &mut **tx,
        NewWelcome {
            welcome_id: &welcome_id,
            device_id,
            thread_id,
            epoch,
            joined_seq: seq,
            welcome: &welcome.0,
            created_at_ms: now,
        },
    )
    .await?;
    Ok(welcome_id)
}

/// Announces the welcomes queued for `devices` (after the commit).
pub(super) fn announce_welcomes(state: &AppState, devices: &[String], welcome_ids: Vec<String>) {
    for (device_id, welcome_id) in devices.iter().zip(welcome_ids) {
        state.events.announce(Notice::Welcome {
            device_id: device_id.clone(),
            welcome_id,
        });
    }
}

#[utoipa::path(
    get,
    path = WELCOMES_PATH,
    operation_id = "welcome.list",
    tag = "device",
    security(("session" = [])),
    responses((status = 200, description = "Welcomes waiting for the device", body = WelcomeList)),
)]
pub(super) async fn welcomes(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<Json<WelcomeList>> {
    access.resource(&caller.device_id);
    let rows = welcome::pending_for_device(state.database.pool(), &caller.device_id).await?;
    Ok(Json(WelcomeList {
        welcomes: rows
            .into_iter()
            .map(|row| Welcome {
                welcome_id: row.welcome_id,
                thread_id: row.thread_id,
                epoch: to_u64(row.epoch),
                joined_seq: to_u64(row.joined_seq),
                welcome: Blob(row.welcome),
            })
            .collect(),
    }))
}

#[utoipa::path(
    post,
    path = routes::WELCOME_ACK,
    operation_id = "welcome.ack",
    tag = "welcome",
    params(("welcome_id" = String, Path, description = "The welcome's id")),
    security(("session" = [])),
    responses((status = 204, description = "The welcome is deleted")),
)]
pub(super) async fn ack_welcome(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(welcome_id): Path<String>,
) -> Result<StatusCode> {
    let mut tx = state.database.pool().begin().await?;
    if !welcome::acknowledge(&mut *tx, &welcome_id, &caller.device_id).await? {
        return Err(Error::NotFound);
    }
    access.commit(&state, tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
