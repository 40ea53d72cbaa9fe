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

use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use curbside_proto::threads::{
    Appended, Blob, CommitRequest, DEFAULT_THREADS_PAGE, EndReason, EntryPage, MAX_ENTRIES_PAGE,
    MAX_THREAD_DEVICES, MAX_THREADS_PAGE, Member, MembershipChange, MembershipEnded,
    MessageRequest, NewThread, ReadReceipt, Receipt, ReceiptKind, THREADS_PATH, ThreadDetail,
    ThreadList, ThreadSummary, WELCOMES_PATH, Welcome, WelcomeList, is_thread_id,
};
use serde::Deserialize;
use sqlx::{Any, AnyConnection, Transaction};

use super::AppState;
use super::access::Access;
use super::error::{Error, Result};
use super::extract;
use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::membership::{self, Leaving};
use crate::db::thread_entry::{self, EntryRow};
use crate::events::Notice;
use crate::ids::new_id;
use crate::messages::NewMessage;

/// `/v1/threads/...` and `/v1/welcomes/...`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(THREADS_PATH, post(create).get(list))
        .route("/v1/threads/{thread_id}", get(detail))
        .route("/v1/threads/{thread_id}/commits", post(commit))
        .route("/v1/threads/{thread_id}/messages", post(message))
        .route("/v1/threads/{thread_id}/entries", get(entries))
        .route("/v1/threads/{thread_id}/delivered", post(delivered))
        .route("/v1/threads/{thread_id}/read", post(read))
        .route("/v1/threads/{thread_id}/leave", post(leave))
        .route(WELCOMES_PATH, get(welcomes))
        .route("/v1/welcomes/{welcome_id}/ack", post(ack_welcome))
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

/// The condition that `$DEVICE` is a current member of `$THREAD` (both
/// placeholders), as an enrolled device of an active user.
const IS_MEMBER: &str = "EXISTS (SELECT 1 FROM thread_member m \
     JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
     WHERE m.thread_id = $THREAD AND m.device_id = $DEVICE AND m.removed_seq IS NULL \
       AND d.removed_at_ms IS NULL AND u.status = 'active')";

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
    let joined: Option<i64> = sqlx::query_scalar(
        "SELECT m.joined_seq FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id = $1 AND m.device_id = $2 AND m.removed_seq IS NULL \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(thread_id)
    .bind(&caller.device_id)
    .fetch_optional(executor)
    .await?;
    joined.ok_or_else(|| hidden(access))
}

/// `device_id`'s user, if it is an enrolled device of an active user.
async fn active_device(tx: &mut Transaction<'_, Any>, device_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT d.user_id FROM device d JOIN app_user u ON u.user_id = d.user_id \
         WHERE d.device_id = $1 AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(device_id)
    .fetch_optional(&mut **tx)
    .await?)
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
    let user_id = active_device(tx, device_id).await?.ok_or_else(|| {
        Error::InvalidRequest(format!(
            "device {device_id} is not an enrolled device of an active user; claim key \
             packages again and rebuild the commit"
        ))
    })?;
    let added = sqlx::query(
        "INSERT INTO thread_member (thread_id, device_id, user_id, joined_seq, removed_seq, \
         delivered_seq) VALUES ($1, $2, $3, $4, NULL, $4) \
         ON CONFLICT (thread_id, device_id) DO UPDATE SET joined_seq = excluded.joined_seq, \
         removed_seq = NULL, delivered_seq = excluded.delivered_seq, removed_by = NULL, \
         removed_at_ms = NULL, removed_reason = NULL \
         WHERE thread_member.removed_seq IS NOT NULL",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(&user_id)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    if added.rows_affected() != 1 {
        // Not 409: that tells clients to catch up and retry, which would
        // not help.
        return Err(Error::InvalidRequest(format!(
            "device {device_id} is already a member of this thread; do not add it again"
        )));
    }
    let welcome_id = new_id()?;
    sqlx::query(
        "INSERT INTO welcome (welcome_id, device_id, thread_id, epoch, joined_seq, welcome, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&welcome_id)
    .bind(device_id)
    .bind(thread_id)
    .bind(epoch)
    .bind(seq)
    .bind(&welcome.0)
    .bind(now)
    .execute(&mut **tx)
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
    sqlx::query(
        "INSERT INTO thread (thread_id, created_by, created_at_ms, epoch, last_seq, \
         last_activity_ms) VALUES ($1, $2, $3, $4, 0, $3)",
    )
    .bind(&new.thread_id)
    .bind(&caller.user_id)
    .bind(now)
    .bind(epoch)
    .execute(&mut *tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => Error::Conflict(
            "a thread with this id exists; make a new MLS group with a fresh random id".to_owned(),
        ),
        _ => Error::from(error),
    })?;
    sqlx::query(
        "INSERT INTO thread_member (thread_id, device_id, user_id, joined_seq, removed_seq, \
         delivered_seq) VALUES ($1, $2, $3, 0, NULL, 0)",
    )
    .bind(&new.thread_id)
    .bind(&caller.device_id)
    .bind(&caller.user_id)
    .execute(&mut *tx)
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

/// Thread id, epoch, last sequence, unread count.
type SummaryRow = (String, i64, i64, i64);

const SUMMARY_SQL: &str = "SELECT t.thread_id, t.epoch, t.last_seq, \
     (SELECT COUNT(*) FROM thread_entry e WHERE e.thread_id = t.thread_id \
        AND e.kind = 'application' AND e.sender_user <> $2 AND e.seq > m.joined_seq \
        AND e.seq > COALESCE((SELECT r.read_seq FROM read_receipt r \
                              WHERE r.thread_id = t.thread_id AND r.user_id = $2), 0)), \
     t.last_activity_ms \
     FROM thread t JOIN thread_member m ON m.thread_id = t.thread_id \
     WHERE m.device_id = $1 AND m.removed_seq IS NULL";

fn summary((thread_id, epoch, last_seq, unread): SummaryRow) -> ThreadSummary {
    ThreadSummary {
        thread_id,
        epoch: to_u64(epoch),
        last_seq: to_u64(last_seq),
        unread: to_u64(unread),
    }
}

#[derive(Debug, Deserialize)]
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
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "{SUMMARY_SQL} AND (t.last_activity_ms < $3 OR (t.last_activity_ms = $3 AND t.thread_id > $4)) \
         ORDER BY t.last_activity_ms DESC, t.thread_id LIMIT $5"
    ))
    .bind(&caller.device_id)
    .bind(&caller.user_id)
    .bind(before_ms)
    .bind(&after_id)
    .bind(i64::from(limit) + 1)
    .fetch_all(state.database.pool())
    .await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let mut threads = Vec::with_capacity(rows.len());
    let mut next = None;
    for (thread_id, epoch, last_seq, unread, last_activity_ms) in rows.into_iter().take(limit) {
        next = more.then(|| list_cursor(last_activity_ms, &thread_id));
        threads.push(summary((thread_id, epoch, last_seq, unread)));
    }
    Ok(Json(ThreadList { threads, next }))
}

/// `POST /v1/threads/{id}/leave`: the caller's user leaves the thread, on
/// all their devices. The server gives them nothing more of it at once;
/// their devices stay in the MLS group until another member's commit
/// removes them (which the server accepts for former members).
async fn leave(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> Result<StatusCode> {
    membership(&state, &access, &caller, &thread_id).await?;
    let mut tx = state.database.pool().begin().await?;
    membership::end(
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

async fn detail(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> Result<Json<ThreadDetail>> {
    membership(&state, &access, &caller, &thread_id).await?;
    let pool = state.database.pool();
    let (thread_id_row, epoch, last_seq, unread, _): (String, i64, i64, i64, i64) =
        sqlx::query_as(&format!("{SUMMARY_SQL} AND t.thread_id = $3"))
            .bind(&caller.device_id)
            .bind(&caller.user_id)
            .bind(&thread_id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| hidden(&access))?;
    let row = (thread_id_row, epoch, last_seq, unread);
    let members: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT m.user_id, m.device_id, m.delivered_seq FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id = $1 AND m.removed_seq IS NULL AND d.removed_at_ms IS NULL \
           AND u.status = 'active' ORDER BY m.user_id, m.device_id",
    )
    .bind(&thread_id)
    .fetch_all(pool)
    .await?;
    let read: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r.user_id, r.read_seq FROM read_receipt r WHERE r.thread_id = $1 \
         AND EXISTS (SELECT 1 FROM thread_member m JOIN app_user u ON u.user_id = m.user_id \
                     WHERE m.thread_id = r.thread_id AND m.user_id = r.user_id \
                       AND m.removed_seq IS NULL AND u.status = 'active') \
         ORDER BY r.user_id",
    )
    .bind(&thread_id)
    .fetch_all(pool)
    .await?;
    Ok(Json(ThreadDetail {
        summary: summary(row),
        members: members
            .into_iter()
            .map(|(user_id, device_id, delivered)| Member {
                user_id,
                device_id,
                delivered_seq: to_u64(delivered),
            })
            .collect(),
        read: read
            .into_iter()
            .map(|(user_id, read_seq)| ReadReceipt {
                user_id,
                read_seq: to_u64(read_seq),
            })
            .collect(),
    }))
}

/// The compare-and-swap that moves thread `$1` on by one entry if it is
/// at epoch `$2` and device `$5` is a member: to epoch `$3`, with activity
/// at `$4`. Returns the entry's sequence number, or no row.
static ADVANCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE thread SET epoch = $3, last_seq = last_seq + 1, last_activity_ms = $4 \
         WHERE thread_id = $1 AND epoch = $2 AND {} RETURNING last_seq",
        IS_MEMBER.replace("$THREAD", "$1").replace("$DEVICE", "$5")
    )
});

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
    let seq: Option<i64> = sqlx::query_scalar(&ADVANCE)
        .bind(thread_id)
        .bind(epoch)
        .bind(next_epoch)
        .bind(now_ms())
        .bind(&caller.device_id)
        .fetch_optional(&mut **tx)
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
    let current: i64 = match sqlx::query_scalar("SELECT epoch FROM thread WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_one(&mut *connection)
        .await
    {
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
/// audit writer's batches, see `crate::messages`).
async fn insert_commit(
    tx: &mut Transaction<'_, Any>,
    thread_id: &str,
    seq: i64,
    epoch: i64,
    caller: &Caller,
    body: &Blob,
    change: &MembershipChange,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
         created_at_ms, body, added, removed) \
         VALUES ($1, $2, 'commit', $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(thread_id)
    .bind(seq)
    .bind(epoch)
    .bind(&caller.user_id)
    .bind(&caller.device_id)
    .bind(now_ms())
    .bind(&body.0)
    .bind(change.add.join(" "))
    .bind(change.remove.join(" "))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

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
        let removed = sqlx::query(
            "UPDATE thread_member SET removed_seq = $3, removed_by = $4, removed_at_ms = $5, \
             removed_reason = 'removed' \
             WHERE thread_id = $1 AND device_id = $2 AND removed_seq IS NULL",
        )
        .bind(&thread_id)
        .bind(device)
        .bind(seq)
        .bind(&caller.user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if removed.rows_affected() != 1 {
            // A device that left the thread when its user was deactivated
            // or it was removed is still in the MLS group until a commit
            // removes it: that is allowed, and changes nothing here.
            let ever: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM thread_member WHERE thread_id = $1 AND device_id = $2",
            )
            .bind(&thread_id)
            .bind(device)
            .fetch_one(&mut *tx)
            .await?;
            if ever == 0 {
                return Err(Error::InvalidRequest(format!(
                    "`change.remove` names device {device}, which is not a member"
                )));
            }
        }
        sqlx::query("DELETE FROM welcome WHERE thread_id = $1 AND device_id = $2")
            .bind(&thread_id)
            .bind(device)
            .execute(&mut *tx)
            .await?;
    }
    let mut welcome_ids = Vec::with_capacity(change.add.len());
    if let Some(welcome) = welcome {
        for device in &change.add {
            welcome_ids.push(
                add_member(&mut tx, &thread_id, device, seq, next_epoch, welcome, now).await?,
            );
        }
    }
    let members: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM thread_member WHERE thread_id = $1 AND removed_seq IS NULL",
    )
    .bind(&thread_id)
    .fetch_one(&mut *tx)
    .await?;
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

#[derive(Debug, Deserialize)]
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
    type Row = (
        i64,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        // Ended before the time was recorded (0007): the time of the entry
        // it ended at.
        "SELECT m.joined_seq, m.removed_seq, m.removed_by, \
           COALESCE(m.removed_at_ms, (SELECT e.created_at_ms FROM thread_entry e \
             WHERE e.thread_id = m.thread_id AND e.seq = m.removed_seq)), \
           m.removed_reason \
         FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id = $1 AND m.device_id = $2 \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(thread_id)
    .bind(&caller.device_id)
    .fetch_optional(state.database.pool())
    .await?;
    let Some((joined_seq, removed_seq, by_user, at_ms, reason)) = row else {
        return Err(hidden(access));
    };
    let ended = removed_seq.map(|seq| MembershipEnded {
        seq: to_u64(seq),
        at_ms: at_ms.unwrap_or(0),
        by_user,
        // Ended before reasons were recorded: by a commit or a removal
        // the server cannot tell apart now.
        reason: reason
            .as_deref()
            .and_then(EndReason::parse)
            .unwrap_or(EndReason::Removed),
    });
    Ok(Readable { joined_seq, ended })
}

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
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM thread WHERE thread_id = $1")
        .bind(&thread_id)
        .fetch_one(pool)
        .await?;
    let entries = rows.into_iter().map(EntryRow::into_entry).collect();
    Ok(Json(EntryPage {
        entries,
        last_seq: to_u64(last_seq.min(through)),
        ended: readable.ended,
    }))
}

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
    let (sql, whose) = match kind {
        ReceiptKind::Delivered => (
            "UPDATE thread_member SET delivered_seq = $3 \
             WHERE thread_id = $1 AND device_id = $2 AND removed_seq IS NULL \
               AND delivered_seq < $3",
            &caller.device_id,
        ),
        ReceiptKind::Read => (
            "INSERT INTO read_receipt (thread_id, user_id, read_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (thread_id, user_id) DO UPDATE SET read_seq = excluded.read_seq \
             WHERE read_receipt.read_seq < excluded.read_seq",
            &caller.user_id,
        ),
    };
    // The write comes first (SQLite); one past the log is undone with the
    // transaction.
    let mut tx = state.database.pool().begin().await?;
    let moved = sqlx::query(sql)
        .bind(&thread_id)
        .bind(whose)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    check_receipt(&mut tx, &thread_id, seq).await?;
    access.commit(state, tx).await?;
    if moved.rows_affected() == 1 {
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
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM thread WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_one(&mut **tx)
        .await?;
    if seq > last_seq {
        return Err(Error::InvalidRequest(format!(
            "`seq` {seq} is past the thread's last entry ({last_seq})"
        )));
    }
    Ok(())
}

async fn welcomes(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<Json<WelcomeList>> {
    access.resource(&caller.device_id);
    // Only welcomes to threads the device is still a member of: one whose
    // membership ended (a removal, a deactivation, leaving) is withdrawn.
    let rows: Vec<(String, String, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT w.welcome_id, w.thread_id, w.epoch, w.joined_seq, w.welcome FROM welcome w \
         JOIN thread_member m ON m.thread_id = w.thread_id AND m.device_id = w.device_id \
         WHERE w.device_id = $1 AND m.removed_seq IS NULL \
         ORDER BY w.created_at_ms, w.welcome_id LIMIT 100",
    )
    .bind(&caller.device_id)
    .fetch_all(state.database.pool())
    .await?;
    Ok(Json(WelcomeList {
        welcomes: rows
            .into_iter()
            .map(
                |(welcome_id, thread_id, epoch, joined_seq, welcome)| Welcome {
                    welcome_id,
                    thread_id,
                    epoch: to_u64(epoch),
                    joined_seq: to_u64(joined_seq),
                    welcome: Blob(welcome),
                },
            )
            .collect(),
    }))
}

async fn ack_welcome(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(welcome_id): Path<String>,
) -> Result<StatusCode> {
    let mut tx = state.database.pool().begin().await?;
    let deleted = sqlx::query("DELETE FROM welcome WHERE welcome_id = $1 AND device_id = $2")
        .bind(&welcome_id)
        .bind(&caller.device_id)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() != 1 {
        return Err(Error::NotFound);
    }
    access.commit(&state, tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
