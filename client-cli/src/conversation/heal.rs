//! The membership changes the server asks member clients to commit
//! (`GET /v1/membership/pending`), committed by this device as part of
//! ordinary use (`send`, `read`, `thread show`, `ack`, `watch`): a
//! colleague's device enrolled since they joined, so that every device of
//! a clinician is in every thread they are in; the backup an urgent
//! message escalated to, who is then passed the urgent message (a
//! newcomer cannot decrypt what came before); and the devices of former
//! members still in a group, removed so that they cannot decrypt what is
//! sent afterwards.
//!
//! Removals come first, in a commit of their own, so that no trouble with
//! an add (a device whose key package does not match the directory, say)
//! keeps a removed device in a group; and a thread whose removal could not
//! be committed takes no message from this command (`Session::unremoved`).
//! A device is added only if its user is in the group already (a new
//! device of a member) or an escalation asked them in, whatever the server
//! lists. A device that cannot be added now (no key package, a key that
//! does not match) is said and skipped.
//!
//! Another member's client may do the same at the same moment: its commit
//! or this one loses the epoch race (409), and the loser catches up and
//! finds nothing left to do. Nothing here stops the command it runs in:
//! what cannot be done now is said on standard error and left for the
//! next command, or another member's.

use std::collections::BTreeMap;

use curbside_proto::clinical::{PendingAdd, PendingThread};
use curbside_proto::content::Content;

use super::device::catch_up;
use super::membership::{claim_of, commit_planned};
use super::send::{COMMIT_ATTEMPTS, send_content};
use super::sync::sync;
use crate::client::ClientError;
use crate::error::CliError;
use crate::mls::Device;
use crate::people;
use crate::session::Session;
use crate::show::{printable, short};

/// Catches up, then commits what the server asks of this device's
/// threads.
pub async fn heal(session: &mut Session) -> Result<(), CliError> {
    let device = catch_up(session).await?;
    heal_with(session, &device).await;
    Ok(())
}

/// Commits what the server asks of this device's threads, with `device`
/// caught up. Never fails: what cannot be done now is said and left; a
/// thread whose removals could not be committed is noted in the session.
pub(super) async fn heal_with(session: &mut Session, device: &Device) {
    let pending = match session.client.pending_membership().await {
        Ok(pending) => pending.threads,
        Err(error) => {
            eprintln!(
                "curbside: could not ask which devices to add or remove: {}",
                error.brief()
            );
            return;
        }
    };
    session.unremoved.clear();
    for thread in pending {
        let known = session
            .contents
            .threads
            .get(&thread.thread_id)
            .is_some_and(|state| state.left.is_none());
        if !known {
            continue;
        }
        if let Err(error) = remove_pending(session, device, &thread).await {
            session.unremoved.push(thread.thread_id.clone());
            eprintln!(
                "curbside: a device that left thread {} could not be removed from it now \
                 ({error}); nothing is sent there until it is",
                short(&thread.thread_id)
            );
            continue;
        }
        if let Err(error) = add_pending(session, device, &thread).await {
            eprintln!(
                "curbside: the new devices of thread {} could not be added now ({error}); the \
                 next command will try again",
                short(&thread.thread_id)
            );
        }
    }
}

/// Whether the thread is one this device is still in, after catching up.
async fn still_in(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
) -> Result<bool, CliError> {
    sync(session, device, thread_id).await?;
    Ok(session
        .contents
        .threads
        .get(thread_id)
        .is_some_and(|state| state.left.is_none()))
}

/// Commits removing the devices `pending` lists that are still in the
/// group (never this one: MLS forbids it, and the server never lists it).
async fn remove_pending(
    session: &mut Session,
    device: &Device,
    pending: &PendingThread,
) -> Result<(), CliError> {
    let thread_id = pending.thread_id.as_str();
    if pending.remove.is_empty() {
        return Ok(());
    }
    for _ in 0..COMMIT_ATTEMPTS {
        if !still_in(session, device, thread_id).await? {
            return Ok(());
        }
        let removed: Vec<String> = device
            .members(thread_id)?
            .into_iter()
            .map(|member| member.device_id)
            .filter(|id| pending.remove.contains(id) && *id != session.contents.device_id)
            .collect();
        if removed.is_empty() {
            return Ok(());
        }
        if commit_planned(session, device, thread_id, &[], Vec::new(), removed).await? {
            return Ok(());
        }
    }
    Err(CliError::Busy(thread_id.to_owned()))
}

/// Commits adding the devices `pending` lists that the group lacks, then
/// tells them the subject and passes on the urgent messages an escalation
/// asked them in for.
async fn add_pending(
    session: &mut Session,
    device: &Device,
    pending: &PendingThread,
) -> Result<(), CliError> {
    let thread_id = pending.thread_id.as_str();
    if pending.add.is_empty() {
        return Ok(());
    }
    for _ in 0..COMMIT_ATTEMPTS {
        if !still_in(session, device, thread_id).await? {
            return Ok(());
        }
        let members = device.members(thread_id)?;
        let in_group = |device_id: &str| members.iter().any(|m| m.device_id == device_id);
        let user_in_group = |user_id: &str| members.iter().any(|m| m.user_id == user_id);
        // By user: a new device of someone in the group, or anyone an
        // escalation asked in, if this device can pass the message on.
        let mut wanted: BTreeMap<&str, Vec<&PendingAdd>> = BTreeMap::new();
        for add in &pending.add {
            let invited = !add.for_urgent_seqs.is_empty();
            let can_pass_on = add
                .for_urgent_seqs
                .iter()
                .all(|seq| urgent_original(session, thread_id, *seq).is_some());
            let allowed = if invited {
                can_pass_on
            } else {
                user_in_group(&add.user_id)
            };
            if allowed && !in_group(&add.device_id) {
                wanted.entry(add.user_id.as_str()).or_default().push(add);
            }
        }
        let mut packages = Vec::new();
        let mut added = Vec::new();
        for (user_id, adds) in &wanted {
            let devices: Vec<String> = adds.iter().map(|add| add.device_id.clone()).collect();
            let claimed = async {
                let entry = people::resolve(&session.client, user_id).await?;
                claim_of(session, device, &entry, Some(&devices)).await
            }
            .await;
            match claimed {
                Ok((claimed, ids)) => {
                    packages.extend(claimed);
                    added.extend(ids);
                }
                // The server is unreachable: nothing else will work now.
                Err(error @ CliError::Client(ClientError::Unreachable { .. })) => {
                    return Err(error);
                }
                // This user's devices are skipped; the others go on.
                Err(error) => eprintln!(
                    "curbside: a new device of user {} was not added to thread {}: {error}",
                    printable(user_id),
                    short(thread_id)
                ),
            }
        }
        if added.is_empty() {
            return Ok(());
        }
        let mut urgent: Vec<u64> = pending
            .add
            .iter()
            .filter(|add| added.contains(&add.device_id))
            .flat_map(|add| add.for_urgent_seqs.iter().copied())
            .collect();
        urgent.sort_unstable();
        urgent.dedup();
        if commit_planned(session, device, thread_id, &packages, added, Vec::new()).await? {
            return welcome_newcomers(session, device, thread_id, &urgent).await;
        }
    }
    Err(CliError::Busy(thread_id.to_owned()))
}

/// After adding devices: tells them the subject, and passes on the urgent
/// messages an escalation asked them in for (they cannot decrypt what was
/// sent before they joined); each sent again after catching up if another
/// member's entry moved the epoch first.
async fn welcome_newcomers(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    urgent: &[u64],
) -> Result<(), CliError> {
    let mut contents = Vec::new();
    if let Some(subject) = session
        .contents
        .threads
        .get(thread_id)
        .and_then(|state| state.subject.clone())
    {
        contents.push(Content::Subject { subject });
    }
    contents.extend(
        urgent
            .iter()
            .filter_map(|seq| urgent_original(session, thread_id, *seq)),
    );
    for content in contents {
        let mut attempts = 0;
        loop {
            match send_content(session, device, thread_id, &content).await {
                Err(CliError::Client(ClientError::Api { status, .. }))
                    if status == reqwest::StatusCode::CONFLICT && attempts < COMMIT_ATTEMPTS =>
                {
                    attempts += 1;
                    sync(session, device, thread_id).await?;
                }
                result => {
                    result?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Urgent message `seq` of `thread_id` as this device read it, ready to
/// pass on; `None` if it does not hold it (it joined later, or it was
/// recalled).
fn urgent_original(session: &Session, thread_id: &str, seq: u64) -> Option<Content> {
    let state = session.contents.threads.get(thread_id)?;
    let message = state.messages.iter().find(|message| {
        message.seq == seq
            && message.urgent
            && message.forward_of.is_none()
            && message.recalled_at_ms.is_none()
    })?;
    Some(Content::Forward {
        seq,
        sender_user: message.sender_user.clone(),
        sent_at_ms: message.time_ms,
        text: message.text.clone(),
    })
}
