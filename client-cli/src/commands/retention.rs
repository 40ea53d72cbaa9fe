//! `curbside admin retention ...` and `admin hold ...`: the organisation's
//! retention policy and legal holds (administrators change them; auditors
//! may look).

use clap::Subcommand;
use curbside_proto::retention::{Hold, HoldScope, NewHold};

use crate::error::CliError;
use crate::session::Session;
use crate::show::printable;

/// `curbside admin retention ...`.
#[derive(Debug, Subcommand)]
pub enum AdminRetentionCommand {
    /// Show the retention policy.
    Show,
    /// Purge thread content older than AGE (e.g. 365d, 52w; at least a
    /// day), unless a legal hold covers it; `off` keeps it.
    Set {
        /// The maximum age, or `off`.
        age: String,
    },
}

/// `curbside admin hold ...`.
#[derive(Debug, Subcommand)]
pub enum AdminHoldCommand {
    /// List legal holds, current and lifted.
    List,
    /// Place a legal hold on a thread or a user: nothing it covers is
    /// purged until it is lifted.
    Place {
        /// The thread's id (from the audit log).
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        thread: Option<String>,
        /// The user's id or name: every thread they are or were in.
        #[arg(long)]
        user: Option<String>,
        /// Which matter the hold is for.
        #[arg(long)]
        reason: String,
    },
    /// Lift a legal hold: the sweep's next pass purges what is due.
    Lift {
        /// The hold's id, as `admin hold list` shows it.
        hold_id: String,
    },
}

/// A maximum age: a number of days (`d`) or weeks (`w`), or `off`.
fn parse_age(text: &str) -> Result<Option<u64>, CliError> {
    let bad = || CliError::BadLifespan(printable(text));
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    // Split before the first character that is not a digit (never inside
    // a character: `5µ` is refused, not a panic).
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let days: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "d" => 1,
        "w" => 7,
        _ => return Err(bad()),
    };
    days.checked_mul(unit * 24 * 3600)
        .filter(|seconds| *seconds > 0)
        .map(Some)
        .ok_or_else(bad)
}

fn days(seconds: u64) -> String {
    let days = seconds / 86400;
    if days * 86400 == seconds {
        format!("{days} day{}", if days == 1 { "" } else { "s" })
    } else {
        format!("{seconds} seconds")
    }
}

fn describe(session: &Session, hold: &Hold) -> String {
    let status = match hold.lifted_at_ms {
        Some(at) => format!(
            "lifted {} by {}",
            session.times.at(at),
            hold.lifted_by.as_deref().unwrap_or("?")
        ),
        None => "ACTIVE".to_owned(),
    };
    format!(
        "{}  {} {}  placed {} by {}  {status}\n    reason: {}",
        hold.hold_id,
        hold.scope.as_str(),
        hold.target_id,
        session.times.at(hold.placed_at_ms),
        hold.placed_by,
        printable(&hold.reason)
    )
}

/// Runs `admin retention ...`.
pub(super) async fn retention(
    session: &mut Session,
    command: &AdminRetentionCommand,
) -> Result<String, CliError> {
    let policy = match command {
        AdminRetentionCommand::Show => {
            session
                .call(async |client| client.retention().await)
                .await?
        }
        AdminRetentionCommand::Set { age } => {
            let max_age_s = parse_age(age)?;
            session
                .call(async |client| client.set_retention(max_age_s).await)
                .await?
        }
    };
    let mut text = match policy.max_age_s {
        Some(seconds) => format!(
            "Thread content older than {} is purged (unless a legal hold covers it).",
            days(seconds)
        ),
        None => "No retention policy: thread content is kept until its thread's lifespan or a \
                 recall removes it."
            .to_owned(),
    };
    if let (Some(at), Some(by)) = (policy.updated_at_ms, &policy.updated_by) {
        text.push_str(&format!("\nSet {} by {by}.", session.times.at(at)));
    }
    Ok(text)
}

/// Runs `admin hold ...`.
pub(super) async fn hold(
    session: &mut Session,
    command: &AdminHoldCommand,
) -> Result<String, CliError> {
    match command {
        AdminHoldCommand::List => {
            let holds = session.call(async |client| client.holds().await).await?;
            if holds.holds.is_empty() {
                return Ok("No legal holds.".to_owned());
            }
            Ok(holds
                .holds
                .iter()
                .map(|hold| describe(session, hold))
                .collect::<Vec<_>>()
                .join("\n"))
        }
        AdminHoldCommand::Place {
            thread,
            user,
            reason,
        } => {
            let (scope, target_id) = match (thread, user) {
                (Some(thread), _) => (HoldScope::Thread, thread.trim().to_ascii_lowercase()),
                (None, Some(user)) => (
                    HoldScope::User,
                    super::users::admin_user(session, user).await?,
                ),
                (None, None) => return Err(CliError::Internal("clap requires --thread or --user")),
            };
            let new = NewHold {
                scope,
                target_id,
                reason: reason.clone(),
            };
            let hold = session
                .call(async |client| client.place_hold(&new).await)
                .await?;
            Ok(format!("Placed legal hold:\n{}", describe(session, &hold)))
        }
        AdminHoldCommand::Lift { hold_id } => {
            let hold_id = hold_id.trim().to_ascii_lowercase();
            let hold = session
                .call(async |client| client.lift_hold(&hold_id).await)
                .await?;
            Ok(format!("Lifted legal hold:\n{}", describe(session, &hold)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_days_or_weeks_or_off() {
        assert_eq!(parse_age("365d").unwrap(), Some(365 * 86400));
        assert_eq!(parse_age("2w").unwrap(), Some(14 * 86400));
        assert_eq!(parse_age("off").unwrap(), None);
        for bad in ["", "d", "0d", "12h", "1y", "-3d", "5µ", "é"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(days(86400 * 7), "7 days");
    }
}
