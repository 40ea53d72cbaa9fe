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

use crate::audit::{self, AuditError};
use crate::client::{Client, ClientError};
use crate::conversation;
use crate::show;
use crate::show::printable;
use crate::store::{
    MIN_PASSPHRASE_CHARS, Profile, ProfileLock, StoreContents, StoreError, StoredSession,
};
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

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A bug in the CLI itself.
    #[error("internal error in curbside ({0}); please report it")]
    Internal(&'static str),
    /// No server was named.
    #[error("no server given: pass --server https://HOST:PORT or set CURBSIDE_SERVER")]
    NoServer,
    /// Enrolling needs an explicit way to trust the server.
    #[error(
        "to enroll, say how to trust the server: --pin-sha256 FINGERPRINT (printed by the server \
         at start) or --ca-cert FILE"
    )]
    NoTrust,
    /// No passphrase could be had.
    #[error(
        "a passphrase protects this profile's keys: set CURBSIDE_PASSPHRASE or run in a terminal \
         to be asked"
    )]
    NoPassphrase,
    /// No home directory.
    #[error("no home directory: pass --home DIR or set CURBSIDE_HOME")]
    NoHome,
    /// The stored key is unusable.
    #[error("this profile's device key is damaged; enroll again with a new code")]
    BadKey,
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An audit command failed, or the log does not verify.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// An MLS step failed.
    #[error(transparent)]
    Mls(crate::mls::MlsError),
    /// This device does not know the thread.
    #[error(
        "no thread {0:?} on this profile; list yours with `curbside threads` (a thread is named \
         by its id, the start of it, or its subject)"
    )]
    UnknownThread(String),
    /// Several threads go by what was given.
    #[error(
        "several threads go by {given:?}: {}; name one by its id, or enough of the start of it",
        ids.join(", ")
    )]
    AmbiguousThread {
        /// What was given.
        given: String,
        /// The threads' ids.
        ids: Vec<String>,
    },
    /// This user's membership of a thread ended.
    #[error("{0}")]
    NotAMember(String),
    /// No active user matches.
    #[error(
        "{}",
        if *by_id {
            format!("no active user has the id {}: mistyped, or the user was deactivated; find people with `curbside directory search NAME`", printable(given))
        } else if given.is_empty() {
            "name someone: a user id, or a name only one colleague has".to_owned()
        } else {
            format!("no active user is named {given:?}; find people with `curbside directory search NAME`")
        }
    )]
    NoSuchUser {
        /// What was given.
        given: String,
        /// Whether it was an id.
        by_id: bool,
    },
    /// Part of some names (or departments), the whole of none.
    #[error(
        "no one is named {given:?}; it matches these people's names or departments: {}; give \
         the whole name, or the user id",
        candidates.join("; ")
    )]
    PartOfName {
        /// What was given.
        given: String,
        /// Whom it matches (name, department, id).
        candidates: Vec<String>,
    },
    /// So many people match that a namesake may be among those not read.
    #[error(
        "too many people match {given:?} to be sure who is meant; give the user id (find it with \
         `curbside directory search NAME`)"
    )]
    TooManyMatches {
        /// What was given.
        given: String,
    },
    /// More than one user has the name.
    #[error(
        "{given:?} is the name of several people: {}; give the user id",
        candidates.join("; ")
    )]
    AmbiguousUser {
        /// What was given.
        given: String,
        /// Who matches (name, department, id).
        candidates: Vec<String>,
    },
    /// A key package's credential does not match the directory.
    #[error(
        "the key package of device {0} does not match the directory's key for that device; do \
         not add it, and tell your administrator"
    )]
    CredentialMismatch(String),
    /// A user has no device with key packages.
    #[error(
        "{0} has no device ready to be added (none has published its keys); ask them to run any \
         curbside command, then try again"
    )]
    NoKeyPackages(String),
    /// A user to remove is not in the thread.
    #[error("{0} is not in this thread")]
    NotInThread(String),
    /// A user to add is in the thread already.
    #[error("{0} is already in this thread")]
    AlreadyMember(String),
    /// Removing oneself.
    #[error("to leave a thread, use `curbside thread leave THREAD`; you cannot remove yourself")]
    RemoveSelf,
    /// A thread with no one else.
    #[error("name at least one colleague to start a thread with (--with NAME)")]
    NobodyElse,
    /// The thread kept moving.
    #[error("thread {0} kept changing while this was tried; try again")]
    Busy(String),
    /// Nothing to send.
    #[error("the message is empty; give the text, or pipe it in")]
    EmptyMessage,
    /// A subject with no text.
    #[error("the subject is empty; give the new subject in quotes")]
    EmptySubject,
    /// The session was ended by the server (logout, automatic logoff,
    /// removal), and is not to be replaced without asking.
    #[error(
        "the session was ended (logged out, idle for too long, or this device or its user was \
         removed); run the command again to sign in"
    )]
    SessionEnded,
    /// The server closed the event connection.
    #[error(
        "the server closed the connection (session ended or too far behind); run the command again"
    )]
    Disconnected,
    /// The server would not sign this device in.
    #[error("{0}")]
    SignInRefused(String),
    /// The profile is locked and no passphrase was given.
    #[error("{0}")]
    Agent(String),
    /// A time given on the command line is not one.
    #[error("{option}: {reason}")]
    BadTime {
        /// The option.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A public key given on the command line is not one.
    #[error(
        "--public-key must be the 32-byte Ed25519 key in base64url, as the server publishes it"
    )]
    BadPublicKey,
}

/// Runs a command and returns what it prints on success.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    match &cli.command {
        Command::Health => health(&cli).await,
        Command::Unlock => {
            let mut session = Session::open(&cli).await?;
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
            let profile = profile(&cli)?;
            Ok(if crate::agent::stop(&profile).await {
                format!("Profile {} is locked", profile.name())
            } else {
                format!("Profile {} was not unlocked", profile.name())
            })
        }
        Command::Agent => {
            let profile = profile(&cli)?;
            crate::agent::serve(&profile, crate::agent::idle_time())
                .await
                .map_err(CliError::Agent)?;
            Ok(String::new())
        }
        Command::Enroll(args) => enroll(&cli, args).await,
        Command::Login => {
            let mut session = Session::open(&cli).await?;
            let user = session.login().await?;
            Ok(format!(
                "Logged in as {} ({}) on device {}",
                printable(&user.display_name),
                user.role.as_str(),
                printable(&session.contents.device_id)
            ))
        }
        Command::Logout => {
            let mut session = Session::open(&cli).await?;
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
            let mut session = Session::open(&cli).await?;
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
            let mut session = Session::open(&cli).await?;
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
        Command::Threads => conversation::list(&mut Session::open(&cli).await?).await,
        Command::Thread(ThreadCommand::New { with, subject }) => {
            conversation::new_thread(&mut Session::open(&cli).await?, with, subject.as_deref())
                .await
        }
        Command::Thread(ThreadCommand::Add { thread, user }) => {
            conversation::change_members(&mut Session::open(&cli).await?, thread, user, true).await
        }
        Command::Thread(ThreadCommand::Remove { thread, user }) => {
            conversation::change_members(&mut Session::open(&cli).await?, thread, user, false).await
        }
        Command::Thread(ThreadCommand::Show { thread }) => {
            conversation::show(&mut Session::open(&cli).await?, thread).await
        }
        Command::Thread(ThreadCommand::Subject { thread, subject }) => {
            conversation::set_thread_subject(&mut Session::open(&cli).await?, thread, subject).await
        }
        Command::Thread(ThreadCommand::Leave { thread }) => {
            conversation::leave(&mut Session::open(&cli).await?, thread).await
        }
        Command::Send { thread, text } => {
            let text = conversation::message_text(text.as_deref())?;
            conversation::send(&mut Session::open(&cli).await?, thread, &text).await
        }
        Command::Read { thread } => {
            conversation::read(&mut Session::open(&cli).await?, thread).await
        }
        Command::Watch { count } => {
            conversation::watch(&mut Session::open(&cli).await?, *count).await
        }
        Command::SafetyNumber { user } => {
            conversation::safety_number(&mut Session::open(&cli).await?, user).await
        }
    }
}

async fn health(cli: &Cli) -> Result<String, CliError> {
    // The profile's server, as it trusts it, unless told otherwise; no
    // passphrase needed.
    let note = profile(cli).ok().and_then(|profile| profile.server_note());
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
    let profile = profile(cli)?;
    if profile.exists() {
        return Err(StoreError::Exists(profile.name().to_owned()).into());
    }
    let passphrase = new_passphrase(cli, &profile)?;
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
            .map(|presented| hex(&presented.key)),
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
    let mut session = Session::open(cli).await?;
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

fn home(cli: &Cli) -> Result<PathBuf, CliError> {
    match &cli.home {
        Some(home) => Ok(home.clone()),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".curbside"))
            .ok_or(CliError::NoHome),
    }
}

fn profile(cli: &Cli) -> Result<Profile, CliError> {
    Ok(Profile::new(&home(cli)?, &cli.profile)?)
}

/// Where a passphrase came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    /// The program embedding the CLI, or `CURBSIDE_PASSPHRASE`.
    Set,
    /// The profile's unlock agent.
    Agent,
    /// Typed just now at the terminal.
    Typed,
    /// Read from standard input that is not a terminal (a script's pipe):
    /// the profile is kept unlocked only if `curbside unlock` asks for it.
    Piped,
}

fn passphrase_set(cli: &Cli) -> Option<Zeroizing<String>> {
    if let Some(passphrase) = &cli.passphrase {
        return Some(Zeroizing::new(passphrase.clone()));
    }
    std::env::var("CURBSIDE_PASSPHRASE")
        .ok()
        .map(Zeroizing::new)
}

/// The profile's passphrase: given by the program or the environment, held
/// by its unlock agent, or asked for at the terminal (or read from standard
/// input when that is not one).
async fn passphrase(
    cli: &Cli,
    profile: &Profile,
    prompt: &str,
) -> Result<(Zeroizing<String>, Given), CliError> {
    if let Some(passphrase) = passphrase_set(cli) {
        return Ok((passphrase, Given::Set));
    }
    if let Some(passphrase) = crate::agent::fetch(profile).await {
        return Ok((passphrase, Given::Agent));
    }
    ask(profile, prompt)
}

fn ask(profile: &Profile, prompt: &str) -> Result<(Zeroizing<String>, Given), CliError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        let mut line = Zeroizing::new(String::new());
        return match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 => Ok((
                Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned()),
                Given::Piped,
            )),
            _ => Err(CliError::NoPassphrase),
        };
    }
    rpassword::prompt_password(format!("{prompt} for profile {}: ", profile.name()))
        .map(|passphrase| (Zeroizing::new(passphrase), Given::Typed))
        .map_err(|_| CliError::NoPassphrase)
}

fn new_passphrase(cli: &Cli, profile: &Profile) -> Result<Zeroizing<String>, CliError> {
    if let Some(passphrase) = passphrase_set(cli) {
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(StoreError::WeakPassphrase.into());
        }
        return Ok(passphrase);
    }
    let (first, _) = ask(profile, "New passphrase")?;
    if first.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(StoreError::WeakPassphrase.into());
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let (again, _) = ask(profile, "Repeat the passphrase")?;
        if *again != *first {
            return Err(CliError::NoPassphrase);
        }
    }
    Ok(first)
}

/// An opened profile and a client for its server. It holds the profile's
/// lock (see `store`) from opening until dropped, except while `watch`
/// has released it to wait for the server.
pub(crate) struct Session {
    profile: Profile,
    home: PathBuf,
    passphrase: Zeroizing<String>,
    /// Where the passphrase came from.
    given: Given,
    pub(crate) contents: StoreContents,
    pub(crate) client: Client,
    /// How times are shown and read.
    pub(crate) times: show::Times,
    lock: Option<ProfileLock>,
    /// Whether the client trusts by the profile's stored pin (which then
    /// follows a renewal), rather than by one given on the command line
    /// (which, when it matches, repairs the stored one).
    stored_pin: bool,
    /// Whether this command talks to the profile's own server.
    own_server: bool,
}

/// Waits for the profile's lock, saying so if another command holds it for
/// long.
async fn lock(profile: &Profile) -> Result<ProfileLock, CliError> {
    let asked = std::time::Instant::now();
    let mut said = false;
    loop {
        if let Some(lock) = profile.try_lock()? {
            return Ok(lock);
        }
        if !said && asked.elapsed() >= LOCK_NOTICE_AFTER {
            said = true;
            eprintln!(
                "curbside: waiting for another curbside command using profile {} to finish…",
                profile.name()
            );
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// How often a command waiting for its profile's lock tries again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// After how long it says that it is waiting.
const LOCK_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl Session {
    async fn open(cli: &Cli) -> Result<Self, CliError> {
        let profile = profile(cli)?;
        if !profile.exists() {
            return Err(StoreError::Missing(profile.name().to_owned()).into());
        }
        let (passphrase, given) = passphrase(cli, &profile, "Passphrase").await?;
        let lock = lock(&profile).await?;
        let contents = match profile.load(&passphrase) {
            Err(StoreError::WrongPassphrase(name)) if given == Given::Agent => {
                // The agent's passphrase no longer opens the store (changed
                // elsewhere): forget it.
                crate::agent::stop(&profile).await;
                return Err(StoreError::WrongPassphrase(name).into());
            }
            other => other?,
        };
        let pin = match (cli.pin_sha256, &contents.pin_sha256) {
            (Some(pin), _) => Some(pin),
            (None, Some(stored)) => stored.parse().ok(),
            (None, None) => None,
        };
        let ca = cli.ca_cert.clone().or_else(|| contents.ca_cert.clone());
        let server = cli
            .server
            .clone()
            .unwrap_or_else(|| contents.server.clone());
        // The stored pin follows a renewal with the same key; a pin given on
        // the command line is taken exactly.
        let key = contents
            .pin_key_sha256
            .as_deref()
            .and_then(unhex)
            .filter(|_| cli.pin_sha256.is_none());
        let trust = match (pin, key) {
            (Some(certificate), Some(key)) => Trust::PinOrSameKey { certificate, key },
            (pin, _) => Trust::from_options(pin, ca),
        };
        let contents_server = contents.server.clone();
        let mut client = Client::new(&server, &trust)?;
        client.set_token(contents.session.as_ref().map(|s| s.token.clone()));
        let home = home(cli)?;
        let mut session = Self {
            profile,
            home,
            passphrase,
            given,
            contents,
            client,
            times: show::Times::new(cli.utc),
            lock: Some(lock),
            stored_pin: cli.pin_sha256.is_none(),
            own_server: cli.server.as_deref().is_none_or(|given| {
                given.trim_end_matches('/') == contents_server.trim_end_matches('/')
            }),
        };
        if given == Given::Typed {
            session.unlocked().await;
        }
        Ok(session)
    }

    /// Keeps the profile unlocked for the next commands (its unlock agent
    /// holds the passphrase), unless it already is or the passphrase was
    /// set by the environment.
    pub(crate) async fn unlocked(&mut self) {
        if !matches!(self.given, Given::Typed | Given::Piped) {
            return;
        }
        if let Err(error) = crate::agent::start(&self.profile, &self.home, &self.passphrase) {
            eprintln!(
                "curbside: cannot keep the profile unlocked ({error}); the next command will ask \
                 for the passphrase again"
            );
        }
        self.given = Given::Agent;
    }

    /// Lets other commands use the profile (while `watch` waits for the
    /// server). What is in memory may then go stale: [`Session::resume`]
    /// reads it again.
    pub(crate) fn release(&mut self) {
        self.lock = None;
    }

    /// Takes the profile's lock again and reads the store anew, with
    /// whatever other commands saved meanwhile.
    pub(crate) async fn resume(&mut self) -> Result<(), CliError> {
        if self.lock.is_none() {
            self.lock = Some(lock(&self.profile).await?);
            self.contents = self.profile.load(&self.passphrase)?;
            self.client
                .set_token(self.contents.session.as_ref().map(|s| s.token.clone()));
        }
        Ok(())
    }

    pub(crate) fn save(&self) -> Result<(), CliError> {
        if self.lock.is_none() {
            // A save without the lock could undo another command's.
            return Err(CliError::Internal("saving a profile without its lock"));
        }
        Ok(self.profile.save(&self.contents, &self.passphrase)?)
    }

    async fn login(&mut self) -> Result<User, CliError> {
        let key = Ed25519KeyPair::from_pkcs8(&self.contents.device_key_pkcs8)
            .map_err(|_| CliError::BadKey)?;
        let logged_in = self
            .client
            .login_with_key(&self.contents.server_id, &self.contents.device_id, &key)
            .await
            .map_err(|error| match error {
                // Signing in again will not help: say so, and stop.
                ClientError::Api {
                    status, message, ..
                } if status == reqwest::StatusCode::UNAUTHORIZED => {
                    CliError::SignInRefused(message)
                }
                other => other.into(),
            })?;
        self.contents.session = Some(StoredSession {
            token: logged_in.token.clone(),
            expires_at_ms: logged_in.expires_at_ms,
        });
        self.save()?;
        Ok(self.client.whoami().await?.user)
    }

    /// Calls the server with the stored session; logs in first when there
    /// is none or it has expired, and once more if the server says the
    /// session has ended.
    pub(crate) async fn call<T>(
        &mut self,
        request: impl AsyncFn(&Client) -> Result<T, ClientError>,
    ) -> Result<T, CliError> {
        let now = now_ms();
        let usable = self
            .contents
            .session
            .as_ref()
            .is_some_and(|session| session.expires_at_ms > now + 30_000);
        if !usable {
            self.login().await?;
        }
        let result = match request(&self.client).await {
            Err(ClientError::Api { status, .. })
                if usable && status == reqwest::StatusCode::UNAUTHORIZED =>
            {
                self.login().await?;
                request(&self.client).await?
            }
            result => result?,
        };
        self.remember_certificate()?;
        Ok(result)
    }

    /// Keeps the pinned certificate's key, and follows a certificate the
    /// server renewed with that key: the profile pins the new fingerprint.
    fn remember_certificate(&mut self) -> Result<(), CliError> {
        let Some(presented) = self.client.presented() else {
            return Ok(());
        };
        let Some(stored) = self.contents.pin_sha256.clone() else {
            return Ok(());
        };
        let certificate = presented.certificate.to_string();
        let key = hex(&presented.key);
        if stored == certificate && self.contents.pin_key_sha256.as_deref() == Some(key.as_str()) {
            return Ok(());
        }
        if stored != certificate {
            if self.stored_pin {
                eprintln!(
                    "curbside: the server renewed its TLS certificate with the same key; \
                     profile {} now pins {certificate}",
                    self.profile.name()
                );
            } else if self.own_server {
                eprintln!(
                    "curbside: profile {} now pins {certificate}, as given",
                    self.profile.name()
                );
            } else {
                return Ok(());
            }
        }
        self.contents.pin_sha256 = Some(certificate);
        self.contents.pin_key_sha256 = Some(key);
        self.save()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
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
