//! The user an administrator names on the command line, shared by the
//! `admin` commands that take one.

use curbside_proto::identity::User;

use crate::error::CliError;
use crate::people::describe_user;
use crate::session::Session;

/// The user `given` names, for an administrator: an id as it is (the
/// server says if there is no such user), or the whole of a name only one
/// user has, active or not (as [`crate::people::resolve`] matches names).
pub(super) async fn admin_user(session: &mut Session, given: &str) -> Result<String, CliError> {
    let given = given.trim();
    if crate::people::is_id(given) {
        return Ok(given.to_ascii_lowercase());
    }
    let bare = curbside_proto::names::bare(given);
    if bare.is_empty() {
        return Err(CliError::NoSuchUser {
            given: String::new(),
            by_id: false,
        });
    }
    let page = session
        .call(async |client| client.list_users(&bare, None, None, None).await)
        .await?;
    let users = page.users;
    // A first page with more after it may have left out a namesake.
    if page.next.is_some() {
        return Err(CliError::TooManyMatches {
            given: given.to_owned(),
        });
    }
    let exact: Vec<&User> = users
        .iter()
        .filter(|user| curbside_proto::names::same_name(&user.display_name, given))
        .collect();
    match exact.as_slice() {
        [one] => Ok(one.user_id.clone()),
        [] if users.is_empty() => Err(CliError::NoSuchUser {
            given: given.to_owned(),
            by_id: false,
        }),
        [] => Err(CliError::PartOfName {
            given: given.to_owned(),
            candidates: users.iter().take(10).map(describe_user).collect(),
        }),
        many => Err(CliError::AmbiguousUser {
            given: given.to_owned(),
            candidates: many
                .iter()
                .take(10)
                .map(|user| describe_user(user))
                .collect(),
        }),
    }
}
