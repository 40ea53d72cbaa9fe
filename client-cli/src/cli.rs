//! The `curbside` command line: global options say which server to talk to,
//! how to trust it and which local profile to act as; subcommands say what
//! to do.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use curbside_proto::CertificateFingerprint;
use curbside_proto::audit::Outcome;
use curbside_proto::audit_review::{AuditFilter, ExportFormat, ExportQuery, SearchQuery};
use curbside_proto::identity::{EnrollRequest, NewUser, Role, User, UserStatus, UserUpdate};
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::audit;
use crate::client::{Client, ClientError};
use crate::conversation;
pub use crate::error::CliError;
use crate::session::{Given, Options, Session, lock, new_passphrase, profile};
use crate::show;
use crate::show::printable;
use crate::store::{StoreContents, StoreError};
use crate::trust::Trust;

/// Curbside: end-to-end encrypted case discussion for clinicians.
#[derive(Debug, Parser)]
#[command(name = "curbside", version)]
pub struct Cli {
    /// The server, as https://HOST:PORT (enrolled profiles remember it).
    #[arg(long, env = "CURBSIDE_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (the
    /// server prints it at start). Checked before --ca-cert and the system roots.
    #[arg(
        long = "pin-sha256",
        env = "CURBSIDE_PIN_SHA256",
        global = true,
        value_name = "FINGERPRINT"
    )]
    pub pin_sha256: Option<CertificateFingerprint>,
    /// Trust server certificates issued by the CA certificates in this PEM file.
    #[arg(long, env = "CURBSIDE_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The local profile (device key and session) to act as.
    #[arg(
        long,
        env = "CURBSIDE_PROFILE",
        global = true,
        default_value = "default",
        value_name = "NAME"
    )]
    pub profile: String,
    /// Where profiles live [default: $HOME/.curbside].
    #[arg(long, env = "CURBSIDE_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Show and read times in UTC rather than this computer's time zone.
    #[arg(long, env = "CURBSIDE_UTC", global = true)]
    pub utc: bool,
    /// The profile's passphrase, for programs that embed this command line
    /// (people use `CURBSIDE_PASSPHRASE` or the prompt; there is no flag, so
    /// it never shows in a process listing).
    #[arg(skip)]
    pub passphrase: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The global options, for a session.
    fn options(&self) -> Options<'_> {
        Options {
            server: self.server.as_deref(),
            pin_sha256: self.pin_sha256,
            ca_cert: self.ca_cert.as_deref(),
            profile: &self.profile,
            home: self.home.as_deref(),
            utc: self.utc,
            passphrase: self.passphrase.as_deref(),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server is up and its database answers.
    Health,
    /// Enroll this device with a one-time code from an administrator.
    Enroll(EnrollArgs),
    /// Log in (challenge-response with this profile's device key).
    Login,
    /// End this profile's session.
    Logout,
    /// Show who this profile is signed in as.
    Whoami,
    /// Find colleagues.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Administer users and devices (administrators only).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// List your threads with their unread counts.
    Threads,
    /// Start threads and change their members.
    #[command(subcommand)]
    Thread(ThreadCommand),
    /// Send a message to a thread (the text, or standard input).
    Send {
        /// The thread.
        thread: String,
        /// The message; read from standard input if left out.
        text: Option<String>,
    },
    /// Show a thread's messages and mark them read.
    Read {
        /// The thread.
        thread: String,
    },
    /// Print each new message as it arrives, until interrupted.
    Watch {
        /// Stop after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
    },
    /// Print the number to compare aloud with a colleague.
    SafetyNumber {
        /// Their user id or name.
        user: String,
    },
    /// Ask for the passphrase now, and keep the profile unlocked while it
    /// is in use (15 minutes idle by default; CURBSIDE_UNLOCK_MINUTES).
    Unlock,
    /// Forget the passphrase: the next command asks for it again.
    Lock,
    /// The unlock agent itself (started by the commands).
    #[command(hide = true)]
    Agent,
}

/// `curbside enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The enrollment code, e.g. ABCD-EFGH-JKMN-PQRS-TVWX.
    #[arg(long)]
    pub code: String,
    /// A name for this device.
    #[arg(long, default_value = "curbside cli")]
    pub device_name: String,
    /// Your name (only with a first-administrator code).
    #[arg(long)]
    pub display_name: Option<String>,
}

/// `curbside directory ...`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Search active users by name or department.
    Search {
        /// Text to look for (empty lists everyone).
        #[arg(default_value = "")]
        query: String,
    },
}

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
}

/// `curbside thread ...`.
#[derive(Debug, Subcommand)]
pub enum ThreadCommand {
    /// Start a thread with colleagues (user ids or names).
    New {
        /// Who to talk with: USER[,USER...].
        #[arg(long, value_delimiter = ',', required = true)]
        with: Vec<String>,
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

/// `curbside admin audit ...`.
#[derive(Debug, Subcommand)]
pub enum AdminAuditCommand {
    /// Search the log; prints a table, oldest first.
    Search {
        /// What to look for.
        #[command(flatten)]
        filter: FilterArgs,
        /// Start after this sequence number (from the previous page).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// The most entries to show (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Export the log (or what a filter matches) to a new file.
    Export {
        /// jsonl or csv.
        #[arg(long, value_parser = parse_format)]
        format: ExportFormat,
        /// The file to write; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// What to export (a filtered export cannot be verified).
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Recompute the hash chain and check every signed checkpoint, of the
    /// server's log or of an unfiltered export file.
    Verify {
        /// Verify this export file (JSON Lines or CSV) instead of the
        /// server's log.
        #[arg(long, value_name = "EXPORT")]
        file: Option<PathBuf>,
        /// The audit public key (base64url) to trust, e.g. recorded when
        /// the server was installed; by default the server's published key.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
    },
}

/// Audit search filters.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// The acting user's id.
    #[arg(long, value_name = "USER_ID")]
    pub actor: Option<String>,
    /// A resource's id (user, device, session or thread).
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// An action, e.g. auth.login.
    #[arg(long)]
    pub action: Option<String>,
    /// allowed or denied.
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
    /// From this time: a date (2026-11-22, from its start), a local time
    /// (2026-11-22T09:00), RFC 3339 (2026-11-22T09:00:00Z) or Unix ms;
    /// local times are in this computer's zone, or UTC with --utc.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time (as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl FilterArgs {
    fn filter(&self, times: &show::Times) -> Result<AuditFilter, CliError> {
        let time = |option: &'static str, text: &Option<String>| {
            text.as_deref()
                .map(|text| times.parse(text))
                .transpose()
                .map_err(|reason| CliError::BadTime { option, reason })
        };
        Ok(AuditFilter {
            actor: self.actor.clone(),
            resource: self.resource.clone(),
            action: self.action.clone(),
            outcome: self.outcome,
            since_ms: time("--since", &self.since)?,
            until_ms: time("--until", &self.until)?,
        })
    }
}

fn parse_format(text: &str) -> Result<ExportFormat, String> {
    match text {
        "jsonl" => Ok(ExportFormat::Jsonl),
        "csv" => Ok(ExportFormat::Csv),
        _ => Err("expected jsonl or csv".to_owned()),
    }
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    match text {
        "allowed" => Ok(Outcome::Allowed),
        "denied" => Ok(Outcome::Denied),
        _ => Err("expected allowed or denied".to_owned()),
    }
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

/// Runs a command and returns what it prints on success.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    match &cli.command {
        Command::Health => health(&cli).await,
        Command::Unlock => {
            let mut session = Session::open(&cli.options()).await?;
            if session.given == Given::Set {
                return Ok("CURBSIDE_PASSPHRASE is set: there is nothing to unlock".to_owned());
            }
            session.unlocked().await;
            Ok(format!(
                "Profile {} is unlocked for {} minutes after its last use; `curbside lock` ends it",
                session.profile.name(),
                crate::agent::idle_time().as_secs() / 60
            ))
        }
        Command::Lock => {
            let profile = profile(&cli.options())?;
            Ok(if crate::agent::stop(&profile).await {
                format!("Profile {} is locked", profile.name())
            } else {
                format!("Profile {} was not unlocked", profile.name())
            })
        }
        Command::Agent => {
            let profile = profile(&cli.options())?;
            crate::agent::serve(&profile, crate::agent::idle_time())
                .await
                .map_err(CliError::Agent)?;
            Ok(String::new())
        }
        Command::Enroll(args) => enroll(&cli, args).await,
        Command::Login => {
            let mut session = Session::open(&cli.options()).await?;
            let user = session.login().await?;
            Ok(format!(
                "Logged in as {} ({}) on device {}",
                printable(&user.display_name),
                user.role.as_str(),
                printable(&session.contents.device_id)
            ))
        }
        Command::Logout => {
            let mut session = Session::open(&cli.options()).await?;
            if session.contents.session.is_some() {
                let result = session.client.logout().await;
                session.contents.session = None;
                session.save()?;
                match result {
                    Ok(()) | Err(ClientError::Api { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            crate::agent::stop(&session.profile).await;
            Ok("Logged out; the profile is locked".to_owned())
        }
        Command::Whoami => {
            let mut session = Session::open(&cli.options()).await?;
            let whoami = session.call(async |client| client.whoami().await).await?;
            Ok(format!(
                "{}\ndevice {} ({})\nsession {}",
                describe_user(&whoami.user),
                printable(&whoami.device.device_id),
                printable(&whoami.device.device_name),
                printable(&whoami.session_id)
            ))
        }
        Command::Directory(DirectoryCommand::Search { query }) => {
            let mut session = Session::open(&cli.options()).await?;
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
        Command::Admin(command) => admin(&cli, command).await,
        Command::Threads => conversation::list(&mut Session::open(&cli.options()).await?).await,
        Command::Thread(ThreadCommand::New { with, subject }) => {
            conversation::new_thread(
                &mut Session::open(&cli.options()).await?,
                with,
                subject.as_deref(),
            )
            .await
        }
        Command::Thread(ThreadCommand::Add { thread, user }) => {
            conversation::change_members(
                &mut Session::open(&cli.options()).await?,
                thread,
                user,
                true,
            )
            .await
        }
        Command::Thread(ThreadCommand::Remove { thread, user }) => {
            conversation::change_members(
                &mut Session::open(&cli.options()).await?,
                thread,
                user,
                false,
            )
            .await
        }
        Command::Thread(ThreadCommand::Show { thread }) => {
            conversation::show(&mut Session::open(&cli.options()).await?, thread).await
        }
        Command::Thread(ThreadCommand::Subject { thread, subject }) => {
            conversation::set_thread_subject(
                &mut Session::open(&cli.options()).await?,
                thread,
                subject,
            )
            .await
        }
        Command::Thread(ThreadCommand::Leave { thread }) => {
            conversation::leave(&mut Session::open(&cli.options()).await?, thread).await
        }
        Command::Send { thread, text } => {
            let text = conversation::message_text(text.as_deref())?;
            conversation::send(&mut Session::open(&cli.options()).await?, thread, &text).await
        }
        Command::Read { thread } => {
            conversation::read(&mut Session::open(&cli.options()).await?, thread).await
        }
        Command::Watch { count } => {
            conversation::watch(&mut Session::open(&cli.options()).await?, *count).await
        }
        Command::SafetyNumber { user } => {
            conversation::safety_number(&mut Session::open(&cli.options()).await?, user).await
        }
    }
}

async fn health(cli: &Cli) -> Result<String, CliError> {
    // The profile's server, as it trusts it, unless told otherwise; no
    // passphrase needed.
    let note = profile(&cli.options())
        .ok()
        .and_then(|profile| profile.server_note());
    let server = cli
        .server
        .clone()
        .or_else(|| note.as_ref().map(|note| note.server.clone()))
        .ok_or(CliError::NoServer)?;
    let (pin, ca) = if cli.server.is_some() || cli.pin_sha256.is_some() || cli.ca_cert.is_some() {
        (cli.pin_sha256, cli.ca_cert.clone())
    } else {
        (
            note.as_ref()
                .and_then(|note| note.pin_sha256.as_deref())
                .and_then(|pin| pin.parse().ok()),
            note.and_then(|note| note.ca_cert),
        )
    };
    let client = Client::new(&server, &Trust::from_options(pin, ca))?;
    client.health().await?;
    client.ready().await?;
    Ok(format!(
        "{} is healthy: serving TLS, database ready",
        client.server().as_str().trim_end_matches('/')
    ))
}

async fn enroll(cli: &Cli, args: &EnrollArgs) -> Result<String, CliError> {
    let server = cli.server.as_deref().ok_or(CliError::NoServer)?;
    if cli.pin_sha256.is_none() && cli.ca_cert.is_none() {
        return Err(CliError::NoTrust);
    }
    let profile = profile(&cli.options())?;
    if profile.exists() {
        return Err(StoreError::Exists(profile.name().to_owned()).into());
    }
    let passphrase = new_passphrase(&cli.options(), &profile)?;
    let _lock = lock(&profile).await?;
    if profile.exists() {
        return Err(StoreError::Exists(profile.name().to_owned()).into());
    }
    let client = Client::new(
        server,
        &Trust::from_options(cli.pin_sha256, cli.ca_cert.clone()),
    )?;
    let pkcs8 = Zeroizing::new(
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| CliError::BadKey)?
            .as_ref()
            .to_vec(),
    );
    let key = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| CliError::BadKey)?;
    let enrolled = client
        .enroll(&EnrollRequest {
            code: args.code.clone(),
            device_name: args.device_name.clone(),
            public_key: key.public_key().as_ref().to_vec(),
            display_name: args.display_name.clone(),
        })
        .await?;
    let contents = StoreContents {
        server: client.server().to_string(),
        pin_sha256: cli.pin_sha256.map(|pin| pin.to_string()),
        pin_key_sha256: client
            .presented()
            .filter(|_| cli.pin_sha256.is_some())
            .map(|presented| hex::encode(presented.key)),
        ca_cert: cli.ca_cert.clone(),
        server_id: enrolled.server_id,
        user_id: enrolled.user.user_id.clone(),
        device_id: enrolled.device.device_id.clone(),
        device_key_pkcs8: pkcs8.to_vec(),
        session: None,
        mls_state: Vec::new(),
        threads: Default::default(),
    };
    profile.save(&contents, &passphrase)?;
    Ok(format!(
        "Enrolled device {} for {}\nLog in with: curbside --profile {} login",
        printable(&enrolled.device.device_id),
        describe_user(&enrolled.user),
        profile.name()
    ))
}

async fn admin(cli: &Cli, command: &AdminCommand) -> Result<String, CliError> {
    let mut session = Session::open(&cli.options()).await?;
    match command {
        AdminCommand::User(AdminUserCommand::Create {
            name,
            role,
            department,
            licence,
        }) => {
            let new = NewUser {
                display_name: name.clone(),
                role: *role,
                department: department.clone(),
                licence_number: licence.clone(),
            };
            let user = session
                .call(async |client| client.create_user(&new).await)
                .await?;
            Ok(format!("Created {}", describe_user(&user)))
        }
        AdminCommand::User(AdminUserCommand::List { query, role }) => {
            let list = session
                .call(async |client| client.list_users(query, *role, None).await)
                .await?;
            let lines: Vec<String> = list.users.iter().map(describe_user).collect();
            Ok(if lines.is_empty() {
                "No users match.".to_owned()
            } else {
                lines.join("\n")
            })
        }
        AdminCommand::User(AdminUserCommand::Show { user_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let user = session
                .call(async |client| client.get_user(&user_id).await)
                .await?;
            Ok(describe_user(&user))
        }
        AdminCommand::User(AdminUserCommand::Update {
            user_id,
            name,
            role,
            department,
            licence,
        }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let update = UserUpdate {
                display_name: name.clone(),
                role: *role,
                department: department.clone(),
                licence_number: licence.clone(),
            };
            let user = session
                .call(async |client| client.update_user(&user_id, &update).await)
                .await?;
            Ok(format!("Updated {}", describe_user(&user)))
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
            Ok(describe_user(&user))
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
            Ok(format!(
                "One-time enrollment code for {} (shown only now):\n  {}\nIt expires at {} \
                 (code id {}).{revoked}\nThey enroll with:\n  {}",
                printable(&user.display_name),
                printable(&issued.code),
                session.times.at(issued.expires_at_ms),
                printable(&issued.code_id),
                enroll_command(&session, &issued.code),
            ))
        }
        AdminCommand::User(AdminUserCommand::Codes { user_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            let codes = session
                .call(async |client| client.enrollment_codes(&user_id).await)
                .await?;
            if codes.codes.is_empty() {
                return Ok("No outstanding enrollment codes.".to_owned());
            }
            Ok(codes
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
                .join("\n"))
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
            Ok(format!(
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
            Ok(if lines.is_empty() {
                "No devices.".to_owned()
            } else {
                lines.join("\n")
            })
        }
        AdminCommand::Device(AdminDeviceCommand::Remove { user_id, device_id }) => {
            let user_id = admin_user(&mut session, user_id).await?;
            session
                .call(async |client| client.remove_device(&user_id, device_id.trim()).await)
                .await?;
            Ok("Device removed; its sessions have ended.".to_owned())
        }
        AdminCommand::Audit(command) => audit_command(&mut session, command).await,
    }
}

/// The user `given` names, for an administrator: an id as it is (the
/// server says if there is no such user), or the whole of a name only one
/// user has, active or not (as [`crate::people::resolve`] matches names).
async fn admin_user(session: &mut Session, given: &str) -> Result<String, CliError> {
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
    let users = session
        .call(async |client| client.list_users(&bare, None, None).await)
        .await?
        .users;
    // A list cut at its bound may have left out a namesake.
    if users.len() >= curbside_proto::identity::MAX_USER_LIST as usize {
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

async fn audit_command(
    session: &mut Session,
    command: &AdminAuditCommand,
) -> Result<String, CliError> {
    match command {
        AdminAuditCommand::Search {
            filter,
            after,
            limit,
        } => {
            let filter = filter.filter(&session.times)?;
            let query = SearchQuery {
                actor: filter.actor,
                resource: filter.resource,
                action: filter.action,
                outcome: filter.outcome,
                since_ms: filter.since_ms,
                until_ms: filter.until_ms,
                after: *after,
                limit: Some(*limit),
            };
            let page = session
                .call(async |client| client.audit_search(&query).await)
                .await?;
            Ok(audit::table(&page))
        }
        AdminAuditCommand::Export {
            format,
            out,
            filter,
        } => {
            let query = export_query(*format, &filter.filter(&session.times)?);
            let response = session
                .call(async |client| client.audit_export(&query).await)
                .await?;
            let bytes = audit::save_export(&session.client, response, out).await?;
            Ok(format!(
                "Exported the audit log to {} ({bytes} bytes).",
                out.display()
            ))
        }
        AdminAuditCommand::Verify { file, public_key } => {
            let key = match public_key {
                Some(text) => curbside_proto::b64::decode(text.trim())
                    .ok()
                    .filter(|key| key.len() == 32)
                    .ok_or(CliError::BadPublicKey)?,
                None => session.client.audit_key().await?.public_key,
            };
            let verified = match file {
                Some(path) => audit::verify_file(path, &key)?,
                None => {
                    let query = export_query(ExportFormat::Jsonl, &AuditFilter::default());
                    let response = session
                        .call(async |client| client.audit_export(&query).await)
                        .await?;
                    audit::verify_stream(&session.client, response, &key).await?
                }
            };
            Ok(verified.report())
        }
    }
}

fn export_query(format: ExportFormat, filter: &AuditFilter) -> ExportQuery {
    ExportQuery {
        format,
        actor: filter.actor.clone(),
        resource: filter.resource.clone(),
        action: filter.action.clone(),
        outcome: filter.outcome,
        since_ms: filter.since_ms,
        until_ms: filter.until_ms,
    }
}

fn describe_user(user: &User) -> String {
    format!(
        "{}  {}  {}  {}{}",
        printable(&user.user_id),
        printable(&user.display_name),
        user.role.as_str(),
        printable(&user.department),
        if user.status == UserStatus::Deactivated {
            "  (deactivated)"
        } else {
            ""
        }
    )
}

/// Runs a command, prints its output or error, and returns the exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("curbside: error: {error}");
            ExitCode::FAILURE
        }
    }
}
