//! Threads in words: the thread a person means (its id, the start of it,
//! or its subject), how a thread is named in a sentence, and how this
//! device's membership of one ended.

use crate::error::CliError;
use crate::people::Names;
use crate::session::Session;
use crate::show::{printable, short};
use crate::store::LeftThread;

/// The id of the thread `given` names on this profile: its id, a unique
/// start of it (at least 6 digits), or its subject (case and accents
/// aside; a thread this device is in comes before ones it has left).
pub(super) fn thread_id(session: &Session, given: &str) -> Result<String, CliError> {
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
pub(super) fn thread_name(session: &Session, thread_id: &str) -> String {
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
pub(super) async fn how_it_ended(
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
pub(super) async fn still_in(session: &Session, thread_id: &str) -> Result<(), CliError> {
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
