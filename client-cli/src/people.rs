//! Who is who, for the CLI: a user from what a person types (an id, or a
//! name that only one colleague has), and names for the ids the server and
//! MLS deal in.

use std::collections::HashMap;

use curbside_proto::identity::DirectoryEntry;

use crate::cli::CliError;
use crate::client::{Client, ClientError, printable};
use crate::show::short;

/// Whether `text` is a user or device id (32 hex digits).
pub fn is_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The active user `text` names: their id, or a name (or part of one) that
/// matches exactly one active colleague, or one of several whose whole name
/// it is.
pub async fn resolve(client: &Client, text: &str) -> Result<DirectoryEntry, CliError> {
    let text = text.trim();
    if text.is_empty() {
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
    let found = client
        .directory_page(
            text,
            None,
            Some(curbside_proto::identity::MAX_DIRECTORY_PAGE),
        )
        .await?
        .entries;
    let exact: Vec<&DirectoryEntry> = found
        .iter()
        .filter(|entry| same_name(&entry.display_name, text))
        .collect();
    if let [one] = found.as_slice() {
        return Ok(one.clone());
    }
    if let [one] = exact.as_slice() {
        return Ok((*one).clone());
    }
    match (found.as_slice(), exact.as_slice()) {
        ([], _) => Err(CliError::NoSuchUser {
            given: text.to_owned(),
            by_id: false,
        }),
        (many, _) => Err(CliError::AmbiguousUser {
            given: text.to_owned(),
            candidates: many
                .iter()
                .take(10)
                .map(|entry| {
                    format!(
                        "{} ({}, {})",
                        printable(&entry.display_name),
                        printable(&entry.department),
                        entry.user_id
                    )
                })
                .collect(),
        }),
    }
}

/// Whether two names are the same but for case and an honorific such as
/// "Dr.".
fn same_name(listed: &str, given: &str) -> bool {
    let bare = |name: &str| {
        let lower = name.trim().to_lowercase();
        lower
            .strip_prefix("dr. ")
            .or_else(|| lower.strip_prefix("dr "))
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    bare(listed) == bare(given)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_without_case_or_title() {
        assert!(same_name("Dr. Ben Brown", "ben brown"));
        assert!(same_name("Ben Brown", "Dr. Ben Brown"));
        assert!(!same_name("Dr. Ben Browning", "Ben Brown"));
        assert!(is_id("0123456789abcdef0123456789ABCDEF"));
        assert!(!is_id("Ben"));
    }
}
