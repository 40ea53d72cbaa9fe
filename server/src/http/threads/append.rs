//! The log's writes: a commit, which moves the thread's epoch and its
//! membership in one transaction; an application message, appended in the
//! audit writer's batches (or, when it carries attachments, in a
//! transaction of its own that binds them to it); and a recall, which
//! erases a message's ciphertext and attachments and appends an entry
//! naming it. Each is refused with 404 for
//! a non-member; a commit or message with 409 for a stale epoch
//! (`refusal`).

use axum::Json;
use axum::extract::{Path, State};
use curbside_proto::attachment::{MAX_PER_MESSAGE, is_attachment_id};
use curbside_proto::routes;
use curbside_proto::threads::{
    Appended, Blob, CommitRequest, MAX_THREAD_DEVICES, MembershipChange, MessageRequest,
    RecallRequest, is_thread_id,
};
use sqlx::{Any, AnyConnection, Transaction};

use super::checks::{
    check_devices, check_size, joined_seq, limit_writes, membership, to_i64, to_u64,
};
use super::welcomes::{add_member, announce_welcomes};
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::message_batch::NewMessage;
use crate::db::thread_entry::{self, NewCommit, NewRecall};
use crate::db::{attachment, clinical, retention, thread, thread_member, welcome};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::extract;
use crate::http::state::AppState;
use crate::push::Notice;

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
pub(super) async fn commit(
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
        clinical::evicted(&mut *tx, &thread_id, device, seq).await?;
    }
    let mut welcome_ids = Vec::with_capacity(change.add.len());
    if let Some(welcome) = welcome {
        for device in &change.add {
            welcome_ids.push(
                add_member(&mut tx, &thread_id, device, seq, next_epoch, welcome, now).await?,
            );
            clinical::added(&mut *tx, &thread_id, device, seq).await?;
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
pub(super) async fn message(
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
    if !request.attachments.is_empty() || request.urgent {
        return message_alone(
            &state,
            &access,
            &caller,
            message,
            &request.attachments,
            request.urgent,
        )
        .await;
    }
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

/// Appends a message that carries attachments, binding them to it in the
/// same transaction (so that whatever deletes the message deletes them),
/// or an urgent one, recorded for escalation (`super::urgent`) in the same
/// transaction: one at a time, outside the pipeline's batches, which are
/// for the many ordinary messages.
async fn message_alone(
    state: &AppState,
    access: &Access,
    caller: &Caller,
    message: NewMessage,
    attachments: &[String],
    urgent: bool,
) -> Result<Json<Appended>> {
    let thread_id = message.thread_id.as_str();
    if attachments.len() > MAX_PER_MESSAGE {
        membership(state, access, caller, thread_id).await?;
        return Err(Error::InvalidRequest(format!(
            "a message may carry at most {MAX_PER_MESSAGE} attachments"
        )));
    }
    let mut ids: Vec<String> = attachments.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != attachments.len() || !ids.iter().all(|id| is_attachment_id(id)) {
        membership(state, access, caller, thread_id).await?;
        return Err(Error::InvalidRequest(
            "`attachments` must name each attachment once, by the id its upload returned"
                .to_owned(),
        ));
    }
    let mut evidence = Vec::new();
    if urgent {
        evidence.push("urgent".to_owned());
    }
    if !attachments.is_empty() {
        evidence.push(format!("attachments={}", attachments.join(",")));
    }
    access.evidence(evidence.join(" "));
    let now = now_ms();
    // The write comes first (see the module): the same compare-and-swap as
    // a commit's, at the message's epoch, which stays.
    let mut tx = state.database.pool().begin().await?;
    let seq = advance(
        access,
        caller,
        &mut tx,
        thread_id,
        message.epoch,
        message.epoch,
    )
    .await?;
    thread_entry::insert_message(&mut *tx, &message, seq, now, urgent).await?;
    if urgent {
        super::urgent::record(&mut tx, thread_id, seq, &caller.user_id, now).await?;
    }
    let bound =
        attachment::bind_to_message(&mut *tx, thread_id, &caller.user_id, &ids, seq).await?;
    if bound != u64::try_from(ids.len()).unwrap_or(u64::MAX) {
        access.reason("unknown_attachment");
        return Err(Error::InvalidRequest(
            "`attachments` names an attachment that is not a finished upload of yours to this \
             thread, or one already sent: upload the file again and send it with the new id"
                .to_owned(),
        ));
    }
    access.commit(state, tx).await?;
    state.events.announce(Notice::Entry {
        thread_id: thread_id.to_owned(),
        seq,
    });
    Ok(Json(Appended {
        seq: to_u64(seq),
        epoch: to_u64(message.epoch),
    }))
}

#[utoipa::path(
    post,
    path = routes::THREAD_RECALL,
    operation_id = "thread.message.recall",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = RecallRequest,
    security(("session" = [])),
    responses((status = 200, description = "The recall, appended to the log", body = Appended)),
)]
pub(super) async fn recall(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(request): extract::Json<RecallRequest>,
) -> Result<Json<Appended>> {
    membership(&state, &access, &caller, &thread_id).await?;
    limit_writes(&state, &caller)?;
    let target = to_i64(request.seq)?;
    access.evidence(format!("recalls={target}"));
    let now = now_ms();
    // The write comes first (see the module): the log moves on by one
    // entry, at its epoch, if the caller's device is still a member.
    let mut tx = state.database.pool().begin().await?;
    let Some((seq, epoch)) =
        thread::advance_log(&mut *tx, &thread_id, now, &caller.device_id).await?
    else {
        return Err(Error::NotFound);
    };
    match thread_entry::recall_target(&mut *tx, &thread_id, target).await? {
        None => {
            access.reason("no_such_message");
            return Err(Error::InvalidRequest(format!(
                "this thread has no message {target}: name one of your messages by its number"
            )));
        }
        Some(found) if found.kind != "application" => {
            access.reason("not_a_message");
            return Err(Error::InvalidRequest(format!(
                "entry {target} is not a message (a change of members, or a recall): only \
                 messages can be recalled"
            )));
        }
        Some(found) if found.sender_user != caller.user_id => {
            access.reason("not_the_sender");
            return Err(Error::Forbidden(
                "only its sender can recall a message".to_owned(),
            ));
        }
        Some(found) if found.recalled_at_ms.is_some() => {
            access.reason("already_recalled");
            return Err(Error::Conflict(format!(
                "message {target} was already recalled"
            )));
        }
        Some(_) => {}
    }
    // Under a legal hold the recall still tells every member, and no one
    // is served the message again; its ciphertext and attachments stay
    // until the hold is lifted (then the sweep erases them).
    // Placing or lifting a hold waits for this transaction, and it for them.
    retention::serialize_with_holds(&mut *tx).await?;
    let held = retention::is_held(&mut *tx, &thread_id).await?;
    if !thread_entry::mark_recalled(&mut *tx, &thread_id, target, now, !held).await? {
        access.reason("already_recalled");
        return Err(Error::Conflict(format!(
            "message {target} was already recalled"
        )));
    }
    // A recalled urgent message escalates no further.
    clinical::withdraw(&mut tx, &thread_id, &[target]).await?;
    let mut erased = Vec::new();
    if held {
        retention::erase_later(&mut *tx, &thread_id, target).await?;
    } else {
        erased = attachment::of_messages(&mut *tx, &thread_id, &[target]).await?;
        attachment::mark_deleted(&mut *tx, &erased, now).await?;
    }
    thread_entry::insert_recall(
        &mut *tx,
        NewRecall {
            thread_id: &thread_id,
            seq,
            epoch,
            sender_user: &caller.user_id,
            sender_device: &caller.device_id,
            created_at_ms: now,
            recalls: target,
        },
    )
    .await?;
    access.commit(&state, tx).await?;
    // Erased from the database's own files too, not only from its rows;
    // the files a few chunks at a time.
    state.database.erase_deleted();
    super::attachments::erase_in_background(&state.database, erased);
    state.events.announce(Notice::Entry {
        thread_id: thread_id.clone(),
        seq,
    });
    Ok(Json(Appended {
        seq: to_u64(seq),
        epoch: to_u64(epoch),
    }))
}
