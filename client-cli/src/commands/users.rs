//! The user an administrator names on the command line, shared by the
//! `admin` commands that take one; every user a search matches, page by
//! page; and `admin user import`.

use std::collections::HashMap;
use std::path::Path;

use curbside_proto::identity::{NewUser, Role, User};
use serde_json::json;

use crate::client::ClientError;
use crate::error::CliError;
use crate::output::{self, Output};
use crate::people::describe_user;
use crate::session::Session;
use crate::show::printable;

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

/// Every user whose name or department contains `query` (of `role`, if
/// given), a page at a time: the list has no cap.
pub(super) async fn all_users(
    session: &mut Session,
    query: &str,
    role: Option<Role>,
) -> Result<Vec<User>, CliError> {
    let mut users: Vec<User> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = session
            .call(async |client| client.list_users(query, role, None, after.as_deref()).await)
            .await?;
        users.extend(page.users);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(users),
        }
    }
}

/// The columns of an import file, by their header's names.
const IMPORT_COLUMNS: [&str; 6] = [
    "user_name",
    "display_name",
    "department",
    "role",
    "licence_number",
    "external_id",
];

/// What became of one line of an import file.
#[derive(Debug)]
enum Outcome {
    /// A user was made.
    Created(User),
    /// A user with the user name was there already: left as it is.
    Exists(User),
    /// The line was not used.
    Failed(String),
}

/// `admin user import FILE.csv`: makes a user of each line whose
/// user_name no user has, and says what became of every line. A user
/// whose user_name is taken is left as it is, so a second run creates no
/// one; a line that fails does not stop the rest, but makes the command
/// fail at the end.
pub(super) async fn import(session: &mut Session, file: &Path) -> Result<Output, CliError> {
    let read_error = |error: std::io::Error| CliError::ReadFile {
        path: file.display().to_string(),
        error,
    };
    let text = std::fs::read_to_string(file).map_err(read_error)?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad = |detail: String| CliError::BadInput(format!("{}: {detail}", file.display()));
    let header: Vec<String> = reader
        .headers()
        .map_err(|error| bad(error.to_string()))?
        .iter()
        .map(|name| name.to_ascii_lowercase())
        .collect();
    let column = |name: &str| header.iter().position(|given| given == name);
    if let Some(unknown) = header
        .iter()
        .find(|name| !IMPORT_COLUMNS.contains(&name.as_str()))
    {
        return Err(bad(format!(
            "unknown column {unknown:?}; the columns are {}",
            IMPORT_COLUMNS.join(", ")
        )));
    }
    let (Some(user_name_at), Some(name_at), Some(department_at)) = (
        column("user_name"),
        column("display_name"),
        column("department"),
    ) else {
        return Err(bad(
            "the first line must name the columns, with at least user_name, display_name and \
             department (and optionally role, licence_number, external_id)"
                .to_owned(),
        ));
    };
    let (role_at, licence_at, external_at) = (
        column("role"),
        column("licence_number"),
        column("external_id"),
    );
    let existing: HashMap<String, User> = all_users(session, "", None)
        .await?
        .into_iter()
        .filter_map(|user| Some((user.user_name.as_deref()?.to_lowercase(), user)))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<(usize, String, Outcome)> = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // The header is line 1.
        let line = index + 2;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                rows.push((line, String::new(), Outcome::Failed(error.to_string())));
                continue;
            }
        };
        let field = |at: Option<usize>| {
            at.and_then(|at| record.get(at))
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let user_name = field(Some(user_name_at)).unwrap_or_default();
        let outcome = 'row: {
            if user_name.is_empty() {
                break 'row Outcome::Failed("no user_name".to_owned());
            }
            let key = user_name.to_lowercase();
            if let Some(user) = existing.get(&key) {
                break 'row Outcome::Exists(user.clone());
            }
            if let Some(first) = seen.insert(key, line) {
                break 'row Outcome::Failed(format!("the same user_name as line {first}"));
            }
            let role = match field(role_at).as_deref().map(Role::parse) {
                None => Role::Clinician,
                Some(Some(role)) => role,
                Some(None) => {
                    break 'row Outcome::Failed(
                        "role must be clinician, admin or auditor".to_owned(),
                    );
                }
            };
            let new = NewUser {
                display_name: field(Some(name_at)).unwrap_or_default(),
                role,
                department: field(Some(department_at)).unwrap_or_default(),
                licence_number: field(licence_at),
                user_name: Some(user_name.clone()),
                external_id: field(external_at),
            };
            match create(session, &new).await {
                Ok(user) => Outcome::Created(user),
                Err(CliError::Client(ClientError::Api { message, .. })) => Outcome::Failed(message),
                Err(error) => return Err(error),
            }
        };
        rows.push((line, user_name, outcome));
    }
    report(file, &rows)
}

/// Creates `new`, waiting and trying again while the server says this
/// administrator is going too fast.
async fn create(session: &mut Session, new: &NewUser) -> Result<User, CliError> {
    loop {
        match session
            .call(async |client| client.create_user(new).await)
            .await
        {
            Err(CliError::Client(ClientError::Api { status, .. }))
                if status == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            result => return result,
        }
    }
}

/// The import's outcome, line by line; an error if any line failed.
fn report(file: &Path, rows: &[(usize, String, Outcome)]) -> Result<Output, CliError> {
    let mut lines = Vec::new();
    let mut json_rows = Vec::new();
    let (mut created, mut existing, mut failed) = (0, 0, 0);
    for (line, user_name, outcome) in rows {
        let (word, detail, user) = match outcome {
            Outcome::Created(user) => {
                created += 1;
                ("created", describe_user(user), Some(user))
            }
            Outcome::Exists(user) => {
                existing += 1;
                ("exists", describe_user(user), Some(user))
            }
            Outcome::Failed(why) => {
                failed += 1;
                ("failed", why.clone(), None)
            }
        };
        lines.push(format!(
            "line {line}: {}: {word}: {detail}",
            printable(user_name)
        ));
        json_rows.push(json!({
            "line": line,
            "user_name": user_name,
            "outcome": word,
            "user": user.map(output::user),
            "error": matches!(outcome, Outcome::Failed(_)).then_some(detail),
        }));
    }
    lines.push(format!(
        "{created} created, {existing} already there, {failed} failed"
    ));
    let text = lines.join("\n");
    if failed > 0 {
        return Err(CliError::ImportIncomplete {
            file: file.display().to_string(),
            report: text,
        });
    }
    Ok(Output::new(
        text,
        json!({
            "created": created,
            "existing": existing,
            "failed": failed,
            "rows": json_rows,
        }),
    ))
}
