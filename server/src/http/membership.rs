//! `GET /v1/membership/pending`: the changes of membership the server asks
//! member clients to commit, since it cannot change an MLS group itself: a
//! member's device enrolled since the member joined (so every device of a
//! clinician is in every thread they are in), a backup an urgent message's
//! escalation reached, and the former members' devices still in a group
//! (removed, deactivated, left), which must go so that they cannot decrypt
//! what is sent afterwards. The first member client to act commits the
//! change; the others' commits at the same epoch lose (409), and they read
//! the list again.

use axum::Json;
use axum::extract::State;
use curbside_proto::clinical::{PendingAdd, PendingMembership, PendingThread};
use curbside_proto::routes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::Result;
use super::state::AppState;
use crate::auth::sessions::Caller;
use crate::db::clinical;

/// `/v1/membership/pending`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pending))
        // Like the threads themselves, it waits for the messaging policy.
        .route_layer(axum::Extension(super::extract::PolicyGate))
}

#[utoipa::path(
    get,
    path = routes::PENDING_MEMBERSHIP,
    operation_id = "membership.pending",
    tag = "thread",
    security(("session" = [])),
    responses((status = 200, description = "For the caller's device's threads, the devices to add and to remove", body = PendingMembership)),
)]
async fn pending(State(state): State<AppState>, caller: Caller) -> Result<Json<PendingMembership>> {
    let pool = state.database.pool();
    let adds = clinical::pending_adds(pool, &caller.device_id).await?;
    let removes = clinical::pending_removes(pool, &caller.device_id).await?;
    let mut threads: Vec<PendingThread> = Vec::new();
    fn thread<'a>(threads: &'a mut Vec<PendingThread>, thread_id: &str) -> &'a mut PendingThread {
        let index = match threads.iter().position(|t| t.thread_id == thread_id) {
            Some(index) => index,
            None => {
                threads.push(PendingThread {
                    thread_id: thread_id.to_owned(),
                    add: Vec::new(),
                    remove: Vec::new(),
                });
                threads.len() - 1
            }
        };
        &mut threads[index]
    }
    for add in adds {
        let entry = thread(&mut threads, &add.thread_id);
        let urgent = add.urgent_seq.and_then(|seq| u64::try_from(seq).ok());
        // A device both new and invited (or invited for several urgent
        // messages) is listed once, with every urgent message.
        match entry.add.iter_mut().find(|a| a.device_id == add.device_id) {
            Some(existing) => {
                if let Some(seq) = urgent
                    && !existing.for_urgent_seqs.contains(&seq)
                {
                    existing.for_urgent_seqs.push(seq);
                }
            }
            None => entry.add.push(PendingAdd {
                user_id: add.user_id,
                device_id: add.device_id,
                for_urgent_seqs: urgent.into_iter().collect(),
            }),
        }
    }
    for remove in removes {
        thread(&mut threads, &remove.thread_id)
            .remove
            .push(remove.device_id);
    }
    threads.sort_by(|a, b| a.thread_id.cmp(&b.thread_id));
    Ok(Json(PendingMembership { threads }))
}
