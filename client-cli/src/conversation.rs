//! `curbside threads`, `thread new|add|remove|leave|show`, `send`, `read`,
//! `watch` and `safety-number`: MLS threads as a clinician uses them.
//!
//! Every command first catches up: it joins the threads it was welcomed
//! to (replacing the state of a thread it was removed from and is now
//! added back to), processes what is new in the thread it touches, and
//! tops up its key packages. Decrypted messages are kept in the profile's
//! encrypted store (MLS keys are used once, so a message cannot be
//! decrypted twice), as is OpenMLS's state, so every command can run as its
//! own process.
//!
//! A thread this device is no longer in is marked as left, with who ended
//! the membership, when and how; it never stops other threads or `watch`,
//! and every command that touches it says so in those words.

use std::io::{IsTerminal, Read};

use curbside_proto::content::Content;
use curbside_proto::threads::{
    Blob, CommitRequest, EndReason, EntryKind, Event, KeyPackageUpload, MembershipChange,
    MessageRequest, NewThread, ThreadEntry,
};
use openmls::prelude::KeyPackage;

use crate::client::ClientError;
use crate::error::CliError;
use crate::mls::{Device, Identity, Joined, MlsError, Processed};
use crate::people::{self, Names};
use crate::session::Session;
use crate::show::printable;
use crate::show::{short, text_block};
use crate::store::{LeftThread, MemberChange, MlsValue, StoredMessage, ThreadState};

/// Top up key packages when fewer than this many are left.
const LOW_WATER: u32 = 10;
/// How many to upload then.
const BATCH: usize = 30;
/// How often a commit is retried after losing the epoch race.
const COMMIT_ATTEMPTS: usize = 5;
/// The close code of an events socket whose session was ended (logout,
/// idle, removal): watching stops.
const SESSION_ENDED: u16 = 4401;
/// The close code of an events socket whose session's lifetime ran out:
/// sign in again and reconnect.
const SESSION_EXPIRED: u16 = 4402;
/// How often `watch` pings the server.
const WATCH_PING: std::time::Duration = std::time::Duration::from_secs(25);
/// How long `watch` waits to hear anything (a pong at least) before it
/// takes the connection for dead.
const WATCH_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a connection must hold before failures count from zero again.
const RECONNECT_RESET: std::time::Duration = std::time::Duration::from_secs(30);
/// How long `watch` waits before trying the server again, at most.
const RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

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
        let thread_id = welcome.thread_id.clone();
        let before = device.snapshot();
        let joined = device
            .join(&welcome.welcome.0, &thread_id, welcome.epoch)
            .map_err(CliError::from);
        // Every member's credential must match the directory; a thread
        // whose members do not is left alone, with a warning.
        let checked = match joined {
            Ok(Joined::Now) => check_members(session, &device, &thread_id)
                .await
                .map(|()| true),
            Ok(Joined::Already) => Ok(false),
            Err(error) => Err(error),
        };
        match checked {
            Ok(true) => {
                // Added (again): what was kept of the thread stays, and
                // reading starts after the commit that added this device.
                let state = session.contents.threads.entry(thread_id).or_default();
                state.processed_seq = welcome.joined_seq;
                state.left = None;
                // Kept before the server forgets the welcome.
                save(session, &device)?;
            }
            Ok(false) => {}
            // The directory could not be asked: the welcome stays for the
            // next command, and the others go on.
            Err(CliError::Client(error)) => {
                device.restore(before);
                eprintln!(
                    "curbside: thread {} will be joined later ({})",
                    short(&thread_id),
                    error.brief()
                );
                continue;
            }
            Err(error) => {
                device.restore(before);
                eprintln!(
                    "curbside: not joining thread {}: {error}",
                    printable(&thread_id)
                );
            }
        }
        session.client.ack_welcome(&welcome.welcome_id).await?;
    }
    save(session, &device)?;
    Ok(device)
}

/// Checks every member of `thread_id`'s group against the directory: an
/// active user, that user's enrolled device, and its enrolled key.
async fn check_members(
    session: &Session,
    device: &Device,
    thread_id: &str,
) -> Result<(), CliError> {
    let members = device.members(thread_id)?;
    let mut names = Names::default();
    for member in members {
        let own = member.device_id == session.contents.device_id;
        let listed = names
            .entry(&session.client, &member.user_id)
            .await?
            .and_then(|entry| {
                entry
                    .devices
                    .iter()
                    .find(|listed| listed.device_id == member.device_id)
            })
            .map(|listed| listed.public_key.clone());
        match listed {
            Some(key) if key == member.public_key => {}
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
                "curbside: a device of {} in this thread is no longer enrolled; remove them with \
                 `curbside thread remove {} USER`",
                names.of(&session.client, &member.user_id).await?,
                short(thread_id)
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

/// The id of the thread `given` names on this profile: its id, a unique
/// start of it (at least 6 digits), or its subject (case and accents
/// aside; a thread this device is in comes before ones it has left).
fn thread_id(session: &Session, given: &str) -> Result<String, CliError> {
    let given = given.trim();
    let threads = &session.contents.threads;
    if threads.contains_key(given) {
        return Ok(given.to_owned());
    }
    let lower = given.to_ascii_lowercase();
    let by_prefix: Vec<&String> = threads
        .keys()
        .filter(|id| lower.len() >= 6 && id.starts_with(&lower))
        .collect();
    if let [one] = by_prefix.as_slice() {
        return Ok((*one).clone());
    }
    let folded = curbside_proto::names::fold(given);
    let by_subject = |current: bool| -> Vec<&String> {
        threads
            .iter()
            .filter(|(_, state)| {
                state.left.is_none() == current
                    && state
                        .subject
                        .as_deref()
                        .is_some_and(|subject| curbside_proto::names::fold(subject) == folded)
            })
            .map(|(id, _)| id)
            .collect()
    };
    let current = by_subject(true);
    let matching = if current.is_empty() {
        by_subject(false)
    } else {
        current
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] if by_prefix.len() > 1 => Err(CliError::AmbiguousThread {
            given: printable(given),
            ids: by_prefix.iter().map(|id| printable(id)).collect(),
        }),
        [] => Err(CliError::UnknownThread(printable(given))),
        many => Err(CliError::AmbiguousThread {
            given: printable(given),
            ids: many.iter().map(|id| printable(id)).collect(),
        }),
    }
}

/// How a thread is named in a sentence: its subject in quotes, or its id.
fn thread_name(session: &Session, thread_id: &str) -> String {
    session
        .contents
        .threads
        .get(thread_id)
        .and_then(|state| state.subject.as_deref())
        .map_or_else(
            || format!("thread {}", short(thread_id)),
            |subject| format!("'{}'", printable(subject)),
        )
}

/// The sentence that says how this device's membership of `thread_id`
/// ended.
async fn how_it_ended(
    session: &Session,
    names: &mut Names,
    thread_id: &str,
    left: &LeftThread,
) -> Result<String, CliError> {
    let thread = thread_name(session, thread_id);
    // A membership that ended before servers kept the time says so.
    let when = if left.at_ms > 0 {
        format!("at {}", session.times.clock(left.at_ms))
    } else {
        "earlier".to_owned()
    };
    let by = match &left.by_user {
        Some(user) if *user == session.contents.user_id => "you".to_owned(),
        Some(user) => names.of(&session.client, user).await?,
        None => "an administrator".to_owned(),
    };
    Ok(match left.reason.as_str() {
        "removed" => format!("You were removed from {thread} by {by} {when}"),
        "left" => format!("You left {thread} {when}"),
        "deactivated" => format!(
            "You left {thread} {when}, when your account was deactivated by {by}; a member \
             can add you back"
        ),
        "device_removed" => {
            format!("This device was removed by {by} {when}, and so left {thread}")
        }
        _ => format!("You are no longer in {thread}"),
    })
}

/// Refuses to work on a thread this device has left, saying how.
async fn still_in(session: &Session, thread_id: &str) -> Result<(), CliError> {
    let Some(left) = session
        .contents
        .threads
        .get(thread_id)
        .and_then(|state| state.left.clone())
    else {
        return Ok(());
    };
    let sentence = how_it_ended(session, &mut Names::default(), thread_id, &left).await?;
    Err(CliError::NotAMember(format!(
        "{sentence}; ask a member to add you back if you need it"
    )))
}

/// The users of `identities`, each once, in order.
fn users_of(identities: &[Identity]) -> Vec<String> {
    let mut users: Vec<String> = identities.iter().map(|id| id.user_id.clone()).collect();
    users.sort();
    users.dedup();
    users
}

/// Processes everything new in `thread_id`: messages, subjects, changes
/// of members. A thread this device is no longer in is marked as left (the
/// server says how, or no longer shows it at all), never an error.
async fn sync(session: &mut Session, device: &Device, thread_id: &str) -> Result<(), CliError> {
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
        let before = state.processed_seq;
        for entry in &page.entries {
            // The log only moves forward: an entry at or before what was
            // processed is not processed twice.
            if entry.seq <= state.processed_seq {
                continue;
            }
            if let Err(error) = process(session, device, thread_id, &mut state, entry).await {
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
        match session.client.receipt(thread_id, processed, false).await {
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
            Content::Text { text } => state.messages.push(StoredMessage {
                seq: entry.seq,
                sender_user: sender.user_id,
                time_ms: entry.created_at_ms,
                text,
                change: None,
                subject: None,
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
            });
        }
    }
    Ok(())
}

/// Sets the subject of a thread to what `sender_user` sent; a change of an
/// earlier subject goes into the history, saying who made it.
fn set_subject(
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
        });
    }
    state.subject = Some(subject);
}

/// Records this device's own commit `entry`, just applied, as a change of
/// members: `before` were the members before it.
fn record_change(
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
    });
    Ok(())
}

/// Claims a package for each device of `user` (but this one), checking
/// each against the directory: the user, the device, its enrolled key.
async fn claim(
    session: &Session,
    device: &Device,
    user: &curbside_proto::identity::DirectoryEntry,
) -> Result<(Vec<KeyPackage>, Vec<String>), CliError> {
    let claimed = session.client.claim_key_packages(&user.user_id).await?;
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

/// Encrypts and sends `content`; keeps a text in the local history.
async fn send_content(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    content: &Content,
) -> Result<u64, CliError> {
    let (epoch, ciphertext) = device.encrypt(thread_id, &content.encode())?;
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
        match content {
            Content::Text { text } => state.messages.push(StoredMessage {
                seq: appended.seq,
                sender_user: user,
                time_ms: crate::clock::now_ms(),
                text: text.clone(),
                change: None,
                subject: None,
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

/// `curbside thread new --with USER[,USER…] [--subject TEXT]`.
pub async fn new_thread(
    session: &mut Session,
    with: &[String],
    subject: Option<&str>,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
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
    Ok(format!(
        "Created thread {thread_id} with {}",
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
    let thread_id = thread_id(session, thread)?;
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
        let before = device.members(thread_id)?;
        let pending = device.commit(thread_id, &packages, &removed)?;
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
                return Ok(());
            }
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::CONFLICT => {
                // Another member committed first: catch up and try again.
                device.commit_refused(thread_id)?;
                save(session, device)?;
            }
            // The server said no: drop the commit.
            Err(error @ ClientError::Api { .. }) => {
                device.commit_refused(thread_id)?;
                save(session, device)?;
                return Err(error.into());
            }
            // No answer: the server may have taken it. The commit stays
            // pending; the next command applies it if the log has it.
            Err(error) => return Err(error.into()),
        }
    }
    Err(CliError::Busy(thread_id.to_owned()))
}

/// `curbside thread leave THREAD`: this user leaves the thread, on all
/// their devices; its history stays in the profile, marked as left.
pub async fn leave(session: &mut Session, thread: &str) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let thread_id = thread_id(session, thread)?;
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

/// `curbside send THREAD TEXT`.
pub async fn send(session: &mut Session, thread: &str, text: &str) -> Result<String, CliError> {
    let content = Content::Text {
        text: text.to_owned(),
    };
    let (thread_id, seq) = send_to(session, thread, &content).await?;
    Ok(format!(
        "Sent to {} (entry {seq})",
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
async fn send_to(
    session: &mut Session,
    thread: &str,
    content: &Content,
) -> Result<(String, u64), CliError> {
    let device = catch_up(session).await?;
    let thread_id = thread_id(session, thread)?;
    for _ in 0..COMMIT_ATTEMPTS {
        sync(session, &device, &thread_id).await?;
        still_in(session, &thread_id).await?;
        match send_content(session, &device, &thread_id, content).await {
            Err(CliError::Client(ClientError::Api { status, .. }))
                if status == reqwest::StatusCode::CONFLICT
                    || status == reqwest::StatusCode::NOT_FOUND => {}
            result => return result.map(|seq| (thread_id, seq)),
        }
    }
    Err(CliError::Busy(thread_id))
}

/// One line (or block) of a thread's history, as people read it.
async fn history_line(
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
    let prefix = format!("[{when}] {sender}: ");
    let indent = " ".repeat(prefix.chars().count());
    Ok(format!("{prefix}{}", text_block(&message.text, &indent)))
}

/// The thread `thread` names, caught up with the server: its id and this
/// profile's state of it.
async fn synced(session: &mut Session, thread: &str) -> Result<(String, ThreadState), CliError> {
    let device = catch_up(session).await?;
    let thread_id = thread_id(session, thread)?;
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
pub async fn read(session: &mut Session, thread: &str) -> Result<String, CliError> {
    let (thread_id, state) = synced(session, thread).await?;
    if state.processed_seq > 0 && state.left.is_none() {
        session
            .client
            .receipt(&thread_id, state.processed_seq, true)
            .await?;
    }
    let mut names = Names::default();
    let mut lines = Vec::new();
    if let Some(subject) = &state.subject {
        lines.push(printable(subject));
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
    Ok(lines.join("\n"))
}

/// `curbside threads`: the device's threads with their subjects, members
/// and unread counts, then the threads it has left and how.
pub async fn list(session: &mut Session) -> Result<String, CliError> {
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
    for summary in &listed {
        let members = match session.client.thread(&summary.thread_id).await {
            Ok(detail) => {
                let mut users: Vec<String> = detail
                    .members
                    .iter()
                    .map(|member| member.user_id.clone())
                    .collect();
                users.dedup();
                names.list(&session.client, &users).await?
            }
            Err(_) => "members unknown".to_owned(),
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
        for (thread_id, ended) in left {
            lines.push(format!(
                "  {} · thread {}",
                how_it_ended(session, &mut names, &thread_id, &ended).await?,
                printable(&thread_id)
            ));
        }
    } else if listed.is_empty() {
        lines.push("No threads yet. Start one with `curbside thread new --with NAME`.".to_owned());
    }
    Ok(lines.join("\n"))
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
    }
    Ok(lines.join("\n"))
}

/// `curbside safety-number USER`: a number both clinicians can read to
/// each other; it matches when each side sees the same device keys.
pub async fn safety_number(session: &mut Session, user: &str) -> Result<String, CliError> {
    session
        .call(async |client| client.key_package_count().await)
        .await?;
    let other = people::resolve(&session.client, user).await?;
    let me = people::resolve(&session.client, &session.contents.user_id.clone()).await?;
    let mut keys: Vec<(String, String, Vec<u8>)> = [&other, &me]
        .into_iter()
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
    keys.sort();
    keys.dedup();
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
        "Safety number with {}:\n  {}\nRead it to each other; if it differs, do not use the thread and tell your administrator.",
        printable(&other.display_name),
        groups.join(" ")
    ))
}

/// What `watch` has printed so far: each thread's last sequence shown.
type Printed = std::collections::BTreeMap<String, u64>;

/// `curbside watch`: prints each new message as it arrives, until
/// interrupted (or, with `--count N`, after N messages).
///
/// While it waits for the server it lets go of the profile, so that other
/// commands (`send`, `thread add`) can run beside it; it takes the profile
/// back, with what they saved, for each event it handles. When the
/// session ends (its token expires, say) or the server goes away, it signs
/// in again and reconnects by itself, waiting longer each time (up to
/// 30 s), and catches up on what it missed.
pub async fn watch(session: &mut Session, count: Option<usize>) -> Result<String, CliError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut shown = 0usize;
    // What the store held at start is old; anything after it is printed
    // once, whichever command (this one, or a `send` or `read` beside it)
    // processed it.
    let mut printed: Printed = session
        .contents
        .threads
        .iter()
        .map(|(thread_id, state)| {
            let last = state.messages.iter().map(|message| message.seq).max();
            (thread_id.clone(), last.unwrap_or(0))
        })
        .collect();
    let mut backoff = Backoff::default();
    // Once signed in, a profile with no session was logged out (by
    // `curbside logout` beside this): watching stops rather than sign in
    // again behind the user's back.
    let mut signed_in = false;
    // Whether the server said the session's lifetime ran out (sign in
    // again without asking whether it was ended).
    let mut expired = false;
    'connect: while count.is_none_or(|count| shown < count) {
        if let Some(pause) = backoff.pause() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = tokio::signal::ctrl_c() => break 'connect,
            }
        }
        session.resume().await?;
        if signed_in && session.contents.session.is_none() {
            session.release();
            return Ok(format!(
                "Stopped watching after {shown} messages: this profile was logged out."
            ));
        }
        let opened = async {
            // A session ended while no socket was open (automatic logoff
            // during a network outage, say) is not quietly replaced: only
            // one whose lifetime ran out is.
            if signed_in && !std::mem::take(&mut expired) && ended_meanwhile(session).await? {
                return Err(CliError::SessionEnded);
            }
            let device = catch_up(session).await?;
            let socket = session.client.events().await?;
            // What arrived while not connected is read now; the rest as it
            // is pushed.
            let mut caught_up = 0;
            let known: Vec<String> = session.contents.threads.keys().cloned().collect();
            for thread_id in known {
                caught_up += catch_up_thread(session, &device, &thread_id, &mut printed).await?;
            }
            Ok::<_, CliError>((socket, caught_up))
        }
        .await;
        session.release();
        let mut socket = match opened {
            Ok((socket, caught_up)) => {
                shown += caught_up;
                signed_in = true;
                socket
            }
            Err(CliError::Client(error)) if error.is_transient() => {
                eprintln!(
                    "curbside: {}; trying again in {} s",
                    error.brief(),
                    backoff.next().as_secs()
                );
                continue 'connect;
            }
            Err(CliError::SessionEnded) => return Ok(ended(shown)),
            Err(error) => return Err(error),
        };
        backoff.connected();
        let mut ping = tokio::time::interval(WATCH_PING);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut heard = tokio::time::Instant::now();
        while count.is_none_or(|count| shown < count) {
            let frame = tokio::select! {
                frame = socket.next() => frame,
                _ = ping.tick() => {
                    // A connection that stopped answering (a laptop's
                    // network changed, say) is noticed and replaced.
                    let pinged = tokio::time::timeout(
                        WATCH_PING,
                        socket.send(Message::Ping(Vec::new().into())),
                    );
                    if heard.elapsed() > WATCH_SILENCE || !matches!(pinged.await, Ok(Ok(()))) {
                        eprintln!(
                            "curbside: the server stopped answering; reconnecting in {} s",
                            backoff.next().as_secs()
                        );
                        continue 'connect;
                    }
                    continue;
                }
                _ = tokio::signal::ctrl_c() => break 'connect,
            };
            heard = tokio::time::Instant::now();
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(Some(close)))) => match u16::from(close.code) {
                    // Only the session's lifetime ran out: sign in again
                    // and reconnect at once.
                    SESSION_EXPIRED => {
                        backoff.now();
                        expired = true;
                        continue 'connect;
                    }
                    SESSION_ENDED => return Ok(ended(shown)),
                    _ => {
                        eprintln!(
                            "curbside: the server closed the connection; reconnecting in {} s",
                            backoff.next().as_secs()
                        );
                        continue 'connect;
                    }
                },
                Some(Ok(Message::Close(None)) | Err(_)) | None => {
                    // The server went away: reconnect, waiting a little.
                    eprintln!(
                        "curbside: the connection to the server ended; reconnecting in {} s",
                        backoff.next().as_secs()
                    );
                    continue 'connect;
                }
                Some(Ok(_)) => continue,
            };
            let Ok(event) = curbside_proto::json::decode::<Event>(text.as_bytes()) else {
                continue;
            };
            // Receipts change nothing this command shows: the profile is
            // not opened for them.
            if matches!(event, Event::Receipt { .. }) {
                continue;
            }
            session.resume().await?;
            if session.contents.session.is_none() {
                session.release();
                return Ok(format!(
                    "Stopped watching after {shown} messages: this profile was logged out."
                ));
            }
            let handled = match event {
                Event::Entry { thread_id, .. } => {
                    async {
                        if session.contents.threads.contains_key(&thread_id) {
                            let device = device(session)?;
                            catch_up_thread(session, &device, &thread_id, &mut printed).await
                        } else {
                            Ok(0)
                        }
                    }
                    .await
                }
                Event::Welcome { welcome } => catch_up(session).await.map(|_| {
                    let joined = session
                        .contents
                        .threads
                        .get(&welcome.thread_id)
                        .is_some_and(|state| state.left.is_none());
                    if joined {
                        println!(
                            "You were added to {}.",
                            thread_name(session, &welcome.thread_id)
                        );
                    }
                    0
                }),
                Event::Receipt { .. } => Ok(0),
            };
            session.release();
            // Handling may have taken a while (waiting for the profile, a
            // long catch-up): that is not the server's silence.
            heard = tokio::time::Instant::now();
            match handled {
                Ok(new) => shown += new,
                Err(CliError::Client(error)) if error.is_transient() => {
                    eprintln!(
                        "curbside: {}; reconnecting in {} s",
                        error.brief(),
                        backoff.next().as_secs()
                    );
                    continue 'connect;
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(format!("Stopped watching after {shown} messages."))
}

/// What `watch` says when it stops because the session was ended.
fn ended(shown: usize) -> String {
    format!(
        "Stopped watching after {shown} messages: the session was ended (logged out, idle for \
         too long, or this device or its user was removed). Run `curbside watch` again to go on."
    )
}

/// Whether the stored session, still within its lifetime, was ended by the
/// server (a 401 to a request that does not sign in again).
async fn ended_meanwhile(session: &Session) -> Result<bool, CliError> {
    let within_lifetime = session
        .contents
        .session
        .as_ref()
        .is_some_and(|stored| stored.expires_at_ms > crate::clock::now_ms() + 60_000);
    if !within_lifetime {
        return Ok(false);
    }
    match session.client.whoami().await {
        Ok(_) => Ok(false),
        Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::UNAUTHORIZED => {
            Ok(true)
        }
        Err(error) => Err(error.into()),
    }
}

/// How long `watch` waits before connecting again: nothing at first, then
/// 1 s, doubling to [`RECONNECT_MAX`]; back to nothing only once a
/// connection has held for a while (a server that accepts and at once
/// drops is not hammered).
#[derive(Debug, Default)]
struct Backoff {
    pause: Option<std::time::Duration>,
    connected_at: Option<std::time::Instant>,
    failures: u32,
}

impl Backoff {
    /// The pause before this attempt, if any.
    fn pause(&self) -> Option<std::time::Duration> {
        self.pause.filter(|pause| !pause.is_zero())
    }

    /// A connection was made.
    fn connected(&mut self) {
        self.connected_at = Some(std::time::Instant::now());
        self.pause = None;
    }

    /// Reconnect at once (nothing went wrong).
    fn now(&mut self) {
        self.pause = None;
    }

    /// Something failed: the pause before the next attempt.
    fn next(&mut self) -> std::time::Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|at| at.elapsed() > RECONNECT_RESET)
        {
            self.failures = 0;
        }
        let pause = RECONNECT_MAX.min(std::time::Duration::from_secs(1 << self.failures.min(5)));
        self.failures += 1;
        self.pause = Some(pause);
        pause
    }
}

/// Processes what is new in `thread_id` and prints it (a thread that cannot
/// be caught up is reported, and the others go on); returns how many
/// messages it printed.
async fn catch_up_thread(
    session: &mut Session,
    device: &Device,
    thread_id: &str,
    printed: &mut Printed,
) -> Result<usize, CliError> {
    let was_in = session
        .contents
        .threads
        .get(thread_id)
        .is_some_and(|state| state.left.is_none());
    match sync(session, device, thread_id).await {
        Ok(()) => {}
        Err(CliError::Client(error)) => return Err(CliError::Client(error)),
        Err(error) => {
            eprintln!(
                "curbside: {} could not be caught up: {error}",
                thread_name(session, thread_id)
            );
            return Ok(0);
        }
    }
    let shown = print_new(session, thread_id, printed).await?;
    let left = session
        .contents
        .threads
        .get(thread_id)
        .and_then(|state| state.left.clone());
    if let Some(left) = left
        && was_in
    {
        println!(
            "{}.",
            how_it_ended(session, &mut Names::default(), thread_id, &left).await?
        );
    }
    Ok(shown)
}

/// Prints the stored messages of `thread_id` after the last one printed;
/// returns how many.
async fn print_new(
    session: &Session,
    thread_id: &str,
    printed: &mut Printed,
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
    let mut names = Names::default();
    let mut shown = 0;
    for message in &new {
        println!(
            "{} — {}",
            thread_name(session, thread_id),
            history_line(session, &mut names, message).await?
        );
        if message.is_text() {
            shown += 1;
        }
    }
    Ok(shown)
}
