//! `curbside thread ...`: starting threads and changing their members,
//! subject and own membership (the work is in `crate::conversation`).

use clap::Subcommand;

use crate::conversation;
use crate::error::CliError;
use crate::session::{Options, Session};

/// `curbside thread ...`.
#[derive(Debug, Subcommand)]
pub enum ThreadCommand {
    /// Start a thread with colleagues (user ids or names), or with whoever
    /// holds a role at this moment.
    New {
        /// Who to talk with: USER[,USER...].
        #[arg(long, value_delimiter = ',', required_unless_present = "with_role")]
        with: Vec<String>,
        /// A role ("Cardiology on-call"): whoever holds it now joins.
        #[arg(long)]
        with_role: Option<String>,
        /// A subject; it travels encrypted, as the first message.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Add a colleague to a thread.
    Add {
        /// The thread.
        thread: String,
        /// Their user id or name.
        user: String,
    },
    /// Remove a colleague from a thread.
    Remove {
        /// The thread.
        thread: String,
        /// Their user id or name.
        user: String,
    },
    /// Change a thread's subject (every member sees who changed it).
    Subject {
        /// The thread.
        thread: String,
        /// The new subject.
        subject: String,
    },
    /// Leave a thread, on all your devices: you get nothing more of it.
    Leave {
        /// The thread.
        thread: String,
    },
    /// Show a thread's members and devices, and who has each message
    /// delivered and read.
    Show {
        /// The thread (its id, the start of it, or its subject).
        thread: String,
    },
}

/// Runs a `curbside thread` command.
pub(crate) async fn run(
    options: &Options<'_>,
    command: &ThreadCommand,
) -> Result<String, CliError> {
    let session = &mut Session::open(options).await?;
    match command {
        ThreadCommand::New {
            with,
            with_role,
            subject,
        } => {
            conversation::new_thread(session, with, with_role.as_deref(), subject.as_deref()).await
        }
        ThreadCommand::Add { thread, user } => {
            conversation::change_members(session, thread, user, true).await
        }
        ThreadCommand::Remove { thread, user } => {
            conversation::change_members(session, thread, user, false).await
        }
        ThreadCommand::Show { thread } => {
            conversation::heal(session).await?;
            conversation::show(session, thread).await
        }
        ThreadCommand::Subject { thread, subject } => {
            conversation::set_thread_subject(session, thread, subject).await
        }
        ThreadCommand::Leave { thread } => conversation::leave(session, thread).await,
    }
}
