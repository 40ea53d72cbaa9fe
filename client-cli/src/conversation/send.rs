//! `curbside send`, `thread subject` and `recall`: encrypting to a thread,
//! trying again when another member moved its epoch on first, and taking
//! a message back.

use std::io::{IsTerminal, Read};

use curbside_proto::content::Content;
use curbside_proto::threads::{Blob, MessageRequest};

use super::device::{catch_up, save};
use super::naming::{still_in, thread_name};
use super::sync::{find_thread, set_subject, sync};
use crate::client::ClientError;
use crate::error::CliError;
use crate::mls::Device;
use crate::session::Session;
use crate::show::{printable, short};
use crate::store::StoredMessage;

/// How often a commit is retried after losing the epoch race.
pub(super) const COMMIT_ATTEMPTS: usize = 5;

/// Encrypts and sends `content`; keeps a text in the local history.
pub(super) async fn send_content(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    content: &Content,
) -> Result<u64, CliError> {
    send_content_as(session, device, thread_id, content, false).await
}

/// [`send_content`], marked urgent (for the server to escalate) when
/// `urgent`.
pub(super) async fn send_content_as(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    content: &Content,
    urgent: bool,
) -> Result<u64, CliError> {
    let (epoch, ciphertext) = device.encrypt(thread_id, &content.encode())?;
    // The ratchet moved on: keep that before the message leaves.
    save(session, device)?;
    // The server binds the files to the message, to delete them with it.
    let attachments = match content {
        Content::Text { attachments, .. } => attachments
            .iter()
            .map(|attachment| attachment.id.clone())
            .collect(),
        _ => Vec::new(),
    };
    let appended = session
        .client
        .send_message(
            thread_id,
            &MessageRequest {
                epoch,
                ciphertext: Blob(ciphertext),
                attachments,
                urgent,
            },
        )
        .await?;
    let user = session.contents.user_id.clone();
    if let Some(state) = session.contents.threads.get_mut(thread_id) {
        // Others' entries may have come in between the last catch-up and
        // this one: only an entry right after what was processed moves
        // the mark, or those would be skipped for good. (The next catch-up
        // passes over this one, kept here.)
        if appended.seq == state.processed_seq + 1 {
            state.processed_seq = appended.seq;
        }
        match content {
            Content::Text { text, attachments } => state.messages.push(StoredMessage {
                seq: appended.seq,
                sender_user: user,
                time_ms: crate::clock::now_ms(),
                text: text.clone(),
                attachments: attachments.clone(),
                expires_after_s: state.lifespan_s,
                urgent,
                ..StoredMessage::default()
            }),
            Content::Forward {
                seq,
                sender_user,
                sent_at_ms,
                text,
            } => state.messages.push(StoredMessage {
                seq: appended.seq,
                sender_user: user,
                time_ms: crate::clock::now_ms(),
                text: text.clone(),
                expires_after_s: state.lifespan_s,
                urgent: true,
                forward_of: Some(crate::store::ForwardOf {
                    seq: *seq,
                    sender_user: sender_user.clone(),
                    sent_at_ms: *sent_at_ms,
                }),
                ..StoredMessage::default()
            }),
            Content::Subject { subject } => {
                set_subject(
                    state,
                    appended.seq,
                    &user,
                    crate::clock::now_ms(),
                    subject.clone(),
                );
            }
            _ => {}
        }
    }
    save(session, device)?;
    Ok(appended.seq)
}

/// The text of `curbside send THREAD [TEXT]`: `TEXT`, or standard input
/// without it (read before the profile is opened, so that no other command
/// waits on someone typing).
pub fn message_text(text: Option<&str>) -> Result<String, CliError> {
    let text = match text {
        Some(text) => text.to_owned(),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "Type the message; end it with Ctrl-D on a line of its own (Ctrl-C to cancel)."
                );
            }
            let mut text = String::new();
            stdin
                .lock()
                .read_to_string(&mut text)
                .map_err(|_| CliError::EmptyMessage)?;
            text
        }
    };
    if text.trim().is_empty() {
        return Err(CliError::EmptyMessage);
    }
    Ok(text)
}

/// `curbside send THREAD TEXT [--urgent]`.
pub async fn send(
    session: &mut Session,
    thread: &str,
    text: &str,
    urgent: bool,
) -> Result<String, CliError> {
    let content = Content::Text {
        text: text.to_owned(),
        attachments: Vec::new(),
    };
    let (thread_id, seq) = send_to_as(session, thread, &content, urgent).await?;
    Ok(format!(
        "Sent{} to {} (entry {seq})",
        if urgent { " urgently" } else { "" },
        thread_name(session, &thread_id)
    ))
}

/// `curbside thread subject THREAD TEXT`: every member sees the new
/// subject, and the history says who changed it.
pub async fn set_thread_subject(
    session: &mut Session,
    thread: &str,
    subject: &str,
) -> Result<String, CliError> {
    let subject = subject.trim();
    if subject.is_empty() {
        return Err(CliError::EmptySubject);
    }
    let content = Content::Subject {
        subject: subject.to_owned(),
    };
    let (thread_id, _) = send_to(session, thread, &content).await?;
    Ok(format!(
        "The subject of thread {} is now '{}'",
        short(&thread_id),
        printable(subject)
    ))
}

/// Sends `content` to the thread `thread` names, catching up and trying
/// again if the epoch moved on meanwhile; returns the thread's id and the
/// entry's sequence number.
pub(super) async fn send_to(
    session: &mut Session,
    thread: &str,
    content: &Content,
) -> Result<(String, u64), CliError> {
    send_to_as(session, thread, content, false).await
}

/// [`send_to`], marked urgent when `urgent`.
pub(super) async fn send_to_as(
    session: &mut Session,
    thread: &str,
    content: &Content,
    urgent: bool,
) -> Result<(String, u64), CliError> {
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    if session.unremoved.contains(&thread_id) {
        return Err(CliError::RemovalPending(thread_name(session, &thread_id)));
    }
    for _ in 0..COMMIT_ATTEMPTS {
        sync(session, &device, &thread_id).await?;
        still_in(session, &thread_id).await?;
        match send_content_as(session, &device, &thread_id, content, urgent).await {
            Err(CliError::Client(ClientError::Api { status, .. }))
                if status == reqwest::StatusCode::CONFLICT
                    || status == reqwest::StatusCode::NOT_FOUND => {}
            result => return result.map(|seq| (thread_id, seq)),
        }
    }
    Err(CliError::Busy(thread_id))
}

/// `curbside recall THREAD [ENTRY]`: recalls ("deletes for everyone") one
/// of this user's messages, the last one sent unless the entry number
/// (`send` prints it) is given. The server erases its ciphertext and tells
/// every member's device, which forgets the text.
pub async fn recall(
    session: &mut Session,
    thread: &str,
    entry: Option<u64>,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    still_in(session, &thread_id).await?;
    let me = session.contents.user_id.clone();
    let target = match entry {
        Some(seq) => seq,
        None => session
            .contents
            .threads
            .get(&thread_id)
            .and_then(|state| {
                state.messages.iter().rev().find(|message| {
                    message.is_text()
                        && message.sender_user == me
                        && message.recalled_at_ms.is_none()
                })
            })
            .map(|message| message.seq)
            .ok_or_else(|| CliError::NothingToRecall(thread_name(session, &thread_id)))?,
    };
    session.client.recall(&thread_id, target).await?;
    sync(session, &device, &thread_id).await?;
    Ok(format!(
        "Recalled your message (entry {target}) in {}: the server erased it, and each \
         member's device forgets it as it catches up",
        thread_name(session, &thread_id)
    ))
}
