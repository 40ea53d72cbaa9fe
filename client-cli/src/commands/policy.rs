//! `curbside policy ...`: reading and accepting the organisation's
//! messaging policy, which threads require before they let anyone in.

use clap::Subcommand;

use crate::error::CliError;
use crate::session::{Options, Session};
use crate::show::{Times, text_block};

/// `curbside policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the current messaging policy and whether you accepted it.
    Show,
    /// Accept the current messaging policy (after reading it with `policy
    /// show`).
    Accept {
        /// The version you read; the current one if left out. Refused if
        /// it is no longer current.
        #[arg(long)]
        version: Option<u64>,
    },
}

/// Runs a `curbside policy` command.
pub(crate) async fn run(
    options: &Options<'_>,
    command: &PolicyCommand,
) -> Result<String, CliError> {
    let mut session = Session::open(options).await?;
    let state = session.call(async |client| client.policy().await).await?;
    let Some(current) = state.current else {
        return match command {
            PolicyCommand::Show => {
                Ok("Your organisation has not published a messaging policy.".to_owned())
            }
            PolicyCommand::Accept { .. } => Err(CliError::NoPolicy),
        };
    };
    let accepted = state.accepted_version == Some(current.version);
    match command {
        PolicyCommand::Show => {
            let times = Times::new(options.utc);
            let status = if accepted {
                "You have accepted this version.".to_owned()
            } else {
                format!(
                    "You have not accepted this version: accept it with `curbside policy accept \
                     --version {}` to use threads.",
                    current.version
                )
            };
            Ok(format!(
                "Messaging policy, version {} (published {}):\n\n  {}\n\n{status}",
                current.version,
                times.at(current.published_at_ms),
                text_block(&current.text, "  "),
            ))
        }
        PolicyCommand::Accept { version } => {
            let version = version.unwrap_or(current.version);
            session
                .call(async |client| client.accept_policy(version).await)
                .await?;
            Ok(format!(
                "Accepted version {version} of the messaging policy."
            ))
        }
    }
}
