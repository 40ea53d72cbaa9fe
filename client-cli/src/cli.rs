//! The `curbside` command line: global options say which server to talk to,
//! how to trust it and which local profile to act as; subcommands say what
//! to do.
//!
//! This module holds the top level: the global options, the list of
//! commands, the few that stand alone (health, enroll, login, logout,
//! whoami, unlock, lock) and the dispatch. Each group of commands
//! (`directory`, `admin`, `thread`) has its module under `crate::commands`,
//! and the thread commands' work is in `crate::conversation`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use curbside_proto::CertificateFingerprint;
use curbside_proto::identity::EnrollRequest;
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::client::{Client, ClientError};
pub use crate::commands::admin::{AdminCommand, AdminDeviceCommand, AdminUserCommand};
pub use crate::commands::audit::{AdminAuditCommand, FilterArgs, OfflineAuditCommand};
pub use crate::commands::directory::DirectoryCommand;
pub use crate::commands::policy::PolicyCommand;
pub use crate::commands::profile::ProfileCommand;
pub use crate::commands::thread::ThreadCommand;
use crate::commands::{admin, audit, directory, policy, profile, thread};
use crate::conversation;
pub use crate::error::CliError;
use crate::error::exit;
pub use crate::output::{Format, Output};
use crate::people::describe_user;
use crate::session::{Given, Options, Session, lock, new_passphrase, profile};
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
    /// The local profile (device key and session) to act as [default: the
    /// one `curbside profile use` chose, else "default"].
    #[arg(long, env = "CURBSIDE_PROFILE", global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Where profiles live [default: $HOME/.curbside].
    #[arg(long, env = "CURBSIDE_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Show and read times in UTC rather than this computer's time zone.
    #[arg(long, env = "CURBSIDE_UTC", global = true)]
    pub utc: bool,
    /// Print the result as text for people, or as one JSON value for
    /// programs (times in RFC 3339, UTC).
    #[arg(
        long,
        env = "CURBSIDE_OUTPUT",
        global = true,
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub output: Format,
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
            profile: self.profile.as_deref().unwrap_or("default"),
            home: self.home.as_deref(),
            utc: self.utc,
            passphrase: self.passphrase.as_deref(),
            output: self.output,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server is up and its database answers.
    Health,
    /// Print the digest of the web app the server serves, to compare with
    /// the one it printed at start or with a build of the same sources.
    WebDigest,
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
    /// Read and accept the organisation's messaging policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Administer users and devices (administrators only).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check an audit export offline: no profile, no server.
    #[command(subcommand)]
    Audit(OfflineAuditCommand),
    /// List your threads with their unread counts.
    Threads,
    /// Start threads and change their members.
    #[command(subcommand)]
    Thread(ThreadCommand),
    /// Send a message to a thread (the text, or standard input), with
    /// files if given (encrypted; at most 100 MiB each unless the server
    /// says otherwise).
    Send {
        /// The thread.
        thread: String,
        /// The message; read from standard input if left out (and no file
        /// is given).
        text: Option<String>,
        /// A file to send with it (repeatable).
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<std::path::PathBuf>,
        /// Urgent: the recipients are to acknowledge it (`curbside ack`);
        /// unacknowledged, the server alerts them again and then escalates
        /// to the backup the organisation's policy names.
        #[arg(long)]
        urgent: bool,
    },
    /// Acknowledge an urgent message (the latest you have not, unless its
    /// entry number is given): its sender sees it, and its escalation
    /// stops.
    Ack {
        /// The thread.
        thread: String,
        /// The urgent message's entry number (`read` shows it).
        entry: Option<u64>,
    },
    /// Save an attachment of a thread, decrypted, once its SHA-256 is the
    /// one its message gives.
    Download {
        /// The thread.
        thread: String,
        /// The attachment's id (`read` lists them), or its name if only
        /// one has it.
        attachment: String,
        /// Where to save it (a file that does not exist yet).
        #[arg(long, value_name = "PATH")]
        out: std::path::PathBuf,
    },
    /// Make the thread's messages disappear after a time (30s, 5m, 1h,
    /// 7d, 2w), for every member, or `off`.
    Lifespan {
        /// The thread.
        thread: String,
        /// How long messages live, or `off`.
        lifespan: String,
    },
    /// Recall one of your messages ("delete for everyone"): the last one
    /// you sent in the thread, or the entry given.
    Recall {
        /// The thread.
        thread: String,
        /// The message's entry number (`send` prints it); your last by
        /// default.
        entry: Option<u64>,
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
    /// The local profiles: list them, choose the default, remove one, or
    /// pin a server's new certificate.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print the shell completion script (bash, zsh, fish, elvish,
    /// powershell), e.g. `curbside completions bash >
    /// /etc/bash_completion.d/curbside`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (curbside.1, curbside-send.1, ...) into a
    /// folder, e.g. /usr/local/share/man/man1.
    Man {
        /// The folder to write them in.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
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

/// Runs a command and returns what it prints on success, in the format
/// `--output` asks for.
pub async fn run(mut cli: Cli) -> Result<String, CliError> {
    let format = cli.output;
    if cli.profile.is_none()
        && let Ok(home) = crate::session::home(&cli.options())
    {
        cli.profile = Some(crate::commands::profile::default_name(&home));
    }
    // On the heap: the commands' futures are large (each catches up, reads
    // logs, encrypts), and a caller on a thread with a small stack (a
    // test's, a spawned task's) must not hold one in its own frame.
    Ok(Box::pin(dispatch(cli)).await?.render(format))
}

async fn dispatch(cli: Cli) -> Result<Output, CliError> {
    match &cli.command {
        Command::Directory(command) => directory::run(&cli.options(), command).await,
        Command::Admin(command) => admin::run(&cli.options(), command).await,
        Command::Threads => conversation::list(&mut Session::open(&cli.options()).await?).await,
        Command::Profile(command) => profile::run(&cli.options(), command).await,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "curbside", &mut script);
            let script = String::from_utf8_lossy(&script).into_owned();
            Ok(Output::new(
                script.clone(),
                serde_json::json!({ "shell": shell.to_string(), "script": script }),
            ))
        }
        Command::Man { out_dir } => {
            let written = write_man_pages(out_dir)?;
            Ok(Output::new(
                format!(
                    "Wrote {} manual pages to {}",
                    written.len(),
                    out_dir.display()
                ),
                serde_json::json!({ "written": written }),
            ))
        }
        Command::Read { thread } => {
            let mut session = Session::open(&cli.options()).await?;
            conversation::heal(&mut session).await?;
            conversation::read(&mut session, thread).await
        }
        Command::Whoami => {
            let mut session = Session::open(&cli.options()).await?;
            let whoami = session.call(async |client| client.whoami().await).await?;
            Ok(Output::new(
                format!(
                    "{}\ndevice {} ({})\nsession {}",
                    describe_user(&whoami.user),
                    printable(&whoami.device.device_id),
                    printable(&whoami.device.device_name),
                    printable(&whoami.session_id)
                ),
                serde_json::json!({
                    "user": crate::output::user(&whoami.user),
                    "device_id": whoami.device.device_id,
                    "device_name": whoami.device.device_name,
                    "session_id": whoami.session_id,
                }),
            ))
        }
        Command::Health => {
            let client = stand_alone_client(&cli)?;
            client.health().await?;
            client.ready().await?;
            let server = client.server().as_str().trim_end_matches('/').to_owned();
            Ok(Output::new(
                format!("{server} is healthy: serving TLS, database ready"),
                serde_json::json!({ "server": server, "healthy": true, "ready": true }),
            ))
        }
        _ => Ok(Output::from(Box::pin(dispatch_text(cli)).await?)),
    }
}

/// The commands whose result is a sentence.
async fn dispatch_text(cli: Cli) -> Result<String, CliError> {
    match &cli.command {
        Command::WebDigest => web_digest(&cli).await,
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
        Command::Directory(_)
        | Command::Admin(_)
        | Command::Threads
        | Command::Read { .. }
        | Command::Whoami
        | Command::Health
        | Command::Profile(_)
        | Command::Completions { .. }
        | Command::Man { .. } => Err(CliError::Internal("dispatched twice")),
        Command::Policy(command) => policy::run(&cli.options(), command).await,
        Command::Audit(command) => audit::run_offline(command),
        Command::Thread(command) => thread::run(&cli.options(), command).await,
        Command::Send {
            thread,
            text,
            files,
            urgent,
        } if !files.is_empty() => {
            let mut session = Session::open(&cli.options()).await?;
            conversation::heal(&mut session).await?;
            conversation::send_with_files(&mut session, thread, text.as_deref(), files, *urgent)
                .await
        }
        Command::Send {
            thread,
            text,
            urgent,
            ..
        } => {
            let text = conversation::message_text(text.as_deref())?;
            let mut session = Session::open(&cli.options()).await?;
            conversation::heal(&mut session).await?;
            conversation::send(&mut session, thread, &text, *urgent).await
        }
        Command::Ack { thread, entry } => {
            conversation::acknowledge(&mut Session::open(&cli.options()).await?, thread, *entry)
                .await
        }
        Command::Download {
            thread,
            attachment,
            out,
        } => {
            let mut session = Session::open(&cli.options()).await?;
            conversation::download(&mut session, thread, attachment, out).await
        }
        Command::Lifespan { thread, lifespan } => {
            let mut session = Session::open(&cli.options()).await?;
            conversation::set_lifespan(&mut session, thread, lifespan).await
        }
        Command::Recall { thread, entry } => {
            conversation::recall(&mut Session::open(&cli.options()).await?, thread, *entry).await
        }
        Command::Watch { count } => {
            conversation::watch(&mut Session::open(&cli.options()).await?, *count).await
        }
        Command::SafetyNumber { user } => {
            conversation::safety_number(&mut Session::open(&cli.options()).await?, user).await
        }
    }
}

/// `curbside web-digest`: fetches the web app's list of files and their
/// SHA-256 (`/admin/SHA256SUMS`, as `sha256sum` prints them), checks every
/// file served against it, and prints the list's own SHA-256: the digest
/// the server prints at start, and what `sha256sum` of a build of the same
/// sources gives. The page names its scripts by these files and each
/// script names the next, so matching files mean the code is that build's;
/// the page at `/` and `/admin/` must be the list's `index.html`.
async fn web_digest(cli: &Cli) -> Result<String, CliError> {
    let client = stand_alone_client(cli)?;
    let sums = client.web_file("/admin/SHA256SUMS").await?;
    let unreadable = || {
        CliError::Client(ClientError::UnexpectedResponse {
            status: reqwest::StatusCode::OK,
            detail: "/admin/SHA256SUMS is not a list of SHA-256 sums and file names".to_owned(),
        })
    };
    let text = std::str::from_utf8(&sums).map_err(|_| unreadable())?;
    let mut files = 0;
    let mut page = None;
    for line in text.lines() {
        let (hash, name) = line.split_once("  ").ok_or_else(unreadable)?;
        if hash.len() != 64 || name.is_empty() || name.contains("..") {
            return Err(unreadable());
        }
        let served = client.web_file(&format!("/admin/{name}")).await?;
        let actual = hex::encode(ring::digest::digest(&ring::digest::SHA256, &served).as_ref());
        if actual != hash {
            return Err(CliError::WebAppAltered(printable(name)));
        }
        if name == "index.html" {
            page = Some(actual);
        }
        files += 1;
    }
    let page = page.ok_or_else(unreadable)?;
    // The page itself, where clinicians and administrators open it.
    for path in ["/", "/admin/"] {
        let served = client.web_file(path).await?;
        let actual = hex::encode(ring::digest::digest(&ring::digest::SHA256, &served).as_ref());
        if actual != page {
            return Err(CliError::WebAppAltered(format!("the page at {path}")));
        }
    }
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &sums).as_ref());
    Ok(format!(
        "Web app served by {}: {files} files, each matching its SHA-256\n\
         Digest: {digest}\n\
         It should equal the \"Web app SHA-256\" the server printed at start, and what a build of \
         the same sources gives: (cd server/console && find . -type f -printf '%P\\n' | LC_ALL=C sort \
         | xargs sha256sum) | sha256sum",
        client.server().as_str().trim_end_matches('/')
    ))
}

/// A client for the commands that need no profile: the profile's server,
/// as it trusts it, unless told otherwise; no passphrase needed.
fn stand_alone_client(cli: &Cli) -> Result<Client, CliError> {
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
    Ok(Client::new(&server, &Trust::from_options(pin, ca))?)
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
        // Pinned now, over the connection the enrollment trusted; if the
        // server does not answer, the first audit command pins it.
        audit_key: client
            .audit_key()
            .await
            .ok()
            .and_then(|key| key.note_key())
            .map(|key| key.verifier_string()),
        audit_checkpoint: None,
    };
    profile.save(&contents, &passphrase)?;
    drop(_lock);
    // Signed in at once, with key packages uploaded, so that colleagues'
    // clients can add this device to its user's threads before it is
    // first used (and it joins them at its first command).
    let mut options = cli.options();
    options.passphrase = Some(&passphrase);
    match Session::open(&options).await {
        Ok(mut session) => {
            if let Err(error) = conversation::heal(&mut session).await {
                eprintln!(
                    "curbside: the device is enrolled, but could not sign in yet ({error}); it \
                     joins its threads at its first command"
                );
            }
        }
        Err(error) => {
            eprintln!("curbside: the device is enrolled, but could not sign in yet ({error})")
        }
    }
    Ok(format!(
        "Enrolled device {} for {}\nLog in with: curbside --profile {} login",
        printable(&enrolled.device.device_id),
        describe_user(&enrolled.user),
        profile.name()
    ))
}

/// Writes a manual page for `curbside` and each of its subcommands into
/// `dir`; returns the files' names.
fn write_man_pages(dir: &std::path::Path) -> Result<Vec<String>, CliError> {
    let write_error = |error: std::io::Error| CliError::ReadFile {
        path: dir.display().to_string(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let mut written = Vec::new();
    let mut stack = vec![(String::from("curbside"), Cli::command())];
    while let Some((name, command)) = stack.pop() {
        let command = command.name(name.clone());
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(write_error)?;
        let file = format!("{name}.1");
        std::fs::write(dir.join(&file), page).map_err(write_error)?;
        written.push(file);
    }
    written.sort();
    Ok(written)
}

/// Runs a command, prints its output or error, and returns the exit code
/// (`crate::error::exit`).
pub async fn execute(cli: Cli) -> ExitCode {
    let format = cli.output;
    match run(cli).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            let code = error.exit_code();
            match format {
                Format::Text => eprintln!("curbside: error: {error}"),
                Format::Json => eprintln!("{}", crate::output::error(&error.to_string(), code)),
            }
            ExitCode::from(code)
        }
    }
}
