//! `curbside threads`, `thread new|add|remove`, `send`, `read` and
//! `safety-number`: MLS threads as a clinician uses them.
//!
//! Every command first catches up: it joins the threads it was welcomed
//! to, processes what is new in the thread it touches, and tops up its key
//! packages. Decrypted messages are kept in the profile's encrypted store
//! (MLS keys are used once, so a message cannot be decrypted twice), as is
//! OpenMLS's state, so every command can run as its own process.

use std::io::Read;

use curbside_proto::identity::Directory;
use curbside_proto::threads::{
    Blob, CommitRequest, Event, KeyPackageUpload, MembershipChange, MessageRequest, NewThread,
};
use openmls::prelude::KeyPackage;

use crate::cli::{CliError, Session};
use crate::client::{ClientError, printable};
use crate::mls::{Device, MlsError, Processed};
use crate::store::{MlsValue, StoredMessage, ThreadState};

/// Top up key packages when fewer than this many are left.
const LOW_WATER: u32 = 10;
/// How many to upload then.
const BATCH: usize = 30;
/// How often a commit is retried after losing the epoch race.
const COMMIT_ATTEMPTS: usize = 5;

impl From<MlsError> for CliError {
    fn from(error: MlsError) -> Self {
        CliError::Mls(error)
    }
}

/// The device's MLS state, loaded from the profile.
fn device(session: &Session) -> Result<Device, CliError> {
    let contents = &session.contents;
    Ok(Device::new(
        &contents.user_id,
        &contents.device_id,
        &contents.device_key_pkcs8,
        contents
            .mls_state
            .iter()
            .map(|value| (value.key.clone(), value.value.clone()))
            .collect(),
    )?)
}

/// Saves the device's MLS state into the profile.
fn save(session: &mut Session, device: &Device) -> Result<(), CliError> {
    session.contents.mls_state = device
        .state()
        .into_iter()
        .map(|(key, value)| MlsValue { key, value })
        .collect();
    session.save()
}

/// Signs in if needed, joins welcomed threads and tops up key packages.
async fn catch_up(session: &mut Session) -> Result<Device, CliError> {
    let count = session
        .call(async |client| client.key_package_count().await)
        .await?;
    let device = device(session)?;
    if count.available < LOW_WATER || !count.last_resort {
        let last_resort = if count.last_resort {
            None
        } else {
            device.key_packages(1, true)?.pop().map(Blob)
        };
        let packages = device.key_packages(BATCH, false)?;
        // Their private keys are kept before the server hands them out.
        save(session, &device)?;
        session
            .client
            .upload_key_packages(&KeyPackageUpload {
                packages: packages.into_iter().map(Blob).collect(),
                last_resort,
            })
            .await?;
    }
    for welcome in session.client.welcomes().await?.welcomes {
        match device.join(&welcome.welcome.0) {
            // Every member's credential must match the directory; a thread
            // whose members do not is left alone, with a warning.
            Ok(thread_id) => match check_members(session, &device, &thread_id).await {
                Ok(()) => {
                    session.contents.threads.insert(
                        thread_id,
                        ThreadState {
                            processed_seq: welcome.joined_seq,
                            messages: Vec::new(),
                        },
                    );
                }
                Err(error) => eprintln!(
                    "curbside: not joining thread {}: {error}",
                    printable(&thread_id)
                ),
            },
            Err(error) => eprintln!("curbside: a welcome could not be used: {error}"),
        }
        session.client.ack_welcome(&welcome.welcome_id).await?;
    }
    save(session, &device)?;
    Ok(device)
}

/// The directory's entries for these users, looked up one by one (the
/// search lists at most 200 people); users not active are left out.
async fn known_users(
    session: &Session,
    users: impl IntoIterator<Item = String>,
) -> Result<Directory, CliError> {
    let mut wanted: Vec<String> = users.into_iter().collect();
    wanted.sort();
    wanted.dedup();
    let mut entries = Vec::with_capacity(wanted.len());
    for user in wanted {
        match session.client.directory_user(&user).await {
            Ok(entry) => entries.push(entry),
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Directory {
        entries,
        next: None,
    })
}

/// `user`'s name as the directory gives it, else the id.
fn display_name(directory: &Directory, user: &str) -> String {
    directory
        .entries
        .iter()
        .find(|entry| entry.user_id == user)
        .map_or_else(|| user.to_owned(), |entry| printable(&entry.display_name))
}

/// Checks every member of `thread_id`'s group against the directory: an
/// active user, that user's enrolled device, and its enrolled key.
async fn check_members(
    session: &Session,
    device: &Device,
    thread_id: &str,
) -> Result<(), CliError> {
    let members = device.members(thread_id)?;
    let directory = known_users(session, members.iter().map(|m| m.user_id.clone())).await?;
    for member in members {
        let listed = directory
            .entries
            .iter()
            .filter(|entry| entry.user_id == member.user_id)
            .flat_map(|entry| entry.devices.iter())
            .find(|listed| listed.device_id == member.device_id);
        let own = member.device_id == session.contents.device_id;
        match listed {
            Some(listed) if listed.public_key == member.public_key => {}
            Some(_) => return Err(CliError::CredentialMismatch(member.device_id)),
            None if own => {
                if member.user_id != session.contents.user_id
                    || member.public_key != own_public_key(session)?
                {
                    return Err(CliError::CredentialMismatch(member.device_id));
                }
            }
            // Removed, or its user deactivated: still in the group until a
            // member's commit removes it.
            None => eprintln!(
                "curbside: device {} of thread {} is no longer enrolled; remove it with \
                 `curbside thread remove`",
                printable(&member.device_id),
                printable(thread_id)
            ),
        }
    }
    Ok(())
}

/// This device's enrolled public key.
fn own_public_key(session: &Session) -> Result<Vec<u8>, CliError> {
    use ring::signature::KeyPair;
    let key = ring::signature::Ed25519KeyPair::from_pkcs8(&session.contents.device_key_pkcs8)
        .map_err(|_| CliError::BadKey)?;
    Ok(key.public_key().as_ref().to_vec())
}

/// Processes everything new in `thread_id`.
async fn sync(session: &mut Session, device: &Device, thread_id: &str) -> Result<(), CliError> {
    let mut state = session
        .contents
        .threads
        .get(thread_id)
        .cloned()
        .ok_or_else(|| CliError::UnknownThread(thread_id.to_owned()))?;
    loop {
        let page = session
            .client
            .entries(thread_id, state.processed_seq, 500)
            .await?;
        let done = page.entries.is_empty();
        for entry in page.entries {
            if entry.sender_device == session.contents.device_id {
                // Own messages were kept when sent. An own commit the
                // server took while this device did not hear back (a
                // timeout, a crash) is applied now.
                if entry.kind == curbside_proto::threads::EntryKind::Commit
                    && device.has_pending_commit(thread_id)
                {
                    device.commit_accepted(thread_id)?;
                }
                state.processed_seq = entry.seq;
                continue;
            }
            let declared = entry
                .change
                .as_ref()
                .map(|change| (change.add.as_slice(), change.remove.as_slice()));
            let processed =
                device.process(thread_id, &entry.sender_device, &entry.body.0, declared);
            state.processed_seq = entry.seq;
            match processed {
                Ok(Processed::Message { sender, plaintext }) => {
                    state.messages.push(StoredMessage {
                        seq: entry.seq,
                        sender_user: sender.user_id,
                        time_ms: entry.created_at_ms,
                        text: String::from_utf8_lossy(&plaintext).into_owned(),
                    });
                }
                Ok(Processed::Commit { .. }) => {
                    session
                        .contents
                        .threads
                        .insert(thread_id.to_owned(), state.clone());
                    save(session, device)?;
                    check_members(session, device, thread_id).await?;
                }
                Err(error) if entry.kind == curbside_proto::threads::EntryKind::Commit => {
                    // A commit that cannot be applied leaves this device
                    // behind the group: stop rather than go on out of step.
                    return Err(error.into());
                }
                Err(error) => {
                    eprintln!("curbside: entry {} could not be read: {error}", entry.seq);
                    state.messages.push(StoredMessage {
                        seq: entry.seq,
                        sender_user: entry.sender_user.clone(),
                        time_ms: entry.created_at_ms,
                        text: "[this message could not be decrypted]".to_owned(),
                    });
                }
            }
        }
        if done || state.processed_seq >= page.last_seq {
            break;
        }
    }
    let processed = state.processed_seq;
    // Own messages are kept when sent, possibly before others' that the
    // log puts ahead of them.
    state.messages.sort_by_key(|message| message.seq);
    session.contents.threads.insert(thread_id.to_owned(), state);
    save(session, device)?;
    // The delivery receipt: this device has processed the log up to here.
    if processed > 0 {
        session.client.receipt(thread_id, processed, false).await?;
    }
    Ok(())
}

/// `USER` as a user id: itself if it is one, else the one active user the
/// directory finds for it.
async fn user_id(session: &Session, user: &str) -> Result<String, CliError> {
    if user.len() == 32 && user.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(user.to_ascii_lowercase());
    }
    let found = session.client.directory(user).await?.entries;
    match found.as_slice() {
        [one] => Ok(one.user_id.clone()),
        [] => Err(CliError::NoSuchUser(user.to_owned())),
        _ => Err(CliError::AmbiguousUser(user.to_owned())),
    }
}

/// Claims a package for each device of `user` (but this one), checking
/// each against the directory: the user, the device, its enrolled key.
async fn claim(
    session: &Session,
    device: &Device,
    user: &str,
) -> Result<(Vec<KeyPackage>, Vec<String>), CliError> {
    let claimed = session.client.claim_key_packages(user).await?;
    let directory = known_users(session, [user.to_owned()]).await?;
    let mut packages = Vec::new();
    let mut devices = Vec::new();
    for claimed in claimed.packages {
        let (package, identity) = device.read_key_package(&claimed.key_package.0)?;
        let listed = directory
            .entries
            .iter()
            .filter(|entry| entry.user_id == user && identity.user_id == user)
            .flat_map(|entry| entry.devices.iter())
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

/// Encrypts and sends `text`; keeps it in the local history.
async fn send_text(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    text: &str,
) -> Result<u64, CliError> {
    let (epoch, ciphertext) = device.encrypt(thread_id, text.as_bytes())?;
    // The ratchet moved on: keep that before the message leaves.
    save(session, device)?;
    let appended = session
        .client
        .send_message(
            thread_id,
            &MessageRequest {
                epoch,
                ciphertext: Blob(ciphertext),
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
        state.messages.push(StoredMessage {
            seq: appended.seq,
            sender_user: user,
            time_ms: crate::cli::now_ms(),
            text: text.to_owned(),
        });
    }
    save(session, device)?;
    Ok(appended.seq)
}

/// `curbside thread new --with USER[,USER…] [--subject TEXT]`.
pub async fn new_thread(
    session: &mut Session,
    with: &[String],
    subject: Option<&str>,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let mut packages = Vec::new();
    let mut devices = Vec::new();
    let mut users = vec![session.contents.user_id.clone()];
    for user in with {
        users.push(user_id(session, user).await?);
    }
    users.sort();
    users.dedup();
    for user in &users {
        let (claimed, ids) = claim(session, &device, user).await?;
        if claimed.is_empty() && *user != session.contents.user_id {
            return Err(CliError::NoKeyPackages(user.clone()));
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
    if let Some(subject) = subject {
        send_text(session, &device, &thread_id, &format!("Subject: {subject}")).await?;
    }
    Ok(format!("Created thread {thread_id}"))
}

/// `curbside thread add THREAD USER` and `thread remove THREAD USER`.
pub async fn change_members(
    session: &mut Session,
    thread_id: &str,
    user: &str,
    add: bool,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let user = user_id(session, user).await?;
    for _ in 0..COMMIT_ATTEMPTS {
        sync(session, &device, thread_id).await?;
        let (packages, added, removed) = if add {
            let (packages, devices) = claim(session, &device, &user).await?;
            if packages.is_empty() {
                return Err(CliError::NoKeyPackages(user));
            }
            (packages, devices, Vec::new())
        } else {
            let removed: Vec<String> = device
                .members(thread_id)?
                .into_iter()
                .filter(|member| member.user_id == user)
                .map(|member| member.device_id)
                .collect();
            if removed.is_empty() {
                return Err(CliError::NotInThread(user));
            }
            (Vec::new(), Vec::new(), removed)
        };
        let pending = device.commit(thread_id, &packages, &removed)?;
        save(session, &device)?;
        let result = session
            .client
            .commit(
                thread_id,
                &CommitRequest {
                    epoch: pending.epoch,
                    commit: Blob(pending.commit),
                    change: MembershipChange {
                        add: added,
                        remove: removed,
                    },
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
                        state.processed_seq = appended.seq;
                    }
                    save(session, &device)?;
                } else {
                    // Messages came in at this epoch before the commit:
                    // they are read first, and the commit applied when the
                    // catch-up reaches it.
                    sync(session, &device, thread_id).await?;
                }
                return Ok(format!(
                    "{} {user} {} thread {thread_id}",
                    if add { "Added" } else { "Removed" },
                    if add { "to" } else { "from" }
                ));
            }
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::CONFLICT => {
                // Another member committed first: catch up and try again.
                device.commit_refused(thread_id)?;
                save(session, &device)?;
            }
            // The server said no: drop the commit.
            Err(error @ ClientError::Api { .. }) => {
                device.commit_refused(thread_id)?;
                save(session, &device)?;
                return Err(error.into());
            }
            // No answer: the server may have taken it. The commit stays
            // pending; the next command applies it if the log has it.
            Err(error) => return Err(error.into()),
        }
    }
    Err(CliError::Busy(thread_id.to_owned()))
}

/// `curbside thread leave THREAD`: this user leaves the thread; its
/// history stays in the profile, and it is no longer caught up.
pub async fn leave(session: &mut Session, thread_id: &str) -> Result<String, CliError> {
    session
        .call(async |client| client.leave_thread(thread_id).await)
        .await?;
    session.contents.threads.remove(thread_id);
    session.save()?;
    Ok(format!("Left thread {thread_id}"))
}

/// The text of `curbside send THREAD [TEXT]`: `TEXT`, or standard input
/// without it (read before the profile is opened, so that no other command
/// waits on someone typing).
pub fn message_text(text: Option<&str>) -> Result<String, CliError> {
    let text = match text {
        Some(text) => text.to_owned(),
        None => {
            let mut text = String::new();
            std::io::stdin()
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

/// `curbside send THREAD TEXT`.
pub async fn send(session: &mut Session, thread_id: &str, text: &str) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    for _ in 0..COMMIT_ATTEMPTS {
        sync(session, &device, thread_id).await?;
        match send_text(session, &device, thread_id, text).await {
            Err(CliError::Client(ClientError::Api { status, .. }))
                if status == reqwest::StatusCode::CONFLICT => {}
            result => return result.map(|seq| format!("Sent ({seq})")),
        }
    }
    Err(CliError::Busy(thread_id.to_owned()))
}

/// `curbside read THREAD`: the thread's messages; marks them read.
pub async fn read(session: &mut Session, thread_id: &str) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    sync(session, &device, thread_id).await?;
    let state = session
        .contents
        .threads
        .get(thread_id)
        .cloned()
        .unwrap_or_default();
    let senders = state.messages.iter().map(|m| m.sender_user.clone());
    let directory = known_users(session, senders.collect::<Vec<_>>()).await?;
    let name = |user: &str| display_name(&directory, user);
    if state.processed_seq > 0 {
        session
            .client
            .receipt(thread_id, state.processed_seq, true)
            .await?;
    }
    if state.messages.is_empty() {
        return Ok("No messages yet.".to_owned());
    }
    Ok(state
        .messages
        .iter()
        .map(|message| {
            format!(
                "[{}] {}: {}",
                crate::audit::utc(message.time_ms),
                name(&message.sender_user),
                printable(&message.text)
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `curbside threads`: the device's threads with their unread counts.
pub async fn list(session: &mut Session) -> Result<String, CliError> {
    catch_up(session).await?;
    let threads = session.client.threads().await?.threads;
    if threads.is_empty() {
        return Ok("No threads.".to_owned());
    }
    Ok(threads
        .iter()
        .map(|thread| {
            format!(
                "{}  {} unread  (last entry {})",
                thread.thread_id, thread.unread, thread.last_seq
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `curbside safety-number USER`: a number both clinicians can read to
/// each other; it matches when each side sees the same device keys.
pub async fn safety_number(session: &mut Session, user: &str) -> Result<String, CliError> {
    session
        .call(async |client| client.key_package_count().await)
        .await?;
    let other = user_id(session, user).await?;
    let directory = known_users(session, [other.clone(), session.contents.user_id.clone()]).await?;
    let mut keys: Vec<(String, String, Vec<u8>)> = directory
        .entries
        .iter()
        .filter(|entry| entry.user_id == other || entry.user_id == session.contents.user_id)
        .flat_map(|entry| {
            entry.devices.iter().map(|device| {
                (
                    entry.user_id.clone(),
                    device.device_id.clone(),
                    device.public_key.clone(),
                )
            })
        })
        .collect();
    if !keys.iter().any(|(user, _, _)| *user == other) {
        return Err(CliError::NoSuchUser(user.to_owned()));
    }
    keys.sort();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"curbside safety number v1\n");
    for (user, device, key) in &keys {
        context.update(user.as_bytes());
        context.update(device.as_bytes());
        context.update(key);
    }
    let digest = context.finish();
    let groups: Vec<String> = digest
        .as_ref()
        .chunks(4)
        .take(6)
        .map(|chunk| {
            let value = chunk
                .iter()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte));
            format!("{:05}", value % 100_000)
        })
        .collect();
    Ok(format!(
        "Safety number with {other}:\n  {}\nRead it to each other; if it differs, do not use the thread and tell your administrator.",
        groups.join(" ")
    ))
}

/// `curbside watch`: prints each new message as it arrives, until
/// interrupted (or, with `--count N`, after N messages).
///
/// While it waits for the server it lets go of the profile, so that other
/// commands (`send`, `thread add`) can run beside it; it takes the profile
/// back, with what they saved, for each event it handles.
pub async fn watch(session: &mut Session, count: Option<usize>) -> Result<String, CliError> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut shown = 0usize;
    // What the store held at start is old; anything after it is printed
    // once, whichever command (this one, or a `send` or `read` beside it)
    // processed it.
    let mut printed: std::collections::BTreeMap<String, u64> = session
        .contents
        .threads
        .iter()
        .map(|(thread_id, state)| {
            let last = state.messages.iter().map(|message| message.seq).max();
            (thread_id.clone(), last.unwrap_or(0))
        })
        .collect();
    let mut socket = {
        let device = catch_up(session).await?;
        let socket = session.client.events().await?;
        // What arrived before the socket was open is read now; the rest as
        // it is pushed.
        let known: Vec<String> = session.contents.threads.keys().cloned().collect();
        for thread_id in known {
            sync(session, &device, &thread_id).await?;
            shown += print_new(session, &thread_id, &mut printed).await?;
        }
        socket
    };
    session.release();
    while count.is_none_or(|count| shown < count) {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = tokio::signal::ctrl_c() => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err(CliError::Disconnected),
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                return Err(ClientError::Unreachable {
                    server: session.client.server().to_string(),
                    detail: error.to_string(),
                }
                .into());
            }
        };
        let Ok(event) = curbside_proto::json::decode::<Event>(text.as_bytes()) else {
            continue;
        };
        match event {
            Event::Entry { thread_id, .. } => {
                session.resume().await?;
                if session.contents.threads.contains_key(&thread_id) {
                    let device = device(session)?;
                    sync(session, &device, &thread_id).await?;
                    shown += print_new(session, &thread_id, &mut printed).await?;
                }
                session.release();
            }
            Event::Welcome { welcome } => {
                session.resume().await?;
                catch_up(session).await?;
                session.release();
                println!("Added to thread {}", welcome.thread_id);
            }
            Event::Receipt { .. } => {}
        }
    }
    Ok(format!("Stopped watching after {shown} messages."))
}

/// Prints the stored messages of `thread_id` after the last one printed;
/// returns how many.
async fn print_new(
    session: &Session,
    thread_id: &str,
    printed: &mut std::collections::BTreeMap<String, u64>,
) -> Result<usize, CliError> {
    let Some(state) = session.contents.threads.get(thread_id) else {
        return Ok(0);
    };
    let last = printed.entry(thread_id.to_owned()).or_insert(0);
    let new: Vec<StoredMessage> = state
        .messages
        .iter()
        .filter(|message| message.seq > *last)
        .cloned()
        .collect();
    if let Some(newest) = new.iter().map(|message| message.seq).max() {
        *last = newest;
    }
    let directory = known_users(session, new.iter().map(|m| m.sender_user.clone())).await?;
    for message in &new {
        println!(
            "[{}] {} in {thread_id}: {}",
            crate::audit::utc(message.time_ms),
            display_name(&directory, &message.sender_user),
            printable(&message.text)
        );
    }
    Ok(new.len())
}
