//! `curbside ack`: acknowledging an urgent message, which its sender sees
//! and which stops its escalation.

use super::device::catch_up;
use super::heal::heal_with;
use super::naming::{still_in, thread_name};
use super::sync::{find_thread, sync};
use crate::error::CliError;
use crate::people::Names;
use crate::session::Session;

/// `curbside ack THREAD [ENTRY]`: acknowledges urgent message `ENTRY`, or
/// the latest urgent one of others this user has not acknowledged (a
/// copy passed on to a backup acknowledges the original).
pub async fn acknowledge(
    session: &mut Session,
    thread: &str,
    entry: Option<u64>,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    heal_with(session, &device).await;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    still_in(session, &thread_id).await?;
    let me = session.contents.user_id.clone();
    let state = session
        .contents
        .threads
        .get(&thread_id)
        .cloned()
        .unwrap_or_default();
    // The urgent message: its entry, its sender and when it was sent.
    let urgent = state.messages.iter().rev().filter(|message| message.urgent);
    let found = match entry {
        Some(seq) => urgent
            .map(|message| match &message.forward_of {
                Some(original) => (
                    original.seq,
                    original.sender_user.clone(),
                    original.sent_at_ms,
                ),
                None => (message.seq, message.sender_user.clone(), message.time_ms),
            })
            .find(|(original, _, _)| *original == seq)
            .or(Some((seq, String::new(), 0))),
        None => urgent
            .filter(|message| !message.acknowledged)
            .map(|message| match &message.forward_of {
                Some(original) => (
                    original.seq,
                    original.sender_user.clone(),
                    original.sent_at_ms,
                ),
                None => (message.seq, message.sender_user.clone(), message.time_ms),
            })
            .find(|(_, sender, _)| *sender != me),
    };
    let Some((seq, sender, sent_at_ms)) = found else {
        return Err(CliError::NothingToAcknowledge(thread_name(
            session, &thread_id,
        )));
    };
    session.client.acknowledge(&thread_id, seq).await?;
    if let Some(state) = session.contents.threads.get_mut(&thread_id) {
        for message in state.messages.iter_mut().filter(|message| {
            message.seq == seq || message.forward_of.as_ref().is_some_and(|of| of.seq == seq)
        }) {
            message.acknowledged = true;
        }
    }
    session.save()?;
    let mut names = Names::default();
    let from = if sender.is_empty() {
        String::new()
    } else {
        format!(
            " from {} ({})",
            names.of(&session.client, &sender).await?,
            session.times.at(sent_at_ms)
        )
    };
    Ok(format!(
        "Acknowledged urgent message {seq}{from} in {}",
        thread_name(session, &thread_id)
    ))
}
