//! `curbside admin role ...`, `admin escalation ...` and `directory
//! roles`: on-call roles and their shifts, and the escalation policies of
//! urgent messages.

use clap::Subcommand;
use curbside_proto::clinical::{
    ANY_DEPARTMENT, Backup, EscalationPolicy, NewRole, NewShift, OnCallRole, RoleList, Shift,
};
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};

use super::users::admin_user;
use crate::error::CliError;
use crate::people::Names;
use crate::session::Session;
use crate::show::{Times, printable};

/// `curbside admin role ...`.
#[derive(Debug, Subcommand)]
pub enum AdminRoleCommand {
    /// Define a role ("Cardiology on-call"); assign it to people in shifts.
    Create {
        /// Its name.
        name: String,
        /// Its department (whose escalation policy applies).
        #[arg(long)]
        department: String,
    },
    /// Give a role to a user for a shift. Where shifts overlap, the one
    /// that started last holds the role.
    Assign {
        /// The role's name or id.
        role: String,
        /// The user's id or name.
        user: String,
        /// When the shift starts: 2026-12-07T08:00 (in --timezone), or
        /// RFC 3339; `now` for now.
        #[arg(long)]
        from: String,
        /// When it ends, likewise (at most 31 days after it starts).
        #[arg(long)]
        to: String,
        /// The IANA time zone the times are in (Europe/Paris) [default:
        /// this computer's].
        #[arg(long)]
        timezone: Option<String>,
    },
    /// Cancel a shift.
    Unassign {
        /// The role's name or id.
        role: String,
        /// The shift's id, as `admin role list` shows it.
        shift: String,
    },
    /// List roles, who holds each now, and their shifts.
    List,
}

/// `curbside admin escalation ...`.
#[derive(Debug, Subcommand)]
pub enum AdminEscalationCommand {
    /// Set a department's escalation policy (`*` for every department
    /// without one): an urgent message nobody acknowledges re-alerts its
    /// recipients after --realert-after, then reaches the backup after
    /// --escalate-after.
    Set {
        /// The recipients' department, or `*`.
        department: String,
        /// How long before re-alerting (30s, 2m, 1h).
        #[arg(long)]
        realert_after: String,
        /// How long, from sending, before escalating (longer).
        #[arg(long)]
        escalate_after: String,
        /// The backup: whoever holds this role then.
        #[arg(long, conflicts_with = "backup", required_unless_present = "backup")]
        backup_role: Option<String>,
        /// The backup: this user (id or name).
        #[arg(long)]
        backup: Option<String>,
    },
    /// List the escalation policies.
    List,
}

/// Seconds from `30s`, `2m`, `1h`.
fn parse_seconds(text: &str) -> Result<u64, CliError> {
    let bad = || CliError::BadDuration(printable(text));
    let text = text.trim();
    // Split before the first character that is not a digit (never inside
    // a character: `5µ` is refused, not a panic).
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit)
        .filter(|seconds| *seconds > 0)
        .ok_or_else(bad)
}

fn duration_words(seconds: u64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A time given for a shift, in `zone`: `now`, RFC 3339, or a local date
/// and time there.
fn parse_in_zone(text: &str, zone: &TimeZone) -> Result<i64, CliError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(crate::clock::now_ms());
    }
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let local = text.parse::<civil::DateTime>().map_err(|_| {
        CliError::ShiftTime(format!(
            "{text:?} is not a time: give 2026-12-07T08:00 (in the shift's time zone), \
             2026-12-07T08:00:00Z, or now"
        ))
    })?;
    local
        .to_zoned(zone.clone())
        .map(|zoned| zoned.timestamp().as_millisecond())
        .map_err(|_| CliError::ShiftTime(format!("{text:?} does not exist in that time zone")))
}

/// The role `given` names (see [`RoleList::find`]).
fn find_role<'a>(roles: &'a RoleList, given: &str) -> Result<&'a OnCallRole, CliError> {
    roles
        .find(given)
        .ok_or_else(|| CliError::UnknownRole(printable(given.trim())))
}

/// A shift, as a line: who, from when to when in its own zone.
fn shift_line(times: &Times, shift: &Shift) -> String {
    let zone = TimeZone::get(&shift.timezone).ok();
    let in_zone = |ms: i64| match (zone.as_ref(), Timestamp::from_millisecond(ms)) {
        (Some(zone), Ok(at)) => at
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        _ => times.clock(ms),
    };
    format!(
        "{} from {} to {} ({}; {} to {} here)",
        printable(&shift.display_name),
        in_zone(shift.starts_at_ms),
        in_zone(shift.ends_at_ms),
        printable(&shift.timezone),
        times.clock(shift.starts_at_ms),
        times.clock(shift.ends_at_ms)
    )
}

/// The roles as lines: who holds each now, who before, who next.
pub(super) fn describe_roles(times: &Times, roles: &RoleList, ids: bool) -> String {
    if roles.roles.is_empty() {
        return "No roles are defined.".to_owned();
    }
    let mut lines = Vec::new();
    for role in &roles.roles {
        let id = if ids {
            format!("  [role {}]", role.role_id)
        } else {
            String::new()
        };
        lines.push(format!(
            "{} ({}){id}",
            printable(&role.name),
            printable(&role.department)
        ));
        match &role.holder {
            Some(holder) => lines.push(format!(
                "  now: {} until {}",
                printable(&holder.display_name),
                times.clock(holder.ends_at_ms)
            )),
            None => lines.push("  now: nobody".to_owned()),
        }
        for shift in &role.shifts {
            let when = if shift.ends_at_ms <= roles.now_ms {
                "before"
            } else if shift.starts_at_ms > roles.now_ms {
                "next"
            } else {
                "on"
            };
            let id = if ids {
                format!("  [shift {}]", shift.shift_id)
            } else {
                String::new()
            };
            lines.push(format!("  {when}: {}{id}", shift_line(times, shift)));
        }
    }
    lines.join("\n")
}

/// Runs `admin role ...`.
pub(super) async fn role(
    session: &mut Session,
    command: &AdminRoleCommand,
) -> Result<String, CliError> {
    match command {
        AdminRoleCommand::Create { name, department } => {
            let new = NewRole {
                name: name.clone(),
                department: department.clone(),
            };
            let role = session
                .call(async |client| client.create_role(&new).await)
                .await?;
            Ok(format!(
                "Created role {} ({}), id {}; assign it with `curbside admin role assign`",
                printable(&role.name),
                printable(&role.department),
                role.role_id
            ))
        }
        AdminRoleCommand::Assign {
            role,
            user,
            from,
            to,
            timezone,
        } => {
            let (zone, zone_name) = match timezone {
                Some(name) => (
                    TimeZone::get(name).map_err(|_| {
                        CliError::ShiftTime(format!(
                            "{name:?} is not a time zone this computer knows: give an IANA name \
                             such as Europe/Paris or UTC"
                        ))
                    })?,
                    name.clone(),
                ),
                None => {
                    let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
                    let name = zone.iana_name().unwrap_or("UTC").to_owned();
                    (zone, name)
                }
            };
            let starts_at_ms = parse_in_zone(from, &zone)?;
            let ends_at_ms = parse_in_zone(to, &zone)?;
            let roles = session
                .call(async |client| client.admin_roles().await)
                .await?;
            let found = find_role(&roles, role)?.clone();
            let user_id = admin_user(session, user).await?;
            let shift = NewShift {
                user_id,
                starts_at_ms,
                ends_at_ms,
                timezone: zone_name,
            };
            let shift = session
                .call(async |client| client.assign_shift(&found.role_id, &shift).await)
                .await?;
            Ok(format!(
                "{}: {} [shift {}]",
                printable(&found.name),
                shift_line(&session.times, &shift),
                shift.shift_id
            ))
        }
        AdminRoleCommand::Unassign { role, shift } => {
            let roles = session
                .call(async |client| client.admin_roles().await)
                .await?;
            let found = find_role(&roles, role)?.clone();
            let shift = shift.trim().to_ascii_lowercase();
            session
                .call(async |client| client.cancel_shift(&found.role_id, &shift).await)
                .await?;
            Ok(format!(
                "Cancelled shift {shift} of {}",
                printable(&found.name)
            ))
        }
        AdminRoleCommand::List => {
            let roles = session
                .call(async |client| client.admin_roles().await)
                .await?;
            Ok(describe_roles(&session.times, &roles, true))
        }
    }
}

/// Runs `admin escalation ...`.
pub(super) async fn escalation(
    session: &mut Session,
    command: &AdminEscalationCommand,
) -> Result<String, CliError> {
    match command {
        AdminEscalationCommand::Set {
            department,
            realert_after,
            escalate_after,
            backup_role,
            backup,
        } => {
            let backup = match (backup_role, backup) {
                (Some(role), _) => {
                    let roles = session
                        .call(async |client| client.admin_roles().await)
                        .await?;
                    Backup::Role {
                        role_id: find_role(&roles, role)?.role_id.clone(),
                    }
                }
                (None, Some(user)) => Backup::User {
                    user_id: admin_user(session, user).await?,
                },
                (None, None) => {
                    return Err(CliError::Internal(
                        "clap requires --backup-role or --backup",
                    ));
                }
            };
            let policy = EscalationPolicy {
                department: department.clone(),
                realert_after_s: parse_seconds(realert_after)?,
                escalate_after_s: parse_seconds(escalate_after)?,
                backup,
            };
            let policy = session
                .call(async |client| client.set_escalation_policy(&policy).await)
                .await?;
            let lines = describe_policies(session, &[policy]).await?;
            Ok(format!("Set the escalation policy:\n{lines}"))
        }
        AdminEscalationCommand::List => {
            let policies = session
                .call(async |client| client.escalation_policies().await)
                .await?;
            if policies.policies.is_empty() {
                return Ok(
                    "No escalation policies: urgent messages re-alert once after 5 \
                           minutes and escalate to no one."
                        .to_owned(),
                );
            }
            describe_policies(session, &policies.policies).await
        }
    }
}

async fn describe_policies(
    session: &mut Session,
    policies: &[EscalationPolicy],
) -> Result<String, CliError> {
    let roles = session
        .call(async |client| client.admin_roles().await)
        .await?;
    let mut names = Names::default();
    let mut lines = Vec::new();
    for policy in policies {
        let backup = match &policy.backup {
            Backup::Role { role_id } => roles
                .roles
                .iter()
                .find(|role| role.role_id == *role_id)
                .map_or_else(
                    || format!("role {role_id}"),
                    |role| format!("whoever holds {}", printable(&role.name)),
                ),
            Backup::User { user_id } => names.of(&session.client, user_id).await?,
        };
        let department = if policy.department == ANY_DEPARTMENT {
            "Any other department".to_owned()
        } else {
            printable(&policy.department)
        };
        lines.push(format!(
            "{department}: re-alert after {}, escalate after {} to {backup}",
            duration_words(policy.realert_after_s),
            duration_words(policy.escalate_after_s)
        ));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_shift_times_read_as_written() {
        assert_eq!(parse_seconds("30s").unwrap(), 30);
        assert_eq!(parse_seconds("2m").unwrap(), 120);
        assert_eq!(parse_seconds("1h").unwrap(), 3600);
        for bad in ["", "m", "0s", "5d", "-1m", "1.5h", "5µ", "µ"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 08:00 in Paris in December is 07:00 UTC.
        assert_eq!(
            parse_in_zone("2026-12-07T08:00", &paris).unwrap(),
            "2026-12-07T07:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert_eq!(
            parse_in_zone("2026-12-07T08:00:00Z", &paris).unwrap(),
            "2026-12-07T08:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert!(parse_in_zone("tomorrow", &paris).is_err());
    }
}
