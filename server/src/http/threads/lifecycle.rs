//! A thread's life as its members see it: making one (with the first
//! members' welcomes queued), the device's list of threads, one thread's
//! detail with its members and receipts, and leaving it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use curbside_proto::routes;
use curbside_proto::threads::{
    DEFAULT_THREADS_PAGE, MAX_THREADS_PAGE, Member, NewThread, ReadReceipt, THREADS_PATH,
    ThreadDetail, ThreadList, ThreadSummary, is_thread_id,
};
use serde::Deserialize;

use super::checks::{check_devices, check_size, hidden, limit_writes, membership, to_i64, to_u64};
use super::welcomes::{add_member, announce_welcomes};
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::thread::SummaryRow;
use crate::db::thread_member::{self, Leaving};
use crate::db::{read_receipt, thread};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::extract;
use crate::http::state::AppState;

#[utoipa::path(
    post,
    path = THREADS_PATH,
    operation_id = "thread.create",
    tag = "thread",
    request_body = NewThread,
    security(("session" = [])),
    responses((status = 201, description = "The thread, made", body = ThreadSummary)),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    extract::Json(new): extract::Json<NewThread>,
) -> Result<(StatusCode, Json<ThreadSummary>)> {
    access.resource(&new.thread_id);
    if !is_thread_id(&new.thread_id) {
        return Err(Error::InvalidRequest(
            "`thread_id` must be the MLS group id as 32 lower-case hex digits".to_owned(),
        ));
    }
    if new.devices.is_empty() {
        return Err(Error::InvalidRequest(
            "`devices` is empty: a thread needs at least one other member device".to_owned(),
        ));
    }
    check_devices(&new.devices, "devices")?;
    if new.devices.contains(&caller.device_id) {
        return Err(Error::InvalidRequest(
            "`devices` names your own device, which is the thread's creator".to_owned(),
        ));
    }
    check_size(&state, "welcome", &new.welcome)?;
    limit_writes(&state, &caller)?;
    // Far above what a person starts in a day, and far below what it takes
    // to bury a colleague's real threads under junk ones.
    state
        .auth
        .limits
        .check(Limit::ThreadCreatesPerUser, &caller.user_id)?;
    let epoch = to_i64(new.epoch)?;
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    thread::create(&mut *tx, &new.thread_id, &caller.user_id, now, epoch)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => Error::Conflict(
                "a thread with this id exists; make a new MLS group with a fresh random id"
                    .to_owned(),
            ),
            _ => Error::from(error),
        })?;
    thread_member::add_creator(&mut *tx, &new.thread_id, &caller.device_id, &caller.user_id)
        .await?;
    let mut welcome_ids = Vec::with_capacity(new.devices.len());
    for device in &new.devices {
        welcome_ids
            .push(add_member(&mut tx, &new.thread_id, device, 0, epoch, &new.welcome, now).await?);
    }
    access.commit(&state, tx).await?;
    announce_welcomes(&state, &new.devices, welcome_ids);
    Ok((
        StatusCode::CREATED,
        Json(ThreadSummary {
            thread_id: new.thread_id,
            epoch: new.epoch,
            last_seq: 0,
            unread: 0,
            lifespan_s: None,
        }),
    ))
}

fn summary(row: SummaryRow) -> ThreadSummary {
    ThreadSummary {
        thread_id: row.thread_id,
        epoch: to_u64(row.epoch),
        last_seq: to_u64(row.last_seq),
        unread: to_u64(row.unread),
        lifespan_s: row.lifespan_ms.and_then(|ms| u64::try_from(ms / 1000).ok()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// A place in the thread list (most recently active first): the last
/// activity and the thread id of the last thread of a page, as
/// `MS.THREAD_ID`.
fn list_cursor(last_activity_ms: i64, thread_id: &str) -> String {
    format!("{last_activity_ms}.{thread_id}")
}

fn parse_list_cursor(text: &str) -> Result<(i64, String)> {
    text.split_once('.')
        .and_then(|(ms, thread_id)| Some((ms.parse().ok()?, thread_id)))
        .filter(|(_, thread_id)| is_thread_id(thread_id))
        .map(|(ms, thread_id)| (ms, thread_id.to_owned()))
        .ok_or_else(|| {
            Error::InvalidRequest(
                "`after` is not a cursor from this list; pass the `next` of the page before"
                    .to_owned(),
            )
        })
}

/// `GET /v1/threads?after=CURSOR&limit=N`: a page of the caller's device's
/// threads, most recently active first, and where the next one starts.
#[utoipa::path(
    get,
    path = THREADS_PATH,
    operation_id = "thread.list",
    tag = "thread",
    params(ListQuery),
    security(("session" = [])),
    responses((status = 200, description = "The device's threads, most recently active first", body = ThreadList)),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<ThreadList>> {
    let limit = query.limit.unwrap_or(DEFAULT_THREADS_PAGE);
    if !(1..=MAX_THREADS_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "`limit` must be from 1 to {MAX_THREADS_PAGE}"
        )));
    }
    let (before_ms, after_id) = match &query.after {
        Some(cursor) => parse_list_cursor(cursor)?,
        None => (i64::MAX, String::new()),
    };
    let rows = thread::summaries_for_device(
        state.database.pool(),
        &caller.device_id,
        &caller.user_id,
        before_ms,
        &after_id,
        i64::from(limit) + 1,
    )
    .await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let mut threads = Vec::with_capacity(rows.len());
    let mut next = None;
    for row in rows.into_iter().take(limit) {
        next = more.then(|| list_cursor(row.last_activity_ms, &row.thread_id));
        threads.push(summary(row));
    }
    Ok(Json(ThreadList { threads, next }))
}

/// `POST /v1/threads/{id}/leave`: the caller's user leaves the thread, on
/// all their devices. The server gives them nothing more of it at once;
/// their devices stay in the MLS group until another member's commit
/// removes them (which the server accepts for former members).
#[utoipa::path(
    post,
    path = routes::THREAD_LEAVE,
    operation_id = "thread.leave",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    security(("session" = [])),
    responses((status = 204, description = "The caller's devices have left the thread")),
)]
pub(super) async fn leave(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> Result<StatusCode> {
    membership(&state, &access, &caller, &thread_id).await?;
    let mut tx = state.database.pool().begin().await?;
    thread_member::end_memberships(
        &mut tx,
        Leaving::UserInThread {
            user_id: &caller.user_id,
            thread_id: &thread_id,
        },
        &caller.user_id,
        now_ms(),
    )
    .await?;
    access.commit(&state, tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = routes::THREAD,
    operation_id = "thread.read",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    security(("session" = [])),
    responses((status = 200, description = "The thread, its members and receipts", body = ThreadDetail)),
)]
pub(super) async fn detail(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> Result<Json<ThreadDetail>> {
    membership(&state, &access, &caller, &thread_id).await?;
    let pool = state.database.pool();
    let row = thread::summary_for_device(pool, &caller.device_id, &caller.user_id, &thread_id)
        .await?
        .ok_or_else(|| hidden(&access))?;
    let members = thread_member::current_members(pool, &thread_id).await?;
    let read = read_receipt::of_current_members(pool, &thread_id).await?;
    let urgent = super::urgent::statuses(&state, &thread_id).await?;
    Ok(Json(ThreadDetail {
        urgent,
        summary: summary(row),
        members: members
            .into_iter()
            .map(|member| Member {
                user_id: member.user_id,
                device_id: member.device_id,
                delivered_seq: to_u64(member.delivered_seq),
            })
            .collect(),
        read: read
            .into_iter()
            .map(|receipt| ReadReceipt {
                user_id: receipt.user_id,
                read_seq: to_u64(receipt.read_seq),
            })
            .collect(),
    }))
}
