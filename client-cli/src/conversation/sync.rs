//! Reading a thread's log into the profile: messages decrypted, subjects
//! and changes of members recorded, the end of this device's membership
//! noted, and a delivery receipt sent for what was processed.

use curbside_proto::content::Content;
use curbside_proto::threads::{EndReason, EntryKind, ReceiptKind, ThreadEntry};

use super::device::{check_members, save};
use super::naming::thread_id;
use crate::client::ClientError;
use crate::error::CliError;
use crate::mls::{Device, Identity, Processed};
use crate::session::Session;
use crate::store::{
    ForwardOf, LeftThread, LifespanChange, MemberChange, StoredMessage, ThreadState,
};

/// The users of `identities`, each once, in order.
fn users_of(identities: &[Identity]) -> Vec<String> {
    let mut users: Vec<String> = identities.iter().map(|id| id.user_id.clone()).collect();
    users.sort();
    users.dedup();
    users
}

/// The thread `given` names (see `naming::thread_id`), after reading the
/// logs of threads joined and not read yet if nothing matched: a thread's
/// subject is in its log, so a device just added to a thread knows it only
/// then.
pub(super) async fn find_thread(
    session: &mut Session,
    device: &Device,
    given: &str,
) -> Result<String, CliError> {
    match thread_id(session, given) {
        Err(CliError::UnknownThread(_)) => {}
        found => return found,
    }
    let unread: Vec<String> = session
        .contents
        .threads
        .iter()
        .filter(|(_, state)| state.subject.is_none() && state.left.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    for id in unread {
        sync(session, device, &id).await?;
    }
    thread_id(session, given)
}

/// Processes everything new in `thread_id`: messages, subjects, changes
/// of members. A thread this device is no longer in is marked as left (the
/// server says how, or no longer shows it at all), never an error.
pub(super) async fn sync(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
) -> Result<(), CliError> {
    let mut state = session
        .contents
        .threads
        .get(thread_id)
        .cloned()
        .ok_or_else(|| CliError::UnknownThread(thread_id.to_owned()))?;
    if state.left.is_some() {
        return Ok(());
    }
    let started = state.processed_seq;
    let mut ended = None;
    loop {
        let page = match session
            .client
            .entries(thread_id, state.processed_seq, 500)
            .await
        {
            Ok(page) => page,
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
                // The server shows nothing of it to this device any more.
                state.left = Some(LeftThread {
                    at_ms: crate::clock::now_ms(),
                    by_user: None,
                    reason: "unknown".to_owned(),
                });
                break;
            }
            Err(error) => return Err(error.into()),
        };
        ended = page.ended.clone();
        if !state.lifespan_known {
            // A lifespan set before this device joined is not in the log
            // it reads: the thread's current one is, unless it changed in
            // what this page brings (then it is learnt in order).
            if !page
                .entries
                .iter()
                .any(|entry| entry.kind == EntryKind::Lifespan)
            {
                state.lifespan_s = page.lifespan_s;
            }
            state.lifespan_known = true;
        }
        let before = state.processed_seq;
        for entry in &page.entries {
            // The log only moves forward: an entry at or before what was
            // processed is not processed twice.
            if entry.seq <= state.processed_seq {
                continue;
            }
            let processed = process(session, device, thread_id, &mut state, entry).await;
            // What it wrote lives as long as the lifespan in force here.
            for message in state
                .messages
                .iter_mut()
                .rev()
                .take_while(|message| message.seq == entry.seq)
                .filter(|message| message.change.is_none() && message.lifespan.is_none())
            {
                message.expires_after_s = state.lifespan_s;
            }
            if let Err(error) = processed {
                // What was processed is kept (the device's keys have moved
                // on with it): up to this entry, or through it if its
                // commit was applied before the error (a member check that
                // could not be made, say).
                state.messages.sort_by_key(|message| message.seq);
                session.contents.threads.insert(thread_id.to_owned(), state);
                save(session, device)?;
                return Err(error);
            }
        }
        if state.processed_seq == before || state.processed_seq >= page.last_seq {
            break;
        }
    }
    if let Some(ended) = ended
        && state.processed_seq >= ended.seq
    {
        state.left = Some(LeftThread {
            at_ms: ended.at_ms,
            by_user: ended.by_user,
            reason: match ended.reason {
                EndReason::Removed => "removed",
                EndReason::Left => "left",
                EndReason::Deactivated => "deactivated",
                EndReason::DeviceRemoved => "device_removed",
                _ => "unknown",
            }
            .to_owned(),
        });
    }
    // Messages older than the thread's lifespan are forgotten here as the
    // server's sweep purges them there.
    state.purge_expired(crate::clock::now_ms());
    let processed = state.processed_seq;
    let still_in = state.left.is_none();
    // Own messages are kept when sent, possibly before others' that the
    // log puts ahead of them.
    state.messages.sort_by_key(|message| message.seq);
    session.contents.threads.insert(thread_id.to_owned(), state);
    save(session, device)?;
    // The delivery receipt: this device has processed the log up to here
    // (sent only when that moved; a thread that ended meanwhile takes none).
    if processed > started && still_in {
        let receipt = session.signed_receipt(thread_id, ReceiptKind::Delivered, processed)?;
        match session
            .client
            .receipt(thread_id, ReceiptKind::Delivered, &receipt)
            .await
        {
            Ok(()) => {}
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Processes one log entry into `state`.
async fn process(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    state: &mut ThreadState,
    entry: &ThreadEntry,
) -> Result<(), CliError> {
    if entry.kind == EntryKind::Recall {
        // No MLS message: the server's word that a sender took back one
        // of their own messages (anyone else's it could only hide, which
        // it can do anyway by not serving it).
        if let Some(recalled) = entry.recalls {
            // And the copies a member passed on to an escalation's backup.
            for message in state.messages.iter_mut().filter(|message| {
                (message.seq == recalled
                    && message.is_text()
                    && message.sender_user == entry.sender_user)
                    || message.forward_of.as_ref().is_some_and(|original| {
                        original.seq == recalled && original.sender_user == entry.sender_user
                    })
            }) {
                message.recall(entry.created_at_ms);
            }
        }
        state.processed_seq = entry.seq;
        return Ok(());
    }
    if entry.kind == EntryKind::Lifespan {
        // No MLS message: the server must know a thread's lifespan (it
        // purges by it), so a member sets it there, and every device reads
        // it here, its own's included.
        state.lifespan_s = entry.lifespan_s;
        state.messages.push(StoredMessage {
            seq: entry.seq,
            sender_user: entry.sender_user.clone(),
            time_ms: entry.created_at_ms,
            lifespan: Some(LifespanChange {
                lifespan_s: entry.lifespan_s,
            }),
            ..StoredMessage::default()
        });
        state.processed_seq = entry.seq;
        return Ok(());
    }
    if entry.purged_at_ms.is_some() {
        // Purged by the server (the thread's lifespan, or the
        // organisation's retention): nothing left to read.
        state.processed_seq = entry.seq;
        return Ok(());
    }
    if entry.kind == EntryKind::Application && entry.body.0.is_empty() {
        // Recalled before this device read it: its ciphertext is gone (the
        // recall entry after it says so). Its place is kept for that.
        state.messages.push(StoredMessage {
            seq: entry.seq,
            sender_user: entry.sender_user.clone(),
            time_ms: entry.created_at_ms,
            text: String::new(),
            change: None,
            subject: None,
            ..StoredMessage::default()
        });
        state.processed_seq = entry.seq;
        return Ok(());
    }
    if entry.sender_device == session.contents.device_id {
        // Own messages were kept when sent. An own commit the server took
        // while this device did not hear back (a timeout, a crash) is
        // applied now.
        if entry.kind == EntryKind::Commit && device.has_pending_commit(thread_id) {
            let before = device.members(thread_id)?;
            device.commit_accepted(thread_id)?;
            // Applied: whatever follows, the mark moves past it.
            state.processed_seq = entry.seq;
            record_change(device, thread_id, state, entry, &before)?;
        }
        state.processed_seq = entry.seq;
        return Ok(());
    }
    let declared = entry
        .change
        .as_ref()
        .map(|change| (change.add.as_slice(), change.remove.as_slice()));
    let processed = device.process(thread_id, &entry.sender_device, &entry.body.0, declared);
    let unprocessed = state.processed_seq;
    state.processed_seq = entry.seq;
    match processed {
        Ok(Processed::Message { sender, plaintext }) => match Content::decode(&plaintext) {
            Content::Subject { subject } => {
                set_subject(
                    state,
                    entry.seq,
                    &sender.user_id,
                    entry.created_at_ms,
                    subject,
                );
            }
            Content::Text { text, attachments } => state.messages.push(StoredMessage {
                seq: entry.seq,
                sender_user: sender.user_id,
                time_ms: entry.created_at_ms,
                text,
                // A reference that is not well formed opens nothing.
                attachments: attachments
                    .into_iter()
                    .filter(|attachment| attachment.is_well_formed())
                    .collect(),
                urgent: entry.urgent,
                ..StoredMessage::default()
            }),
            Content::Forward {
                seq,
                sender_user,
                sent_at_ms,
                text,
            } => state.messages.push(StoredMessage {
                seq: entry.seq,
                sender_user: sender.user_id,
                time_ms: entry.created_at_ms,
                text,
                urgent: true,
                forward_of: Some(ForwardOf {
                    seq,
                    sender_user,
                    sent_at_ms,
                }),
                ..StoredMessage::default()
            }),
            _ => {}
        },
        Ok(Processed::Commit { added, removed }) => {
            state.messages.push(StoredMessage {
                seq: entry.seq,
                sender_user: entry.sender_user.clone(),
                time_ms: entry.created_at_ms,
                text: String::new(),
                change: Some(MemberChange {
                    added: users_of(&added),
                    removed: users_of(&removed),
                }),
                subject: None,
                ..StoredMessage::default()
            });
            let removes_me = removed
                .iter()
                .any(|identity| identity.device_id == session.contents.device_id);
            if removes_me {
                state.left = Some(LeftThread {
                    at_ms: entry.created_at_ms,
                    by_user: Some(entry.sender_user.clone()),
                    reason: "removed".to_owned(),
                });
            } else {
                session
                    .contents
                    .threads
                    .insert(thread_id.to_owned(), state.clone());
                save(session, device)?;
                check_members(session, device, thread_id).await?;
            }
        }
        Err(error) if entry.kind == EntryKind::Commit => {
            // A commit that cannot be applied leaves this device behind the
            // group: stop rather than go on out of step (it was not applied,
            // so the mark stays before it).
            state.processed_seq = unprocessed;
            return Err(error.into());
        }
        Err(error) => {
            eprintln!("curbside: entry {} could not be read: {error}", entry.seq);
            state.messages.push(StoredMessage {
                seq: entry.seq,
                sender_user: entry.sender_user.clone(),
                time_ms: entry.created_at_ms,
                text: "[this message could not be decrypted]".to_owned(),
                change: None,
                subject: None,
                ..StoredMessage::default()
            });
        }
    }
    Ok(())
}

/// Sets the subject of a thread to what `sender_user` sent; a change of an
/// earlier subject goes into the history, saying who made it.
pub(super) fn set_subject(
    state: &mut ThreadState,
    seq: u64,
    sender_user: &str,
    time_ms: i64,
    subject: String,
) {
    if state.subject.as_ref().is_some_and(|old| *old != subject) {
        state.messages.push(StoredMessage {
            seq,
            sender_user: sender_user.to_owned(),
            time_ms,
            text: String::new(),
            change: None,
            subject: Some(subject.clone()),
            ..StoredMessage::default()
        });
    }
    state.subject = Some(subject);
}

/// Records this device's own commit `entry`, just applied, as a change of
/// members: `before` were the members before it.
pub(super) fn record_change(
    device: &Device,
    thread_id: &str,
    state: &mut ThreadState,
    entry: &ThreadEntry,
    before: &[Identity],
) -> Result<(), CliError> {
    let Some(change) = &entry.change else {
        return Ok(());
    };
    let after = device.members(thread_id)?;
    let pick = |devices: &[String], among: &[Identity]| -> Vec<Identity> {
        among
            .iter()
            .filter(|identity| devices.contains(&identity.device_id))
            .cloned()
            .collect()
    };
    let added = users_of(&pick(&change.add, &after));
    let removed = users_of(&pick(&change.remove, before));
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    state.messages.push(StoredMessage {
        seq: entry.seq,
        sender_user: entry.sender_user.clone(),
        time_ms: entry.created_at_ms,
        text: String::new(),
        change: Some(MemberChange { added, removed }),
        subject: None,
        ..StoredMessage::default()
    });
    Ok(())
}
