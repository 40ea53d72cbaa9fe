//! Why a command failed: every error a user can cause says what to do.

use crate::audit::AuditError;
use crate::client::ClientError;
use crate::mls::MlsError;
use crate::show::printable;
use crate::store::StoreError;

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
    /// A file of the web app is not the one its list names.
    #[error(
        "the web app this server serves does not match its own list: {0} differs from its \
         SHA-256 in /admin/SHA256SUMS; do not use the web app, and tell your security team"
    )]
    WebAppAltered(String),
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
    Mls(MlsError),
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
    /// No message of this user's to recall.
    #[error(
        "you have sent no message in {0} that could be recalled; to recall another, give its \
         entry number (`curbside send` prints it): curbside recall THREAD ENTRY"
    )]
    NothingToRecall(String),
    /// No urgent message of others left to acknowledge.
    #[error(
        "there is no urgent message in {0} that you have not acknowledged; to acknowledge a \
         given one, add its entry number (`curbside read` shows it): curbside ack THREAD ENTRY"
    )]
    NothingToAcknowledge(String),
    /// A device that left is still in the thread's group.
    #[error(
        "a device that left {0} is still in its encryption group and could not be removed just \
         now, so nothing was sent (it could have read it); try again in a moment"
    )]
    RemovalPending(String),
    /// No one holds a role at the moment.
    #[error(
        "nobody holds {0} right now; see its shifts with `curbside directory roles`, or start \
         the thread with a person (`--with NAME`)"
    )]
    RoleVacant(String),
    /// Not a duration.
    #[error("'{0}' is not a duration: give a number with s, m or h (30s, 2m, 1h)")]
    BadDuration(String),
    /// Not a time (the message says what is expected).
    #[error("{0}")]
    ShiftTime(String),
    /// No role by that name.
    #[error("no role is called {0:?}; list them with `curbside directory roles`")]
    UnknownRole(String),
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
        "--public-key must be the audit key as the server printed it at start \
         (curbside-audit/ID+KEYID+BASE64), or the 32-byte Ed25519 key in base64url as \
         /.well-known/curbside/audit-key publishes it"
    )]
    BadPublicKey,
    /// A file named on the command line cannot be read.
    #[error("cannot read {path}: {error}")]
    ReadFile {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The server closed the live events: a new messaging policy version
    /// waits for this user's acceptance.
    #[error(
        "your organisation has published a new version of its messaging policy; read it with \
         `curbside policy show`, accept it with `curbside policy accept`, then watch again"
    )]
    PolicyNotAccepted,
    /// A file could not be encrypted, decrypted or written.
    #[error("{0}")]
    Attachment(#[from] crate::attachment::AttachmentError),
    /// No attachment by that id or name in the thread.
    #[error(
        "{thread} has no attachment '{given}' that this device can open; `curbside read THREAD` \
         lists them as [attachment ID] NAME (a recalled or expired message's are gone)"
    )]
    NoSuchAttachment {
        /// The thread's name.
        thread: String,
        /// What was given.
        given: String,
    },
    /// Several attachments have the name given.
    #[error("several attachments in this thread are named '{0}'; give the id `read` shows instead")]
    AmbiguousAttachment(String),
    /// The decrypted file is not the one the message named.
    #[error(
        "the downloaded file's SHA-256 is not the one its message gives: it was not saved; \
         download it again, and tell your administrator if this repeats"
    )]
    DigestMismatch,
    /// The output file exists.
    #[error("{0} exists; give --out a path that does not, or move the file away first")]
    OutputExists(String),
    /// A lifespan that is not one.
    #[error(
        "'{0}' is not a lifespan: give a number with s, m, h, d or w (30s, 5m, 1h, 7d, 2w), or \
         off"
    )]
    BadLifespan(String),
    /// Neither text nor files to send.
    #[error("nothing to send: give the text, or files with --file")]
    NothingToSend,
    /// A file or value given on the command line is not usable (the
    /// message says why and what to give).
    #[error("{0}")]
    BadInput(String),
    /// Some lines of an import file were not used.
    #[error(
        "{report}\nsome lines of {file} were not used: correct them and run the import again \
         (users already made are left as they are)"
    )]
    ImportIncomplete {
        /// The file.
        file: String,
        /// What became of each line.
        report: String,
    },
    /// `policy accept` with nothing published.
    #[error("your organisation has not published a messaging policy; there is nothing to accept")]
    NoPolicy,
}

impl From<MlsError> for CliError {
    fn from(error: MlsError) -> Self {
        CliError::Mls(error)
    }
}

/// The exit status of each kind of failure, for scripts (documented in
/// docs/cli.md): usage, network or TLS, refused by the server, audit
/// verification, the server failing; anything else is 1.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure: the local store, a file, an MLS step.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (clap's own parse errors exit 2 too).
    pub const USAGE: u8 = 2;
    /// The server could not be reached, or its certificate was not trusted.
    pub const NETWORK: u8 = 3;
    /// The server refused the request (4xx), or the session ended.
    pub const REFUSED: u8 = 4;
    /// The audit log did not verify.
    pub const AUDIT: u8 = 5;
    /// The server failed or is unavailable (5xx, an answer this client
    /// does not understand): try again later.
    pub const SERVER: u8 = 6;
}

impl CliError {
    /// The process's exit status for this error ([`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoServer
            | Self::NoTrust
            | Self::NoHome
            | Self::BadDuration(_)
            | Self::ShiftTime(_)
            | Self::BadTime { .. }
            | Self::BadPublicKey
            | Self::BadLifespan(_)
            | Self::EmptyMessage
            | Self::EmptySubject
            | Self::NothingToSend
            | Self::NobodyElse
            | Self::RemoveSelf
            | Self::UnknownThread(_)
            | Self::AmbiguousThread { .. }
            | Self::NoSuchUser { .. }
            | Self::PartOfName { .. }
            | Self::TooManyMatches { .. }
            | Self::AmbiguousUser { .. }
            | Self::UnknownRole(_)
            | Self::NoSuchAttachment { .. }
            | Self::AmbiguousAttachment(_)
            | Self::OutputExists(_)
            | Self::BadInput(_) => exit::USAGE,
            Self::Client(error) | Self::Audit(AuditError::Client(error)) => client_exit(error),
            Self::Audit(AuditError::Broken(_) | AuditError::Witness(_)) => exit::AUDIT,
            Self::Audit(AuditError::Filtered) => exit::USAGE,
            Self::SessionEnded
            | Self::SignInRefused(_)
            | Self::PolicyNotAccepted
            | Self::NotAMember(_)
            | Self::NotInThread(_)
            | Self::AlreadyMember(_)
            | Self::NothingToRecall(_)
            | Self::NothingToAcknowledge(_)
            | Self::RoleVacant(_)
            | Self::NoPolicy
            | Self::NoKeyPackages(_)
            | Self::ImportIncomplete { .. } => exit::REFUSED,
            Self::Disconnected | Self::Busy(_) | Self::RemovalPending(_) => exit::SERVER,
            Self::WebAppAltered(_) | Self::CredentialMismatch(_) | Self::DigestMismatch => {
                exit::AUDIT
            }
            _ => exit::FAILURE,
        }
    }
}

fn client_exit(error: &ClientError) -> u8 {
    match error {
        ClientError::InvalidServerUrl(_) => exit::USAGE,
        ClientError::Api { status, .. } if status.is_server_error() => exit::SERVER,
        ClientError::Api { .. } => exit::REFUSED,
        ClientError::UnexpectedResponse { .. } => exit::SERVER,
        _ => exit::NETWORK,
    }
}
