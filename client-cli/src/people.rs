//! Who is who, for the CLI: a user from what a person types (an id, or a
//! name that only one colleague has), names for the ids the server and MLS
//! deal in, and a user described on one line.

use std::collections::HashMap;

use curbside_proto::identity::{DirectoryEntry, User, UserStatus};

use crate::client::{Client, ClientError};
use crate::error::CliError;
use crate::show::printable;
use crate::show::short;

/// The most people a name is looked up among; a name that more match
/// (as part of theirs) must be given as an id.
const MAX_MATCHES: usize = 500;

/// Whether `text` is a user or device id (32 hex digits).
pub fn is_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The active user `text` names: their id, or the whole of a name only one
/// active colleague has (case, accents and a title such as "Dr." aside).
/// Never part of a name, never a department: a thread must not reach
/// someone because they were the only match for "Ben" or "Cardiology".
pub async fn resolve(client: &Client, text: &str) -> Result<DirectoryEntry, CliError> {
    let text = text.trim();
    if curbside_proto::names::bare(text).is_empty() {
        return Err(CliError::NoSuchUser {
            given: String::new(),
            by_id: false,
        });
    }
    if is_id(text) {
        return match client.directory_user(&text.to_ascii_lowercase()).await {
            Ok(entry) => Ok(entry),
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
                Err(CliError::NoSuchUser {
                    given: text.to_owned(),
                    by_id: true,
                })
            }
            Err(error) => Err(error.into()),
        };
    }
    // The server is asked for the name without its title, which finds it
    // with or without one. Every page is read (a namesake can sort after
    // a page's end), up to a bound past which the id must be given.
    let query = curbside_proto::names::bare(text);
    let mut found: Vec<DirectoryEntry> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .directory_page(
                &query,
                after.as_deref(),
                Some(curbside_proto::identity::DEFAULT_DIRECTORY_PAGE),
            )
            .await?;
        found.extend(page.entries);
        match page.next {
            Some(next) if found.len() < MAX_MATCHES => after = Some(next),
            Some(_) => {
                return Err(CliError::TooManyMatches {
                    given: text.to_owned(),
                });
            }
            None => break,
        }
    }
    let describe = |entry: &&DirectoryEntry| {
        format!(
            "{} ({}, {})",
            printable(&entry.display_name),
            printable(&entry.department),
            printable(&entry.user_id)
        )
    };
    let exact: Vec<&DirectoryEntry> = found
        .iter()
        .filter(|entry| curbside_proto::names::same_name(&entry.display_name, text))
        .collect();
    match exact.as_slice() {
        [one] => Ok((*one).clone()),
        [] if found.is_empty() => Err(CliError::NoSuchUser {
            given: text.to_owned(),
            by_id: false,
        }),
        [] => Err(CliError::PartOfName {
            given: text.to_owned(),
            candidates: found
                .iter()
                .take(10)
                .map(|entry| describe(&entry))
                .collect(),
        }),
        many => Err(CliError::AmbiguousUser {
            given: text.to_owned(),
            candidates: many.iter().take(10).map(describe).collect(),
        }),
    }
}

/// Names for user ids, looked up once each (the directory holds active
/// users; others are shown by id).
#[derive(Debug, Default)]
pub struct Names {
    known: HashMap<String, Option<DirectoryEntry>>,
}

impl Names {
    /// The directory's entry for `user_id`, if the user is active.
    pub async fn entry(
        &mut self,
        client: &Client,
        user_id: &str,
    ) -> Result<Option<&DirectoryEntry>, CliError> {
        if !self.known.contains_key(user_id) {
            let entry = match client.directory_user(user_id).await {
                Ok(entry) => Some(entry),
                Err(ClientError::Api { status, .. })
                    if status == reqwest::StatusCode::NOT_FOUND =>
                {
                    None
                }
                Err(error) => return Err(error.into()),
            };
            self.known.insert(user_id.to_owned(), entry);
        }
        Ok(self.known.get(user_id).and_then(Option::as_ref))
    }

    /// `user_id`'s display name, or (for a user no longer active) a short
    /// form of the id.
    pub async fn of(&mut self, client: &Client, user_id: &str) -> Result<String, CliError> {
        Ok(match self.entry(client, user_id).await? {
            Some(entry) => printable(&entry.display_name),
            None => format!("a former user ({})", short(user_id)),
        })
    }

    /// Several users' names, in alphabetical order, as "A, B and C".
    pub async fn list(&mut self, client: &Client, user_ids: &[String]) -> Result<String, CliError> {
        let mut names = Vec::with_capacity(user_ids.len());
        for user_id in user_ids {
            names.push(self.of(client, user_id).await?);
        }
        names.sort_by_key(|name| name.to_lowercase());
        names.dedup();
        Ok(match names.as_slice() {
            [] => "no one".to_owned(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        })
    }
}

/// A user on one line: id, name, role, department, and whether deactivated.
pub fn describe_user(user: &User) -> String {
    format!(
        "{}  {}  {}  {}{}",
        printable(&user.user_id),
        printable(&user.display_name),
        user.role.as_str(),
        printable(&user.department),
        if user.status == UserStatus::Deactivated {
            "  (deactivated)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits() {
        assert!(is_id("0123456789abcdef0123456789ABCDEF"));
        assert!(!is_id("Ben"));
    }
}
