//! Disappearing messages: any member sets how long the thread's messages
//! live, from then on: a lifespan applies to the messages sent while it is
//! in force, never to older ones (no member can erase the history others
//! wrote under other rules). The server must know, because its sweep
//! purges what is due (`crate::sweep`); the change is an entry of the log,
//! so every member's device learns of it in order, and purges its own
//! copies too.

use axum::Json;
use axum::extract::{Path, State};
use curbside_proto::attachment::{LifespanRequest, MAX_LIFESPAN_S, MIN_LIFESPAN_S};
use curbside_proto::routes;
use curbside_proto::threads::Appended;

use super::checks::{limit_writes, membership, to_u64};
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::thread;
use crate::db::thread_entry::{self, NewLifespan};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::extract;
use crate::http::state::AppState;
use crate::push::Notice;

#[utoipa::path(
    put,
    path = routes::THREAD_LIFESPAN,
    operation_id = "thread.lifespan.set",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = LifespanRequest,
    security(("session" = [])),
    responses((status = 200, description = "The change, appended to the log", body = Appended)),
)]
pub(super) async fn set(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(request): extract::Json<LifespanRequest>,
) -> Result<Json<Appended>> {
    membership(&state, &access, &caller, &thread_id).await?;
    limit_writes(&state, &caller)?;
    let lifespan_ms = match request.lifespan_s {
        None => None,
        Some(seconds) if (MIN_LIFESPAN_S..=MAX_LIFESPAN_S).contains(&seconds) => {
            i64::try_from(seconds * 1000).ok()
        }
        Some(_) => {
            return Err(Error::InvalidRequest(format!(
                "`lifespan_s` must be from {MIN_LIFESPAN_S} to {MAX_LIFESPAN_S} seconds (ten \
                 years), or null to turn disappearing messages off"
            )));
        }
    };
    access.evidence(match request.lifespan_s {
        Some(seconds) => format!("lifespan_s={seconds}"),
        None => "lifespan_s=off".to_owned(),
    });
    let now = now_ms();
    // The write comes first (see the module of `threads`).
    let mut tx = state.database.pool().begin().await?;
    let Some((seq, epoch)) =
        thread::advance_log(&mut *tx, &thread_id, now, &caller.device_id).await?
    else {
        return Err(Error::NotFound);
    };
    thread_entry::insert_lifespan(
        &mut *tx,
        NewLifespan {
            thread_id: &thread_id,
            seq,
            epoch,
            sender_user: &caller.user_id,
            sender_device: &caller.device_id,
            created_at_ms: now,
            lifespan_ms,
        },
    )
    .await?;
    thread::set_lifespan(&mut tx, &thread_id, lifespan_ms, seq).await?;
    access.commit(&state, tx).await?;
    state.events.announce(Notice::Entry {
        thread_id: thread_id.clone(),
        seq,
    });
    Ok(Json(Appended {
        seq: to_u64(seq),
        epoch: to_u64(epoch),
    }))
}
