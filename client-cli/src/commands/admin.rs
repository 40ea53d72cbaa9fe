//! `curbside admin user ...` and `admin device ...`: an administrator's
//! work on users, their enrollment codes and their devices (`admin audit`
//! is its own group, in `super::audit`).

use clap::Subcommand;
use curbside_proto::identity::{NewUser, Role, UserUpdate};
use serde_json::json;

use super::audit::{self, AdminAuditCommand};
use super::retention::{self, AdminHoldCommand, AdminRetentionCommand};
use super::roles::{self, AdminEscalationCommand, AdminRoleCommand};
use super::users::{self, admin_user};
use crate::error::CliError;
use crate::output::{self, Output};
use crate::people::describe_user;
use crate::session::{Options, Session};
use crate::show::printable;

/// `curbside admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(AdminUserCommand),
    /// Devices.
    #[command(subcommand)]
    Device(AdminDeviceCommand),
    /// The audit log (administrators and auditors).
    #[command(subcommand)]
    Audit(AdminAuditCommand),
    /// The organisation's messaging policy.
    #[command(subcommand)]
    Policy(AdminPolicyCommand),
    /// The retention policy: how old thread content may get.
    #[command(subcommand)]
    Retention(AdminRetentionCommand),
    /// Legal holds: content kept whatever its age.
    #[command(subcommand)]
    Hold(AdminHoldCommand),
    /// On-call roles and who holds them when.
    #[command(subcommand)]
    Role(AdminRoleCommand),
    /// Escalation policies of urgent messages, per department.
    #[command(subcommand)]
    Escalation(AdminEscalationCommand),
}

/// `curbside admin policy ...`.
#[derive(Debug, Subcommand)]
pub enum AdminPolicyCommand {
    /// Publish a new version from a text file: everyone must accept it
    /// before using threads again.
    Publish {
        /// The policy's text, in a UTF-8 file.
        file: std::path::PathBuf,
    },
    /// List who has not accepted the current version.
    Pending,
}

/// `curbside admin user ...`.
#[derive(Debug, Subcommand)]
pub enum AdminUserCommand {
    /// Create a user.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// clinician, admin or auditor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Department.
        #[arg(long)]
        department: String,
        /// Licence number.
        #[arg(long)]
        licence: Option<String>,
        /// The name to match the user on (their login at the organisation's
        /// identity provider), unique whatever its case.
        #[arg(long)]
        user_name: Option<String>,
        /// The identity provider's or HR system's id for the user.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Create users from a CSV file (a header line, then one user per
    /// line: user_name, display_name, department, and optionally role,
    /// licence_number, external_id). A user whose user_name exists is
    /// left as it is, so running it again creates no one twice; each
    /// line's outcome is printed.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
    },
    /// List and search users.
    List {
        /// Text to look for in names and departments.
        #[arg(long, default_value = "")]
        query: String,
        /// Only this role.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
    },
    /// Show one user.
    Show {
        /// The user's id or name.
        user_id: String,
    },
    /// Change a user's name, role, department or licence number.
    Update {
        /// The user's id or name.
        user_id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New role.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// New department.
        #[arg(long)]
        department: Option<String>,
        /// New licence number.
        #[arg(long)]
        licence: Option<String>,
        /// New user name ("" removes it).
        #[arg(long)]
        user_name: Option<String>,
        /// New external id ("" removes it).
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Deactivate a user: every session ends at once.
    Deactivate {
        /// The user's id or name.
        user_id: String,
    },
    /// Reactivate a user.
    Reactivate {
        /// The user's id or name.
        user_id: String,
    },
    /// Issue a one-time enrollment code for a user's new device; it
    /// revokes the user's older codes unless --keep-others.
    Code {
        /// The user's id or name.
        user_id: String,
        /// Keep the user's other outstanding codes working.
        #[arg(long)]
        keep_others: bool,
    },
    /// List a user's outstanding enrollment codes (their ids, never the codes).
    Codes {
        /// The user's id or name.
        user_id: String,
    },
    /// Revoke one of a user's outstanding enrollment codes.
    RevokeCode {
        /// The user's id or name.
        user_id: String,
        /// The code's id, as `admin user codes` lists it.
        code_id: String,
    },
}

/// `curbside admin device ...`.
#[derive(Debug, Subcommand)]
pub enum AdminDeviceCommand {
    /// List a user's devices.
    List {
        /// The user's id or name.
        user_id: String,
    },
    /// Remove a device: its sessions end at once.
    Remove {
        /// The user's id or name.
        user_id: String,
        /// The device's id.
        device_id: String,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "expected clinician, admin or auditor".to_owned())
}

/// Runs a `curbside admin` command.
pub(crate) async fn run(options: &Options<'_>, command: &AdminCommand) -> Result<Output, CliError> {
    let mut session = Session::open(options).await?;
    Ok(match command {
        AdminCommand::User(AdminUserCommand::Create {
            name,
            role,
            department,
            licence,
            user_name,
            external_id,
        }) => {
            let new = NewUser {
                display_name: name.clone(),
                role: *role,
                department: department.clone(),
                licence_number: licence.clone(),
                user_name: user_name.clone(),
                external_id: external_id.clone(),
            };
            let user = session
                .call(async |client| client.create_user(&new).await)
                .await?;
            Output::new(
                format!("Created {}", describe_user(&user)),
                output::user(&user),
            )
        }
        AdminCommand::User(AdminUserCommand::List { query, role }) => {
            let users = users::all_users(&mut session, query, *role).await?;
            let text = if users.is_empty() {
                "No users match.".to_owned()
            } else {
                users
                    .iter()
                    .map(describe_user)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Output::new(
                text,
                json!({ "users": users.iter().map(output::user).collect::<Vec<_>>() }),
            )
        }
        AdminCommand::User(AdminUserCommand::Show { user_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let user = session
                .call(async |client| client.get_user(&user_id).await)
                .await?;
            Output::new(describe_user(&user), output::user(&user))
        }
        AdminCommand::User(AdminUserCommand::Update {
            user_id,
            name,
            role,
            department,
            licence,
            user_name,
            external_id,
        }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let update = UserUpdate {
                display_name: name.clone(),
                role: *role,
                department: department.clone(),
                licence_number: licence.clone(),
                user_name: user_name.clone(),
                external_id: external_id.clone(),
            };
            let user = session
                .call(async |client| client.update_user(&user_id, &update).await)
                .await?;
            Output::new(
                format!("Updated {}", describe_user(&user)),
                output::user(&user),
            )
        }
        AdminCommand::User(
            AdminUserCommand::Deactivate { user_id } | AdminUserCommand::Reactivate { user_id },
        ) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let active = matches!(
                command,
                AdminCommand::User(AdminUserCommand::Reactivate { .. })
            );
            let user = session
                .call(async |client| client.set_user_active(&user_id, active).await)
                .await?;
            Output::new(describe_user(&user), output::user(&user))
        }
        AdminCommand::User(AdminUserCommand::Code {
            user_id,
            keep_others,
        }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let issued = session
                .call(async |client| {
                    client
                        .issue_enrollment_code_keeping(&user_id, *keep_others)
                        .await
                })
                .await?;
            let user = session
                .call(async |client| client.get_user(&user_id).await)
                .await?;
            let revoked = match issued.revoked {
                0 => String::new(),
                1 => "\nTheir older code no longer works.".to_owned(),
                n => format!("\nTheir {n} older codes no longer work."),
            };
            let command = enroll_command(&session, &issued.code);
            Output::new(
                format!(
                    "One-time enrollment code for {} (shown only now):\n  {}\nIt expires at {} \
                     (code id {}).{revoked}\nThey enroll with:\n  {command}",
                    printable(&user.display_name),
                    printable(&issued.code),
                    session.times.at(issued.expires_at_ms),
                    printable(&issued.code_id),
                ),
                json!({
                    "user_id": user.user_id,
                    "code": issued.code,
                    "code_id": issued.code_id,
                    "expires_at": output::rfc3339(issued.expires_at_ms),
                    "revoked": issued.revoked,
                    "enroll_command": command,
                }),
            )
        }
        AdminCommand::User(AdminUserCommand::Codes { user_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let codes = session
                .call(async |client| client.enrollment_codes(&user_id).await)
                .await?;
            let text = if codes.codes.is_empty() {
                "No outstanding enrollment codes.".to_owned()
            } else {
                codes
                    .codes
                    .iter()
                    .map(|code| {
                        format!(
                            "{}  issued {}  expires {}",
                            printable(&code.code_id),
                            session.times.at(code.created_at_ms),
                            session.times.at(code.expires_at_ms)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let json = codes
                .codes
                .iter()
                .map(|code| {
                    json!({
                        "code_id": code.code_id,
                        "issued_at": output::rfc3339(code.created_at_ms),
                        "expires_at": output::rfc3339(code.expires_at_ms),
                    })
                })
                .collect::<Vec<_>>();
            Output::new(text, json!({ "codes": json }))
        }
        AdminCommand::User(AdminUserCommand::RevokeCode { user_id, code_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            session
                .call(async |client| {
                    client
                        .revoke_enrollment_code(&user_id, code_id.trim())
                        .await
                })
                .await?;
            Output::from(format!(
                "Revoked enrollment code {}",
                printable(code_id.trim())
            ))
        }
        AdminCommand::Device(AdminDeviceCommand::List { user_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let list = session
                .call(async |client| client.list_devices(&user_id).await)
                .await?;
            let lines: Vec<String> = list
                .devices
                .iter()
                .map(|device| {
                    format!(
                        "{}  {}  enrolled {}",
                        printable(&device.device_id),
                        printable(&device.device_name),
                        session.times.at(device.created_at_ms)
                    )
                })
                .collect();
            let text = if lines.is_empty() {
                "No devices.".to_owned()
            } else {
                lines.join("\n")
            };
            let json = list
                .devices
                .iter()
                .map(|device| {
                    json!({
                        "device_id": device.device_id,
                        "device_name": device.device_name,
                        "enrolled_at": output::rfc3339(device.created_at_ms),
                    })
                })
                .collect::<Vec<_>>();
            Output::new(text, json!({ "devices": json }))
        }
        AdminCommand::Device(AdminDeviceCommand::Remove { user_id, device_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            session
                .call(async |client| client.remove_device(&user_id, device_id.trim()).await)
                .await?;
            Output::from("Device removed; its sessions have ended.".to_owned())
        }
        AdminCommand::Audit(command) => audit::run(&mut session, command).await?.into(),
        AdminCommand::Policy(AdminPolicyCommand::Publish { file }) => {
            let text = std::fs::read_to_string(file).map_err(|error| CliError::ReadFile {
                path: file.display().to_string(),
                error,
            })?;
            let published = session
                .call(async |client| client.publish_policy(&text).await)
                .await?;
            Output::from(format!(
                "Published version {} of the messaging policy. Everyone must accept it \
                 (`curbside policy accept`) before using threads again.",
                published.version
            ))
        }
        AdminCommand::Retention(command) => {
            retention::retention(&mut session, command).await?.into()
        }
        AdminCommand::Hold(command) => retention::hold(&mut session, command).await?.into(),
        AdminCommand::Role(command) => roles::role(&mut session, command).await?.into(),
        AdminCommand::Escalation(command) => roles::escalation(&mut session, command).await?.into(),
        AdminCommand::Policy(AdminPolicyCommand::Pending) => {
            let pending = session
                .call(async |client| client.policy_pending().await)
                .await?;
            let text = match pending.version {
                None => "No messaging policy has been published.".to_owned(),
                Some(version) if pending.users.is_empty() => {
                    format!("Everyone has accepted version {version}.")
                }
                Some(version) => {
                    let mut lines = vec![format!("Not yet accepted version {version}:")];
                    lines.extend(pending.users.iter().map(describe_user));
                    lines.join("\n")
                }
            };
            Output::new(
                text,
                json!({
                    "version": pending.version,
                    "users": pending.users.iter().map(output::user).collect::<Vec<_>>(),
                }),
            )
        }
        AdminCommand::User(AdminUserCommand::Import { file }) => {
            users::import(&mut session, file).await?
        }
    })
}

/// The command that enrolls a device with `code` on this profile's server,
/// trusting it as this profile does.
fn enroll_command(session: &Session, code: &str) -> String {
    let contents = &session.contents;
    let trust = match (&contents.pin_sha256, &contents.ca_cert) {
        (Some(pin), _) => format!(" --pin-sha256 {pin}"),
        (None, Some(ca)) => format!(" --ca-cert {}", ca.display()),
        (None, None) => String::new(),
    };
    format!(
        "curbside --server {}{trust} --profile NAME enroll --code {code}",
        contents.server.trim_end_matches('/')
    )
}
