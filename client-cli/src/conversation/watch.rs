//! `curbside watch`: new messages printed as the server pushes them, with
//! the profile let go between events, and reconnection (signing in again
//! if need be) when the connection or the session ends.

use curbside_proto::threads::Event;

use curbside_proto::clinical::UrgentStage;

use super::device::{catch_up, device};
use super::heal::heal_with;
use super::naming::{how_it_ended, thread_name};
use super::read::history_line;
use super::sync::sync;
use crate::client::ClientError;
use crate::error::CliError;
use crate::mls::Device;
use crate::people::Names;
use crate::session::Session;
use crate::store::StoredMessage;

/// The close code of an events socket whose session was ended (logout,
/// idle, removal): watching stops.
const SESSION_ENDED: u16 = 4401;
/// The close code of an events socket whose session's lifetime ran out:
/// sign in again and reconnect.
const SESSION_EXPIRED: u16 = 4402;
/// The close code of an events socket whose user has a new messaging
/// policy version to accept.
const POLICY_NOT_ACCEPTED: u16 = 4403;
/// How often `watch` pings the server.
const WATCH_PING: std::time::Duration = std::time::Duration::from_secs(25);
/// How long `watch` waits to hear anything (a pong at least) before it
/// takes the connection for dead.
const WATCH_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);
/// How often `watch` asks the server which devices to add or remove, at
/// most, as messages come (an urgent alert asks at once).
const HEAL_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a connection must hold before failures count from zero again.
const RECONNECT_RESET: std::time::Duration = std::time::Duration::from_secs(30);
/// How long `watch` waits before trying the server again, at most.
const RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

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
    // When this device last asked which devices to add or remove.
    let mut healed = tokio::time::Instant::now();
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
            heal_with(session, &device).await;
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
                    POLICY_NOT_ACCEPTED => return Err(CliError::PolicyNotAccepted),
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
                            let shown =
                                catch_up_thread(session, &device, &thread_id, &mut printed).await?;
                            // Asking the server what to add or remove at
                            // most every so often, not at every message.
                            if healed.elapsed() >= HEAL_EVERY {
                                heal_with(session, &device).await;
                                healed = tokio::time::Instant::now();
                            }
                            Ok(shown)
                        } else {
                            Ok(0)
                        }
                    }
                    .await
                }
                Event::Urgent {
                    thread_id,
                    seq,
                    stage,
                    backup_user,
                } => {
                    // An alert is printed whatever else fails; this
                    // device's part (adding the backup) is tried, and
                    // what fails is said, not the end of watching.
                    let mut names = Names::default();
                    let name = thread_name(session, &thread_id);
                    let mine = session
                        .contents
                        .threads
                        .get(&thread_id)
                        .is_some_and(|state| {
                            state
                                .messages
                                .iter()
                                .any(|m| m.seq == seq && m.sender_user == session.contents.user_id)
                        });
                    let backup = match &backup_user {
                        Some(user) => names
                            .of(&session.client, user)
                            .await
                            .unwrap_or_else(|_| crate::show::short(user)),
                        None => String::new(),
                    };
                    let escalated = matches!(stage, UrgentStage::Escalated);
                    let text = match (escalated, backup_user.is_some()) {
                        (true, true) => format!(
                            "URGENT message {seq} in {name} was not acknowledged in time: it \
                             escalated to {backup}"
                        ),
                        (true, false) => format!(
                            "URGENT message {seq} in {name} was not acknowledged in time, and \
                             no backup is on duty"
                        ),
                        _ if mine => format!(
                            "Your URGENT message {seq} in {name} has not been acknowledged yet: \
                             its recipients were alerted again"
                        ),
                        _ => format!(
                            "URGENT message {seq} in {name} is waiting for your \
                             acknowledgement: curbside ack {} {seq}",
                            crate::show::short(&thread_id)
                        ),
                    };
                    say(
                        session,
                        text,
                        serde_json::json!({
                            "event": if escalated { "escalated" } else { "urgent" },
                            "thread_id": thread_id,
                            "seq": seq,
                            "mine": mine,
                            "backup_user": backup_user,
                        }),
                    );
                    // Whoever sees an escalation first adds the backup.
                    if session.contents.threads.contains_key(&thread_id) {
                        let healing = async {
                            let device = device(session)?;
                            catch_up_thread(session, &device, &thread_id, &mut printed).await?;
                            heal_with(session, &device).await;
                            Ok::<_, CliError>(())
                        }
                        .await;
                        healed = tokio::time::Instant::now();
                        if let Err(error) = healing {
                            eprintln!("curbside: {name} could not be caught up: {error}");
                        }
                    }
                    Ok(0)
                }
                Event::Acknowledged {
                    thread_id,
                    seq,
                    user_id,
                    ..
                } => {
                    let mut names = Names::default();
                    let who = names
                        .of(&session.client, &user_id)
                        .await
                        .unwrap_or_else(|_| crate::show::short(&user_id));
                    say(
                        session,
                        format!(
                            "{who} acknowledged urgent message {seq} in {}",
                            thread_name(session, &thread_id)
                        ),
                        serde_json::json!({
                            "event": "acknowledged",
                            "thread_id": thread_id,
                            "seq": seq,
                            "user_id": user_id,
                        }),
                    );
                    Ok(0)
                }
                Event::Welcome { welcome } => catch_up(session).await.map(|_| {
                    let joined = session
                        .contents
                        .threads
                        .get(&welcome.thread_id)
                        .is_some_and(|state| state.left.is_none());
                    if joined {
                        say(
                            session,
                            format!(
                                "You were added to {}.",
                                thread_name(session, &welcome.thread_id)
                            ),
                            serde_json::json!({
                                "event": "added",
                                "thread_id": welcome.thread_id,
                            }),
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
        say(
            session,
            format!(
                "{}.",
                how_it_ended(session, &mut Names::default(), thread_id, &left).await?
            ),
            serde_json::json!({
                "event": "left",
                "thread_id": thread_id,
                "left": crate::output::left(&left),
            }),
        );
    }
    Ok(shown)
}

/// Prints one thing that happened, as it happens: a line of text, or with
/// `--output json` one JSON object per line.
fn say(session: &Session, text: String, json: serde_json::Value) {
    match session.output {
        crate::output::Format::Text => println!("{text}"),
        crate::output::Format::Json => println!("{json}"),
    }
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
        say(
            session,
            format!(
                "{} — {}",
                thread_name(session, thread_id),
                history_line(session, &mut names, message).await?
            ),
            serde_json::json!({
                "event": "message",
                "thread_id": thread_id,
                "message": crate::output::message(message),
            }),
        );
        if message.is_text() {
            shown += 1;
        }
    }
    Ok(shown)
}
