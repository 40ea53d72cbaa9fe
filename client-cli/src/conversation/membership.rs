//! `curbside thread new`, `thread add`, `thread remove` and `thread
//! leave`: who is in a thread, changed by MLS commits whose key packages
//! are checked against the directory.

use curbside_proto::content::Content;
use curbside_proto::threads::{
    Blob, CommitRequest, EntryKind, MembershipChange, NewThread, ThreadEntry,
};
use openmls::prelude::KeyPackage;

use super::device::{catch_up, save};
use super::naming::{still_in, thread_name};
use super::send::{COMMIT_ATTEMPTS, send_content};
use super::sync::{find_thread, record_change, sync};
use crate::client::ClientError;
use crate::error::CliError;
use crate::mls::Device;
use crate::people;
use crate::session::Session;
use crate::show::printable;
use crate::store::{LeftThread, ThreadState};

/// Claims a package for each device of `user` (but this one), checking
/// each against the directory: the user, the device, its enrolled key.
async fn claim(
    session: &Session,
    device: &Device,
    user: &curbside_proto::identity::DirectoryEntry,
) -> Result<(Vec<KeyPackage>, Vec<String>), CliError> {
    claim_of(session, device, user, None).await
}

/// [`claim`], for only `devices` of the user when given.
pub(super) async fn claim_of(
    session: &Session,
    device: &Device,
    user: &curbside_proto::identity::DirectoryEntry,
    devices: Option<&[String]>,
) -> Result<(Vec<KeyPackage>, Vec<String>), CliError> {
    let claimed = match devices {
        Some(devices) => {
            session
                .client
                .claim_key_packages_of(&user.user_id, devices)
                .await?
        }
        None => session.client.claim_key_packages(&user.user_id).await?,
    };
    let mut packages = Vec::new();
    let mut devices = Vec::new();
    for claimed in claimed.packages {
        let (package, identity) = device.read_key_package(&claimed.key_package.0)?;
        let listed = user
            .devices
            .iter()
            .filter(|_| identity.user_id == user.user_id)
            .find(|listed| {
                listed.device_id == claimed.device_id && listed.device_id == identity.device_id
            });
        match listed {
            Some(listed) if listed.public_key == identity.public_key => {
                packages.push(package);
                devices.push(claimed.device_id);
            }
            _ => return Err(CliError::CredentialMismatch(claimed.device_id)),
        }
    }
    Ok((packages, devices))
}

/// Whoever holds the role `given` (its name or id) at this moment, as
/// the server says, with a line saying so.
async fn role_holder(session: &Session, given: &str) -> Result<(String, String), CliError> {
    let roles = session.client.directory_roles().await?;
    let role = roles
        .find(given)
        .ok_or_else(|| CliError::UnknownRole(printable(given.trim())))?;
    let holder = role
        .holder
        .as_ref()
        .ok_or_else(|| CliError::RoleVacant(printable(&role.name)))?;
    Ok((
        holder.user_id.clone(),
        format!(
            "{} holds {} until {}",
            printable(&holder.display_name),
            printable(&role.name),
            session.times.clock(holder.ends_at_ms)
        ),
    ))
}

/// `curbside thread new --with USER[,USER…] [--with-role ROLE] [--subject
/// TEXT]`: a role is resolved to whoever holds it now.
pub async fn new_thread(
    session: &mut Session,
    with: &[String],
    with_role: Option<&str>,
    subject: Option<&str>,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let mut with = with.to_vec();
    let mut role_note = None;
    if let Some(role) = with_role {
        let (holder, note) = role_holder(session, role).await?;
        with.push(holder);
        role_note = Some(note);
    }
    let mut colleagues = Vec::new();
    for given in with
        .iter()
        .map(|given| given.trim())
        .filter(|given| !given.is_empty())
    {
        let entry = people::resolve(&session.client, given).await?;
        if entry.user_id != session.contents.user_id
            && !colleagues
                .iter()
                .any(|known: &curbside_proto::identity::DirectoryEntry| {
                    known.user_id == entry.user_id
                })
        {
            colleagues.push(entry);
        }
    }
    if colleagues.is_empty() {
        return Err(CliError::NobodyElse);
    }
    let mut packages = Vec::new();
    let mut devices = Vec::new();
    // This user's other devices come along.
    let own = people::resolve(&session.client, &session.contents.user_id.clone()).await?;
    let (claimed, ids) = claim(session, &device, &own).await?;
    packages.extend(claimed);
    devices.extend(ids);
    for colleague in &colleagues {
        let (claimed, ids) = claim(session, &device, colleague).await?;
        if claimed.is_empty() {
            return Err(CliError::NoKeyPackages(printable(&colleague.display_name)));
        }
        packages.extend(claimed);
        devices.extend(ids);
    }
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| CliError::BadKey)?;
    let thread_id: String = id.iter().map(|byte| format!("{byte:02x}")).collect();
    let (epoch, welcome) = device.create(&thread_id, &packages)?;
    session
        .client
        .create_thread(&NewThread {
            thread_id: thread_id.clone(),
            epoch,
            devices,
            welcome: Blob(welcome),
        })
        .await?;
    session
        .contents
        .threads
        .insert(thread_id.clone(), ThreadState::default());
    save(session, &device)?;
    if let Some(subject) = subject.map(str::trim).filter(|subject| !subject.is_empty()) {
        send_content(
            session,
            &device,
            &thread_id,
            &Content::Subject {
                subject: subject.to_owned(),
            },
        )
        .await?;
    }
    let names: Vec<String> = colleagues
        .iter()
        .map(|entry| printable(&entry.display_name))
        .collect();
    let note = role_note.map_or_else(String::new, |note| format!(" ({note})"));
    Ok(format!(
        "Created thread {thread_id} with {}{note}",
        names.join(", ")
    ))
}

/// `curbside thread add THREAD USER` and `thread remove THREAD USER`.
pub async fn change_members(
    session: &mut Session,
    thread: &str,
    user: &str,
    add: bool,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    still_in(session, &thread_id).await?;
    let target = people::resolve(&session.client, user).await?;
    let name = printable(&target.display_name);
    if !add && target.user_id == session.contents.user_id {
        return Err(CliError::RemoveSelf);
    }
    if add {
        // Someone who left (or was deactivated) is still in the group
        // until a commit removes them: if the server no longer counts them
        // a member, their old devices are removed first, then they are
        // added afresh.
        let in_group = device
            .members(&thread_id)?
            .iter()
            .any(|member| member.user_id == target.user_id);
        if in_group {
            let detail = session.client.thread(&thread_id).await?;
            if detail
                .members
                .iter()
                .any(|member| member.user_id == target.user_id)
            {
                return Err(CliError::AlreadyMember(name));
            }
            match commit_change(session, &device, &thread_id, &target, false).await {
                // Another member removed them meanwhile.
                Ok(()) | Err(CliError::NotInThread(_)) => {}
                Err(error) => return Err(error),
            }
        }
    }
    commit_change(session, &device, &thread_id, &target, add).await?;
    if add {
        // Newcomers read nothing from before they joined: tell them the
        // subject.
        let subject = session
            .contents
            .threads
            .get(&thread_id)
            .and_then(|state| state.subject.clone());
        if let Some(subject) = subject {
            send_content(session, &device, &thread_id, &Content::Subject { subject }).await?;
        }
    }
    Ok(format!(
        "{} {name} {} {}",
        if add { "Added" } else { "Removed" },
        if add { "to" } else { "from" },
        thread_name(session, &thread_id)
    ))
}

/// Commits adding every device of `target` to the thread, or removing
/// every one of theirs in its group; catches up and tries again if another
/// member committed first.
async fn commit_change(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    target: &curbside_proto::identity::DirectoryEntry,
    add: bool,
) -> Result<(), CliError> {
    let name = printable(&target.display_name);
    for _ in 0..COMMIT_ATTEMPTS {
        sync(session, device, thread_id).await?;
        let members = device.members(thread_id)?;
        let (packages, added, removed) = if add {
            if members
                .iter()
                .any(|member| member.user_id == target.user_id)
            {
                return Err(CliError::AlreadyMember(name));
            }
            let (packages, devices) = claim(session, device, target).await?;
            if packages.is_empty() {
                return Err(CliError::NoKeyPackages(name));
            }
            (packages, devices, Vec::new())
        } else {
            let removed: Vec<String> = members
                .into_iter()
                .filter(|member| member.user_id == target.user_id)
                .map(|member| member.device_id)
                .collect();
            if removed.is_empty() {
                return Err(CliError::NotInThread(name));
            }
            (Vec::new(), Vec::new(), removed)
        };
        if commit_planned(session, device, thread_id, &packages, added, removed).await? {
            return Ok(());
        }
    }
    Err(CliError::Busy(thread_id.to_owned()))
}

/// Commits adding the devices of `packages` (`added`, in order) and
/// removing `removed`, once: true if the server took it, false if another
/// member committed first (catch up and plan again).
pub(super) async fn commit_planned(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    packages: &[KeyPackage],
    added: Vec<String>,
    removed: Vec<String>,
) -> Result<bool, CliError> {
    let before = device.members(thread_id)?;
    let pending = device.commit(thread_id, packages, &removed)?;
    save(session, device)?;
    let change = MembershipChange {
        add: added,
        remove: removed,
    };
    let result = session
        .client
        .commit(
            thread_id,
            &CommitRequest {
                epoch: pending.epoch,
                commit: Blob(pending.commit),
                change: change.clone(),
                welcome: pending.welcome.map(Blob),
            },
        )
        .await;
    match result {
        Ok(appended) => {
            let processed = session
                .contents
                .threads
                .get(thread_id)
                .map_or(0, |state| state.processed_seq);
            if appended.seq == processed + 1 {
                device.commit_accepted(thread_id)?;
                if let Some(state) = session.contents.threads.get_mut(thread_id) {
                    let entry = ThreadEntry {
                        seq: appended.seq,
                        kind: EntryKind::Commit,
                        epoch: pending.epoch,
                        sender_user: session.contents.user_id.clone(),
                        sender_device: session.contents.device_id.clone(),
                        created_at_ms: crate::clock::now_ms(),
                        body: Blob(Vec::new()),
                        change: Some(change),
                        recalls: None,
                        lifespan_s: None,
                        purged_at_ms: None,
                        urgent: false,
                    };
                    record_change(device, thread_id, state, &entry, &before)?;
                    state.processed_seq = appended.seq;
                }
                save(session, device)?;
            } else {
                // Messages came in at this epoch before the commit:
                // they are read first, and the commit applied when the
                // catch-up reaches it.
                sync(session, device, thread_id).await?;
            }
            Ok(true)
        }
        Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::CONFLICT => {
            // Another member committed first: catch up and try again.
            device.commit_refused(thread_id)?;
            save(session, device)?;
            Ok(false)
        }
        // The server said no: drop the commit.
        Err(error @ ClientError::Api { .. }) => {
            device.commit_refused(thread_id)?;
            save(session, device)?;
            Err(error.into())
        }
        // No answer: the server may have taken it. The commit stays
        // pending; the next command applies it if the log has it.
        Err(error) => Err(error.into()),
    }
}

/// `curbside thread leave THREAD`: this user leaves the thread, on all
/// their devices; its history stays in the profile, marked as left.
pub async fn leave(session: &mut Session, thread: &str) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    still_in(session, &thread_id).await?;
    match session.client.leave_thread(&thread_id).await {
        Ok(()) => {}
        Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
            // Ended meanwhile: say how.
            sync(session, &device, &thread_id).await?;
            still_in(session, &thread_id).await?;
        }
        Err(error) => return Err(error.into()),
    }
    if let Some(state) = session.contents.threads.get_mut(&thread_id) {
        state.left = Some(LeftThread {
            at_ms: crate::clock::now_ms(),
            by_user: Some(session.contents.user_id.clone()),
            reason: "left".to_owned(),
        });
    }
    save(session, &device)?;
    Ok(format!(
        "You left {}; its history stays on this device",
        thread_name(session, &thread_id)
    ))
}
