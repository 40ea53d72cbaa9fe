//! `curbside directory ...`: finding colleagues.

use clap::Subcommand;

use crate::error::CliError;
use crate::session::{Options, Session};
use crate::show::printable;

/// `curbside directory ...`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Search active users by name or department.
    Search {
        /// Text to look for (empty lists everyone).
        #[arg(default_value = "")]
        query: String,
    },
    /// On-call roles: who holds each now, who before and who next.
    Roles,
}

/// Runs a `curbside directory` command.
pub(crate) async fn run(
    options: &Options<'_>,
    command: &DirectoryCommand,
) -> Result<String, CliError> {
    match command {
        DirectoryCommand::Search { query } => {
            let mut session = Session::open(options).await?;
            let directory = session
                .call(async |client| client.directory(query).await)
                .await?;
            let mut lines = Vec::new();
            for entry in directory.entries {
                lines.push(format!(
                    "{}  {}  {}  {}  ({} device{})",
                    printable(&entry.user_id),
                    printable(&entry.display_name),
                    entry.role.as_str(),
                    printable(&entry.department),
                    entry.devices.len(),
                    if entry.devices.len() == 1 { "" } else { "s" }
                ));
            }
            if lines.is_empty() {
                lines.push("No one matches.".to_owned());
            }
            Ok(lines.join("\n"))
        }
        DirectoryCommand::Roles => {
            let mut session = Session::open(options).await?;
            let roles = session
                .call(async |client| client.directory_roles().await)
                .await?;
            Ok(super::roles::describe_roles(&session.times, &roles, false))
        }
    }
}
