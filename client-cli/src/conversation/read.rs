//! `curbside read`, `threads` and `thread show`: a thread's history as
//! people read it, the list of threads, and who has each message.

use curbside_proto::threads::ReceiptKind;
use serde_json::{Value, json};

use super::device::catch_up;
use super::naming::{how_it_ended, thread_name};
use super::sync::{find_thread, sync};
use crate::error::CliError;
use crate::output::{self, Output};
use crate::people::Names;
use crate::session::Session;
use crate::show::{printable, short, text_block};
use crate::store::{LeftThread, StoredMessage, ThreadState};

/// One line (or block) of a thread's history, as people read it.
pub(super) async fn history_line(
    session: &Session,
    names: &mut Names,
    message: &StoredMessage,
) -> Result<String, CliError> {
    let when = session.times.at(message.time_ms);
    let sender = names.of(&session.client, &message.sender_user).await?;
    if let Some(change) = &message.change {
        let mut parts = Vec::new();
        if !change.added.is_empty() {
            parts.push(format!(
                "added {}",
                names.list(&session.client, &change.added).await?
            ));
        }
        if !change.removed.is_empty() {
            parts.push(format!(
                "removed {}",
                names.list(&session.client, &change.removed).await?
            ));
        }
        if parts.is_empty() {
            parts.push("renewed their keys".to_owned());
        }
        return Ok(format!("[{when}] — {sender} {}", parts.join(" and ")));
    }
    if let Some(subject) = &message.subject {
        return Ok(format!(
            "[{when}] — {sender} changed the subject to '{}'",
            printable(subject)
        ));
    }
    if let Some(lifespan) = &message.lifespan {
        return Ok(match lifespan.lifespan_s {
            Some(seconds) => format!(
                "[{when}] — {sender} set messages to disappear after {}",
                super::files::lifespan_words(seconds)
            ),
            None => format!("[{when}] — {sender} turned off disappearing messages"),
        });
    }
    if let Some(at_ms) = message.recalled_at_ms {
        return Ok(format!(
            "[{when}] — {sender} recalled this message at {}",
            session.times.at(at_ms)
        ));
    }
    let prefix = match &message.forward_of {
        // An urgent message passed on to a backup an escalation reached.
        Some(original) => format!(
            "[{when}] {sender} passed on URGENT message {} from {} ({}): ",
            original.seq,
            names.of(&session.client, &original.sender_user).await?,
            session.times.at(original.sent_at_ms)
        ),
        None if message.urgent => format!("[{when}] {sender}: URGENT (entry {}) ", message.seq),
        None => format!("[{when}] {sender}: "),
    };
    let indent = " ".repeat(prefix.chars().count().min(40));
    let mut line = format!("{prefix}{}", text_block(&message.text, &indent));
    if message.urgent && message.acknowledged {
        line.push_str(&format!("\n{indent}(you acknowledged it)"));
    }
    for attachment in &message.attachments {
        line.push_str(&format!(
            "\n{indent}[attachment {}] {} ({}, {})",
            attachment.id,
            printable(&attachment.name),
            printable(&attachment.media_type),
            super::files::size_words(attachment.size)
        ));
    }
    Ok(line)
}

/// The thread `thread` names, caught up with the server: its id and this
/// profile's state of it.
async fn synced(session: &mut Session, thread: &str) -> Result<(String, ThreadState), CliError> {
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    let state = session
        .contents
        .threads
        .get(&thread_id)
        .cloned()
        .unwrap_or_default();
    Ok((thread_id, state))
}

/// `curbside read THREAD`: the thread's messages; marks them read.
pub async fn read(session: &mut Session, thread: &str) -> Result<Output, CliError> {
    let (thread_id, state) = synced(session, thread).await?;
    if state.processed_seq > 0 && state.left.is_none() {
        let receipt = session.signed_receipt(&thread_id, ReceiptKind::Read, state.processed_seq)?;
        session
            .client
            .receipt(&thread_id, ReceiptKind::Read, &receipt)
            .await?;
    }
    let mut names = Names::default();
    let mut lines = Vec::new();
    if let Some(subject) = &state.subject {
        lines.push(printable(subject));
    }
    if let Some(seconds) = state.lifespan_s {
        lines.push(format!(
            "Messages disappear after {}.",
            super::files::lifespan_words(seconds)
        ));
    }
    for message in &state.messages {
        lines.push(history_line(session, &mut names, message).await?);
    }
    if state.messages.is_empty() {
        lines.push("No messages yet.".to_owned());
    }
    if let Some(left) = &state.left {
        lines.push(format!(
            "{}.",
            how_it_ended(session, &mut names, &thread_id, left).await?
        ));
    }
    Ok(Output::new(
        lines.join("\n"),
        json!({
            "thread_id": thread_id,
            "subject": state.subject,
            "lifespan_s": state.lifespan_s,
            "left": state.left.as_ref().map(output::left),
            "messages": state.messages.iter().map(output::message).collect::<Vec<_>>(),
        }),
    ))
}

/// `curbside threads`: the device's threads with their subjects, members
/// and unread counts, then the threads it has left and how.
pub async fn list(session: &mut Session) -> Result<Output, CliError> {
    let device = catch_up(session).await?;
    let listed = session.client.threads().await?.threads;
    // Threads this profile knows that the server no longer lists for it:
    // catch up, to learn how they ended.
    let known: Vec<String> = session
        .contents
        .threads
        .iter()
        .filter(|(id, state)| {
            state.left.is_none() && !listed.iter().any(|thread| &thread.thread_id == *id)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for thread_id in known {
        // One thread that cannot be caught up does not hide the others.
        match sync(session, &device, &thread_id).await {
            Ok(()) => {}
            Err(error @ CliError::Client(_)) => return Err(error),
            Err(error) => eprintln!(
                "curbside: {} could not be caught up: {error}",
                thread_name(session, &thread_id)
            ),
        }
    }
    let mut names = Names::default();
    let mut lines = Vec::new();
    let mut json_threads = Vec::new();
    for summary in &listed {
        let (members, member_ids) = match session.client.thread(&summary.thread_id).await {
            Ok(detail) => {
                let mut users: Vec<String> = detail
                    .members
                    .iter()
                    .map(|member| member.user_id.clone())
                    .collect();
                users.dedup();
                (names.list(&session.client, &users).await?, Some(users))
            }
            Err(_) => ("members unknown".to_owned(), None),
        };
        let subject = session
            .contents
            .threads
            .get(&summary.thread_id)
            .and_then(|state| state.subject.clone())
            .map_or_else(|| "(no subject)".to_owned(), |subject| printable(&subject));
        let unread = match summary.unread {
            0 => String::new(),
            n => format!("  {n} unread"),
        };
        lines.push(format!("{subject}{unread}"));
        lines.push(format!(
            "    {members} · thread {}",
            printable(&summary.thread_id)
        ));
        json_threads.push(json!({
            "thread_id": summary.thread_id,
            "subject": session.contents.threads.get(&summary.thread_id).and_then(|state| state.subject.clone()),
            "unread": summary.unread,
            "members": member_ids,
        }));
    }
    let left: Vec<(String, LeftThread)> = session
        .contents
        .threads
        .iter()
        .filter_map(|(id, state)| state.left.clone().map(|left| (id.clone(), left)))
        .collect();
    if !left.is_empty() {
        lines.push(if listed.is_empty() {
            "No threads you are in. Threads you have left:".to_owned()
        } else {
            "Threads you have left:".to_owned()
        });
        for (thread_id, ended) in &left {
            lines.push(format!(
                "  {} · thread {}",
                how_it_ended(session, &mut names, thread_id, ended).await?,
                printable(thread_id)
            ));
        }
    } else if listed.is_empty() {
        lines.push("No threads yet. Start one with `curbside thread new --with NAME`.".to_owned());
    }
    let json_left: Vec<Value> = left
        .iter()
        .map(|(thread_id, ended)| json!({ "thread_id": thread_id, "left": output::left(ended) }))
        .collect();
    Ok(Output::new(
        lines.join("\n"),
        json!({ "threads": json_threads, "left": json_left }),
    ))
}

/// `curbside thread show THREAD`: members and their devices, then each
/// message with who has it delivered and who has read it.
pub async fn show(session: &mut Session, thread: &str) -> Result<String, CliError> {
    let (thread_id, state) = synced(session, thread).await?;
    let mut names = Names::default();
    let mut lines = vec![format!(
        "{} (thread {})",
        state
            .subject
            .as_deref()
            .map_or_else(|| "(no subject)".to_owned(), printable),
        printable(&thread_id)
    )];
    if let Some(left) = &state.left {
        lines.push(format!(
            "{}.",
            how_it_ended(session, &mut names, &thread_id, left).await?
        ));
        return Ok(lines.join("\n"));
    }
    let detail = session.client.thread(&thread_id).await?;
    lines.push("Members:".to_owned());
    let mut users: Vec<(String, String)> = Vec::new();
    for member in &detail.members {
        if !users.iter().any(|(_, user)| *user == member.user_id) {
            let name = names.of(&session.client, &member.user_id).await?;
            users.push((name, member.user_id.clone()));
        }
    }
    users.sort_by_key(|(name, _)| name.to_lowercase());
    let users: Vec<(String, String)> = users;
    for (name, user) in &users {
        let name = name.clone();
        let you = if *user == session.contents.user_id {
            " (you)"
        } else {
            ""
        };
        let entry = names.entry(&session.client, user).await?.cloned();
        let devices: Vec<String> = detail
            .members
            .iter()
            .filter(|member| member.user_id == *user)
            .map(|member| {
                let device_name = entry
                    .as_ref()
                    .and_then(|entry| {
                        entry
                            .devices
                            .iter()
                            .find(|listed| listed.device_id == member.device_id)
                    })
                    .map_or_else(String::new, |listed| {
                        format!("{:?} ", printable(&listed.device_name))
                    });
                format!("{device_name}{}", short(&member.device_id))
            })
            .collect();
        lines.push(format!(
            "  {name}{you}: device{} {}",
            if devices.len() == 1 { "" } else { "s" },
            devices.join(", ")
        ));
    }
    lines.push("Messages:".to_owned());
    if state.messages.is_empty() {
        lines.push("  No messages yet.".to_owned());
    }
    for message in &state.messages {
        lines.push(format!(
            "  {}",
            history_line(session, &mut names, message).await?
        ));
        if !message.is_text() {
            continue;
        }
        let others: Vec<&String> = users
            .iter()
            .map(|(_, user)| user)
            .filter(|user| **user != message.sender_user)
            .collect();
        let mut delivered = Vec::new();
        let mut read = Vec::new();
        for user in others {
            let has = detail
                .members
                .iter()
                .any(|member| member.user_id == *user && member.delivered_seq >= message.seq);
            let has_read = detail
                .read
                .iter()
                .any(|receipt| receipt.user_id == *user && receipt.read_seq >= message.seq);
            if has {
                delivered.push((*user).clone());
            }
            if has_read {
                read.push((*user).clone());
            }
        }
        lines.push(format!(
            "      delivered to {}; read by {}",
            names.list(&session.client, &delivered).await?,
            names.list(&session.client, &read).await?
        ));
        if let Some(status) = detail
            .urgent
            .iter()
            .find(|status| status.seq == message.seq)
        {
            let acked: Vec<String> = status.acks.iter().map(|ack| ack.user_id.clone()).collect();
            let mut line = format!(
                "      urgent, {}; acknowledged by {}",
                status.stage.as_str(),
                names.list(&session.client, &acked).await?
            );
            if let Some(backup) = &status.escalated_to {
                line.push_str(&format!(
                    "; escalated to {}",
                    names.of(&session.client, backup).await?
                ));
            }
            lines.push(line);
        }
    }
    Ok(lines.join("\n"))
}
