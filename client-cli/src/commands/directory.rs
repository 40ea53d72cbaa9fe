//! `curbside directory ...`: finding colleagues.

use clap::Subcommand;

use serde_json::json;

use crate::error::CliError;
use crate::output::{self, Output};
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
        /// How many people to show, 1 to 200.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Show the page after this one: the cursor the last page ended
        /// with.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
    },
    /// On-call roles: who holds each now, who before and who next.
    Roles,
}

/// Runs a `curbside directory` command.
pub(crate) async fn run(
    options: &Options<'_>,
    command: &DirectoryCommand,
) -> Result<Output, CliError> {
    match command {
        DirectoryCommand::Search {
            query,
            limit,
            after,
        } => {
            let mut session = Session::open(options).await?;
            let page = session
                .call(async |client| {
                    client
                        .directory_page(query, after.as_deref(), Some(*limit))
                        .await
                })
                .await?;
            let entries = page.entries;
            let mut lines = Vec::new();
            for entry in &entries {
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
            if let Some(next) = &page.next {
                lines.push(format!("More match: add --after {next}"));
            }
            let json = entries
                .iter()
                .map(|entry| {
                    json!({
                        "user_id": entry.user_id,
                        "display_name": entry.display_name,
                        "role": entry.role.as_str(),
                        "department": entry.department,
                        "devices": entry.devices.iter().map(|device| json!({
                            "device_id": device.device_id,
                            "device_name": device.device_name,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>();
            Ok(Output::new(
                lines.join("\n"),
                json!({ "entries": json, "next": page.next }),
            ))
        }
        DirectoryCommand::Roles => {
            let mut session = Session::open(options).await?;
            let roles = session
                .call(async |client| client.directory_roles().await)
                .await?;
            let text = super::roles::describe_roles(&session.times, &roles, false);
            Ok(Output::new(text, output::roles(&roles)))
        }
    }
}
