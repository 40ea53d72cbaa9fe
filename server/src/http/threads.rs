//! Threads: the MLS delivery service. The server orders each thread's log,
//! keeps its members, and queues welcomes; it never sees a key or a
//! plaintext (every MLS object is opaque here).
//!
//! A commit is accepted only for the thread's current epoch: one
//! compare-and-swap `UPDATE` on the thread row moves the epoch and takes the
//! next sequence number, so of two commits made at the same epoch exactly
//! one wins and the other gets 409. The same statement checks that the
//! sender is still a member, so a device removed a moment ago cannot slip a
//! message in. Anyone who is not a current member gets 404, as if the
//! thread did not exist, and the attempt is audited as denied.
//!
//! SQLite cannot turn a reading transaction into a writing one while
//! another connection writes, so every transaction here writes first.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use curbside_proto::routes;
use curbside_proto::threads::{
    Appended, Blob, CommitRequest, DEFAULT_THREADS_PAGE, EndReason, EntryPage, MAX_ENTRIES_PAGE,
    MAX_THREAD_DEVICES, MAX_THREADS_PAGE, Member, MembershipChange, MembershipEnded,
    MessageRequest, NewThread, ReadReceipt, Receipt, ReceiptKind, THREADS_PATH, ThreadDetail,
    ThreadList, ThreadSummary, WELCOMES_PATH, Welcome, WelcomeList, is_thread_id,
};
use serde::Deserialize;
use sqlx::{Any, AnyConnection, Transaction};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use super::state::AppState;
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::message_batch::NewMessage;
use crate::db::thread::SummaryRow;
use crate::db::thread_entry::{self, EntryRow, NewCommit};
use crate::db::thread_member::{self, Leaving};
use crate::db::welcome::{self, NewWelcome};
use crate::db::{read_receipt, thread};
use crate::ids::new_id;
use crate::push::Notice;

/// `/v1/threads/...` and `/v1/welcomes/...`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(detail))
        .routes(routes!(commit))
        .routes(routes!(message))
        .routes(routes!(entries))
        .routes(routes!(delivered))
        .routes(routes!(read))
        .routes(routes!(leave))
        .routes(routes!(welcomes))
        .routes(routes!(ack_welcome))
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::InvalidRequest("a number is out of range".to_owned()))
}

fn check_size(state: &AppState, name: &str, blob: &Blob) -> Result<()> {
    if blob.0.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "`{name}` is empty; send the serialized MLS message"
        )));
    }
    if blob.0.len() > state.max_message_bytes {
        return Err(Error::MessageTooLarge {
            limit: state.max_message_bytes,
        });
    }
    Ok(())
}

/// Refuses a user writing to threads faster than any person could.
fn limit_writes(state: &AppState, caller: &Caller) -> Result<()> {
    state
        .auth
        .limits
        .check(Limit::ThreadWritesPerUser, &caller.user_id)?;
    Ok(())
}

/// The thread no one may know of: 404, audited with why.
fn hidden(access: &Access) -> Error {
    access.reason("not_a_member");
    Error::NotFound
}

/// The current membership of the caller's device: the sequence it joined
/// at. Anyone else gets 404.
async fn membership(
    state: &AppState,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
) -> Result<i64> {
    joined_seq(state.database.pool(), access, caller, thread_id).await
}

async fn joined_seq<'c, E>(
    executor: E,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
) -> Result<i64>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if !is_thread_id(thread_id) {
        return Err(Error::NotFound);
    }
    thread_member::joined_seq(executor, thread_id, &caller.device_id)
        .await?
        .ok_or_else(|| hidden(access))
}

fn check_devices(devices: &[String], field: &str) -> Result<()> {
    if devices.len() > MAX_THREAD_DEVICES {
        return Err(Error::InvalidRequest(format!(
            "`{field}` names more than {MAX_THREAD_DEVICES} devices"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for device in devices {
        if !seen.insert(device) {
            return Err(Error::InvalidRequest(format!(
                "`{field}` names a device twice"
            )));
        }
    }
    Ok(())
}

/// Adds `device_id` to the thread as of `seq`, with `welcome` queued for
/// it; returns the welcome's id.
async fn add_member(
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
fn announce_welcomes(state: &AppState, devices: &[String], welcome_ids: Vec<String>) {
    for (device_id, welcome_id) in devices.iter().zip(welcome_ids) {
        state.events.announce(Notice::Welcome {
            device_id: device_id.clone(),
            welcome_id,
        });
    }
}

#[utoipa::path(
    post,
    path = THREADS_PATH,
    operation_id = "thread.create",
    tag = "thread",
    request_body = NewThread,
    security(("session" = [])),
    responses((status = 201, description = "The thread, made", body = ThreadSummary)),
)]
async fn create(
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
        }),
    ))
}

fn summary(row: SummaryRow) -> ThreadSummary {
    ThreadSummary {
        thread_id: row.thread_id,
        epoch: to_u64(row.epoch),
        last_seq: to_u64(row.last_seq),
        unread: to_u64(row.unread),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
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
async fn list(
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
async fn leave(
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
async fn detail(
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
    Ok(Json(ThreadDetail {
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

/// Moves the thread on by one entry if it is at `epoch` and the caller's
/// device is a member, in `tx`'s first statement; returns the entry's
/// sequence number. `next_epoch` is the epoch after it. Otherwise says
/// why: 404 for a non-member, 409 for a stale epoch.
async fn advance(
    access: &Access,
    caller: &Caller,
    tx: &mut Transaction<'_, Any>,
    thread_id: &str,
    epoch: i64,
    next_epoch: i64,
) -> Result<i64> {
    let seq = thread::advance_epoch(
        &mut **tx,
        thread_id,
        epoch,
        next_epoch,
        now_ms(),
        &caller.device_id,
    )
    .await?;
    match seq {
        Some(seq) => Ok(seq),
        // Why not, read in this transaction (a second pooled connection
        // here could wait for ever when every connection is a loser doing
        // the same).
        None => Err(refusal(tx, access, caller, thread_id, epoch).await),
    }
}

/// Why the caller's device could not append to the thread at `epoch`: 404
/// if it is not a member, else 409 for a stale epoch.
async fn refusal(
    connection: &mut AnyConnection,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
    epoch: i64,
) -> Error {
    if let Err(error) = joined_seq(&mut *connection, access, caller, thread_id).await {
        return error;
    }
    let current = match thread::current_epoch(&mut *connection, thread_id).await {
        Ok(current) => current,
        Err(error) => return error.into(),
    };
    access.reason("stale_epoch");
    Error::Conflict(format!(
        "the thread is at epoch {current}, not {epoch}: fetch and process its new entries, \
         then make this again"
    ))
}

/// Appends a commit to the thread's log (messages are appended in the
/// audit writer's batches, see `crate::db::message_batch`).
async fn insert_commit(
    tx: &mut Transaction<'_, Any>,
    thread_id: &str,
    seq: i64,
    epoch: i64,
    caller: &Caller,
    body: &Blob,
    change: &MembershipChange,
) -> Result<()> {
    thread_entry::insert_commit(
        &mut **tx,
        NewCommit {
            thread_id,
            seq,
            epoch,
            sender_user: &caller.user_id,
            sender_device: &caller.device_id,
            created_at_ms: now_ms(),
            body: &body.0,
            add: &change.add,
            remove: &change.remove,
        },
    )
    .await?;
    Ok(())
}

#[utoipa::path(
    post,
    path = routes::THREAD_COMMITS,
    operation_id = "thread.commit",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = CommitRequest,
    security(("session" = [])),
    responses((status = 200, description = "The commit, appended", body = Appended)),
)]
async fn commit(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(request): extract::Json<CommitRequest>,
) -> Result<Json<Appended>> {
    membership(&state, &access, &caller, &thread_id).await?;
    check_size(&state, "commit", &request.commit)?;
    limit_writes(&state, &caller)?;
    let change = &request.change;
    check_devices(&change.add, "change.add")?;
    check_devices(&change.remove, "change.remove")?;
    if change.remove.contains(&caller.device_id) {
        return Err(Error::InvalidRequest(
            "a commit cannot remove its own sender (MLS forbids it); ask another member to \
             remove this device"
                .to_owned(),
        ));
    }
    if change
        .add
        .iter()
        .any(|device| change.remove.contains(device))
    {
        return Err(Error::InvalidRequest(
            "`change` both adds and removes the same device".to_owned(),
        ));
    }
    let welcome = match (&request.welcome, change.add.is_empty()) {
        (Some(welcome), false) => {
            check_size(&state, "welcome", welcome)?;
            Some(welcome)
        }
        (None, false) => {
            return Err(Error::InvalidRequest(
                "the commit adds devices: send their MLS Welcome in `welcome`".to_owned(),
            ));
        }
        (Some(_), true) => {
            return Err(Error::InvalidRequest(
                "`welcome` given, but `change.add` is empty: declare the devices the commit adds"
                    .to_owned(),
            ));
        }
        (None, true) => None,
    };
    let epoch = to_i64(request.epoch)?;
    let next_epoch = epoch
        .checked_add(1)
        .ok_or_else(|| Error::InvalidRequest("`epoch` is out of range".to_owned()))?;
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    let seq = advance(&access, &caller, &mut tx, &thread_id, epoch, next_epoch).await?;
    insert_commit(
        &mut tx,
        &thread_id,
        seq,
        epoch,
        &caller,
        &request.commit,
        change,
    )
    .await?;
    for device in &change.remove {
        let removed =
            thread_member::remove_member(&mut *tx, &thread_id, device, seq, &caller.user_id, now)
                .await?;
        if !removed {
            // A device that left the thread when its user was deactivated
            // or it was removed is still in the MLS group until a commit
            // removes it: that is allowed, and changes nothing here.
            if !thread_member::was_ever_member(&mut *tx, &thread_id, device).await? {
                return Err(Error::InvalidRequest(format!(
                    "`change.remove` names device {device}, which is not a member"
                )));
            }
        }
        welcome::withdraw(&mut *tx, &thread_id, device).await?;
    }
    let mut welcome_ids = Vec::with_capacity(change.add.len());
    if let Some(welcome) = welcome {
        for device in &change.add {
            welcome_ids.push(
                add_member(&mut tx, &thread_id, device, seq, next_epoch, welcome, now).await?,
            );
        }
    }
    let members = thread_member::count_current(&mut *tx, &thread_id).await?;
    if members > i64::try_from(MAX_THREAD_DEVICES).unwrap_or(i64::MAX) {
        return Err(Error::InvalidRequest(format!(
            "a thread may have at most {MAX_THREAD_DEVICES} member devices"
        )));
    }
    access.commit(&state, tx).await?;
    state.events.announce(Notice::Entry {
        thread_id: thread_id.clone(),
        seq,
    });
    announce_welcomes(&state, &change.add, welcome_ids);
    Ok(Json(Appended {
        seq: to_u64(seq),
        epoch: to_u64(next_epoch),
    }))
}

#[utoipa::path(
    post,
    path = routes::THREAD_MESSAGES,
    operation_id = "thread.message.send",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = MessageRequest,
    security(("session" = [])),
    responses((status = 200, description = "The message, appended", body = Appended)),
)]
async fn message(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(request): extract::Json<MessageRequest>,
) -> Result<Json<Appended>> {
    // Membership is checked by the append itself (and why it was refused
    // only if it was): no read before the write. A request refused before
    // that still answers a non-member 404, as every thread route does.
    if !is_thread_id(&thread_id) {
        return Err(Error::NotFound);
    }
    let checked = check_size(&state, "ciphertext", &request.ciphertext)
        .and_then(|()| limit_writes(&state, &caller))
        .and_then(|()| to_i64(request.epoch));
    let epoch = match checked {
        Ok(epoch) => epoch,
        Err(error) => {
            membership(&state, &access, &caller, &thread_id).await?;
            return Err(error);
        }
    };
    let message = NewMessage {
        thread_id: thread_id.clone(),
        epoch,
        user_id: caller.user_id.clone(),
        device_id: caller.device_id.clone(),
        ciphertext: request.ciphertext.0,
    };
    let Some(seq) = access.append_message(&state, message).await? else {
        let mut connection = state.database.pool().acquire().await?;
        return Err(refusal(&mut connection, &access, &caller, &thread_id, epoch).await);
    };
    // Pushed and announced by the audit writer, with its commit.
    Ok(Json(Appended {
        seq: to_u64(seq),
        epoch: request.epoch,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

/// What the caller's device may read of a thread: from the commit that
/// added it, and, if its membership ended, up to where it ended.
struct Readable {
    joined_seq: i64,
    ended: Option<MembershipEnded>,
}

/// The caller's device's membership of `thread_id`, current or ended (a
/// former member reads the log up to where it left, and learns how it
/// ended); anyone who never was a member gets 404.
async fn readable(
    state: &AppState,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
) -> Result<Readable> {
    if !is_thread_id(thread_id) {
        return Err(Error::NotFound);
    }
    let row =
        thread_member::membership(state.database.pool(), thread_id, &caller.device_id).await?;
    let Some(row) = row else {
        return Err(hidden(access));
    };
    let ended = row.removed_seq.map(|seq| MembershipEnded {
        seq: to_u64(seq),
        at_ms: row.removed_at_ms.unwrap_or(0),
        by_user: row.removed_by,
        // Ended before reasons were recorded: by a commit or a removal
        // the server cannot tell apart now.
        reason: row
            .removed_reason
            .as_deref()
            .and_then(EndReason::parse)
            .unwrap_or(EndReason::Removed),
    });
    Ok(Readable {
        joined_seq: row.joined_seq,
        ended,
    })
}

#[utoipa::path(
    get,
    path = routes::THREAD_ENTRIES,
    operation_id = "thread.entries.read",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id"), EntriesQuery),
    security(("session" = [])),
    responses((status = 200, description = "The thread's log, a page at a time", body = EntryPage)),
)]
async fn entries(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    Query(query): Query<EntriesQuery>,
) -> Result<Json<EntryPage>> {
    let readable = readable(&state, &access, &caller, &thread_id).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_ENTRIES_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "`limit` must be from 1 to {MAX_ENTRIES_PAGE}"
        )));
    }
    // A device reads from the commit that added it on, and a former member
    // up to where it left: nothing before, nothing after.
    let after = to_i64(query.after)?.max(readable.joined_seq);
    let through = readable.ended.as_ref().map_or(i64::MAX, |ended| {
        i64::try_from(ended.seq).unwrap_or(i64::MAX)
    });
    let pool = state.database.pool();
    let rows = thread_entry::page(pool, &thread_id, after, through, i64::from(limit)).await?;
    let last_seq = thread::last_seq(pool, &thread_id).await?;
    let entries = rows.into_iter().map(EntryRow::into_entry).collect();
    Ok(Json(EntryPage {
        entries,
        last_seq: to_u64(last_seq.min(through)),
        ended: readable.ended,
    }))
}

#[utoipa::path(
    post,
    path = routes::THREAD_DELIVERED,
    operation_id = "thread.receipt.delivered",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = Receipt,
    security(("session" = [])),
    responses((status = 204, description = "Recorded")),
)]
async fn delivered(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(receipt): extract::Json<Receipt>,
) -> Result<StatusCode> {
    record_receipt(
        &state,
        &access,
        caller,
        thread_id,
        receipt,
        ReceiptKind::Delivered,
    )
    .await
}

#[utoipa::path(
    post,
    path = routes::THREAD_READ,
    operation_id = "thread.receipt.read",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = Receipt,
    security(("session" = [])),
    responses((status = 204, description = "Recorded")),
)]
async fn read(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(receipt): extract::Json<Receipt>,
) -> Result<StatusCode> {
    record_receipt(
        &state,
        &access,
        caller,
        thread_id,
        receipt,
        ReceiptKind::Read,
    )
    .await
}

/// Moves the caller's device's delivery receipt or user's read receipt
/// forward (never back), and announces it if it moved.
async fn record_receipt(
    state: &AppState,
    access: &Access,
    caller: Caller,
    thread_id: String,
    receipt: Receipt,
    kind: ReceiptKind,
) -> Result<StatusCode> {
    membership(state, access, &caller, &thread_id).await?;
    let seq = to_i64(receipt.seq)?;
    // The write comes first (SQLite); one past the log is undone with the
    // transaction.
    let mut tx = state.database.pool().begin().await?;
    let moved = match kind {
        ReceiptKind::Delivered => {
            thread_member::advance_delivered(&mut *tx, &thread_id, &caller.device_id, seq).await?
        }
        ReceiptKind::Read => {
            read_receipt::advance(&mut *tx, &thread_id, &caller.user_id, seq).await?
        }
    };
    check_receipt(&mut tx, &thread_id, seq).await?;
    access.commit(state, tx).await?;
    if moved {
        state.events.announce(Notice::Receipt {
            thread_id,
            kind,
            user_id: caller.user_id,
            device_id: caller.device_id,
            seq,
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses a receipt past the thread's last entry.
async fn check_receipt(tx: &mut Transaction<'_, Any>, thread_id: &str, seq: i64) -> Result<()> {
    let last_seq = thread::last_seq(&mut **tx, thread_id).await?;
    if seq > last_seq {
        return Err(Error::InvalidRequest(format!(
            "`seq` {seq} is past the thread's last entry ({last_seq})"
        )));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = WELCOMES_PATH,
    operation_id = "welcome.list",
    tag = "device",
    security(("session" = [])),
    responses((status = 200, description = "Welcomes waiting for the device", body = WelcomeList)),
)]
async fn welcomes(
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
async fn ack_welcome(
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
