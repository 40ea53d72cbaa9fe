//! Server settings, resolved from command-line flags, `CURBSIDE_*`
//! environment variables and an optional TOML file, in that order of
//! precedence, then validated. A bad value stops start-up with a message that
//! names the setting and where its value came from.

mod database_url;

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use database_url::{DatabaseUrl, SecretText};

/// The default listening address: loopback only, so a first start exposes
/// nothing until an administrator chooses an address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8443,
));
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "curbside-data";
/// The default largest request body, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default time in-flight requests get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The default time between sweeps of expired rows.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// When the audit log signs a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many entries since the last checkpoint.
    pub every_entries: u64,
    /// Or when the last checkpoint is this old.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_entries: 1000,
            every: Duration::from_secs(60),
        }
    }
}

/// The default idle time after which a session ends (automatic logoff).
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// The default lifetime of a session token.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The default lifetime of an enrollment code.
pub const DEFAULT_ENROLLMENT_CODE_LIFETIME: Duration = Duration::from_secs(72 * 3600);
const SESSION_SECONDS_RANGE: RangeInclusive<u64> = 60..=86_400;
const CODE_HOURS_RANGE: RangeInclusive<u64> = 1..=720;

/// The default most simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

const BODY_BYTES_RANGE: RangeInclusive<u64> = 1024..=64 * 1024 * 1024;
const GRACE_SECONDS_RANGE: RangeInclusive<u64> = 0..=3600;
const CONNECTIONS_RANGE: RangeInclusive<u64> = 1..=1_000_000;
const CHECKPOINT_ENTRIES_RANGE: RangeInclusive<u64> = 1..=1_000_000;
const MESSAGE_BYTES_RANGE: RangeInclusive<u64> = 1024..=512 * 1024;
const CHECKPOINT_SECONDS_RANGE: RangeInclusive<u64> = 1..=86_400;
const FREE_DISK_MIB_RANGE: RangeInclusive<u64> = 0..=1024 * 1024;

/// Fully resolved and validated server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the server keeps its SQLite database, certificate and keys.
    pub data_dir: PathBuf,
    /// The address the TLS listener binds.
    pub listen: SocketAddr,
    /// The database to use.
    pub database: DatabaseUrl,
    /// Where the TLS certificate comes from.
    pub tls: TlsSource,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// The most connections served at once; further clients wait.
    pub max_connections: usize,
    /// The most connections one client address (an IPv6 client's /64) may
    /// hold at once; `None` is 1/64 of `max_connections`, from 4 to 256.
    pub max_connections_per_address: Option<usize>,
    /// A session idle this long ends.
    pub session_idle: Duration,
    /// How long a session token is valid.
    pub token_lifetime: Duration,
    /// How long an enrollment code is valid.
    pub enrollment_code_lifetime: Duration,
    /// When the audit log signs a checkpoint.
    pub audit_checkpoints: CheckpointPolicy,
    /// The largest MLS message (commit, application message, welcome).
    pub max_message_bytes: usize,
    /// Below this much free space on the data directory's disk, the server
    /// refuses unauthenticated work.
    pub min_free_disk_bytes: u64,
    /// How often expired rows are swept (not a setting: tests shorten it).
    pub sweep_every: Duration,
}

impl Config {
    /// Defaults for everything, with this data directory: SQLite inside it,
    /// a generated certificate, and the default listening address.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            database: DatabaseUrl::sqlite_in(&data_dir),
            data_dir,
            listen: DEFAULT_LISTEN,
            tls: TlsSource::Generated {
                hostnames: Vec::new(),
            },
            log_format: LogFormat::Text,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: None,
            session_idle: DEFAULT_SESSION_IDLE,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            enrollment_code_lifetime: DEFAULT_ENROLLMENT_CODE_LIFETIME,
            audit_checkpoints: CheckpointPolicy::default(),
            max_message_bytes: curbside_proto::threads::DEFAULT_MAX_MESSAGE_BYTES,
            min_free_disk_bytes: crate::disk::DEFAULT_MIN_FREE_MIB * 1024 * 1024,
            sweep_every: DEFAULT_SWEEP_EVERY,
        }
    }
}

impl Config {
    /// The most connections one client address may hold at once.
    pub fn connections_per_address(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or_else(|| crate::connection::default_share(self.max_connections))
            .clamp(1, self.max_connections.max(1))
    }
}

/// Where the server's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A self-signed certificate generated once into the data directory, valid
    /// for `localhost`, `127.0.0.1`, `::1` and these extra host names.
    Generated {
        /// Extra DNS names or IP addresses to put in the certificate.
        hostnames: Vec<String>,
    },
    /// A certificate chain and private key in PEM files.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// The values given on the command line or in the environment, before
/// validation. `None` means "not given here".
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// A TOML file with any of the settings below (keys as the flag names,
    /// with `_` for `-`).
    #[arg(long, env = "CURBSIDE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the database, certificate and keys live [default: ./curbside-data].
    #[arg(long, env = "CURBSIDE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address to serve HTTPS on [default: 127.0.0.1:8443].
    #[arg(long, env = "CURBSIDE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// sqlite:///path/file.db or postgres://user@host/db [default: SQLite in the data directory].
    #[arg(
        long,
        env = "CURBSIDE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<SecretText>,
    /// PEM certificate chain; without it a self-signed certificate is generated.
    #[arg(long, env = "CURBSIDE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CURBSIDE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Extra host name or IP address for the generated certificate (repeatable).
    #[arg(
        long = "hostname",
        env = "CURBSIDE_HOSTNAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub hostnames: Vec<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "CURBSIDE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "CURBSIDE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<String>,
    /// Seconds in-flight requests get to finish at shutdown [default: 30].
    #[arg(long, env = "CURBSIDE_SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS")]
    pub shutdown_grace_seconds: Option<String>,
    /// The most connections served at once [default: 16384].
    #[arg(long, env = "CURBSIDE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<String>,
    /// The most connections one client address (an IPv6 client's /64) may hold
    /// [default: 1/64 of --max-connections, at least 4, at most 256].
    #[arg(long, env = "CURBSIDE_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N")]
    pub max_connections_per_address: Option<String>,
    /// Seconds of inactivity after which a session ends [default: 900].
    #[arg(long, env = "CURBSIDE_SESSION_IDLE_SECONDS", value_name = "SECONDS")]
    pub session_idle_seconds: Option<String>,
    /// Seconds a session token is valid [default: 900].
    #[arg(long, env = "CURBSIDE_TOKEN_LIFETIME_SECONDS", value_name = "SECONDS")]
    pub token_lifetime_seconds: Option<String>,
    /// Hours an enrollment code is valid [default: 72].
    #[arg(long, env = "CURBSIDE_ENROLLMENT_CODE_HOURS", value_name = "HOURS")]
    pub enrollment_code_hours: Option<String>,
    /// Sign an audit checkpoint after this many entries [default: 1000].
    #[arg(long, env = "CURBSIDE_AUDIT_CHECKPOINT_ENTRIES", value_name = "N")]
    pub audit_checkpoint_entries: Option<String>,
    /// Or when the last checkpoint is this many seconds old [default: 60].
    #[arg(
        long,
        env = "CURBSIDE_AUDIT_CHECKPOINT_SECONDS",
        value_name = "SECONDS"
    )]
    pub audit_checkpoint_seconds: Option<String>,
    /// Largest MLS message in bytes [default: 65536].
    #[arg(long, env = "CURBSIDE_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<String>,
    /// Below this much free space (MiB) on the data directory's disk, refuse
    /// unauthenticated work [default: 64].
    #[arg(long, env = "CURBSIDE_MIN_FREE_DISK_MIB", value_name = "MIB")]
    pub min_free_disk_mib: Option<String>,
}

/// The settings a TOML configuration file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    database_url: Option<SecretText>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    hostnames: Option<Vec<String>>,
    log_format: Option<String>,
    max_body_bytes: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
    max_connections: Option<u64>,
    max_connections_per_address: Option<u64>,
    session_idle_seconds: Option<u64>,
    token_lifetime_seconds: Option<u64>,
    enrollment_code_hours: Option<u64>,
    audit_checkpoint_entries: Option<u64>,
    audit_checkpoint_seconds: Option<u64>,
    max_message_bytes: Option<u64>,
    min_free_disk_mib: Option<u64>,
}

/// Why the settings could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    ReadFile {
        /// The file named by --config or CURBSIDE_CONFIG.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML of the expected shape.
    #[error("the configuration file {path} is invalid: {message}")]
    ParseFile {
        /// The file named by --config or CURBSIDE_CONFIG.
        path: PathBuf,
        /// What the TOML parser said, with the line and column.
        message: String,
    },
    /// One setting has a value that cannot be used.
    #[error("invalid setting `{setting}` (from {origin}): {reason}")]
    Invalid {
        /// The setting's name, as in the TOML file.
        setting: &'static str,
        /// Where the value came from.
        origin: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// Where a setting's value came from, for error messages.
#[derive(Clone, Copy)]
enum Origin<'a> {
    CommandLine(&'static str, &'static str),
    File(&'a Path),
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommandLine(flag, env) => write!(f, "{flag} or {env}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Picks the command-line/environment value if there is one, else the file's.
fn pick<'a, T>(
    flag: Option<T>,
    file: Option<T>,
    names: (&'static str, &'static str),
    path: Option<&'a Path>,
) -> Option<(T, Origin<'a>)> {
    match (flag, file, path) {
        (Some(value), _, _) => Some((value, Origin::CommandLine(names.0, names.1))),
        (None, Some(value), Some(path)) => Some((value, Origin::File(path))),
        _ => None,
    }
}

fn invalid(setting: &'static str, origin: Origin<'_>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        origin: origin.to_string(),
        reason: reason.into(),
    }
}

impl Overrides {
    /// Resolves these overrides, a configuration file if one is named, and
    /// the defaults into a validated [`Config`].
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let path = self.config.as_deref();

        let data_dir = pick(
            self.data_dir,
            file.data_dir,
            ("--data-dir", "CURBSIDE_DATA_DIR"),
            path,
        )
        .map(|(dir, _)| dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        // Every setting not given keeps the default `with_data_dir` sets.
        let mut config = Config::with_data_dir(data_dir);

        if let Some((text, origin)) = pick(
            self.listen,
            file.listen,
            ("--listen", "CURBSIDE_LISTEN"),
            path,
        ) {
            config.listen = text.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "listen",
                    origin,
                    format!(
                        "{text:?} is not an address and port such as 127.0.0.1:8443 or [::]:8443"
                    ),
                )
            })?;
        }

        if let Some((SecretText(text), origin)) = pick(
            self.database_url,
            file.database_url,
            ("--database-url", "CURBSIDE_DATABASE_URL"),
            path,
        ) {
            config.database = DatabaseUrl::parse(&text)
                .map_err(|reason| invalid("database_url", origin, reason))?;
        }

        let cert = pick(
            self.tls_cert,
            file.tls_cert,
            ("--tls-cert", "CURBSIDE_TLS_CERT"),
            path,
        );
        let key = pick(
            self.tls_key,
            file.tls_key,
            ("--tls-key", "CURBSIDE_TLS_KEY"),
            path,
        );
        let (hostnames, hostnames_origin) = if self.hostnames.is_empty() {
            (
                file.hostnames.unwrap_or_default(),
                path.map_or(
                    Origin::CommandLine("--hostname", "CURBSIDE_HOSTNAMES"),
                    Origin::File,
                ),
            )
        } else {
            (
                self.hostnames,
                Origin::CommandLine("--hostname", "CURBSIDE_HOSTNAMES"),
            )
        };
        config.tls = match (cert, key) {
            (Some((cert, _)), Some((key, _))) => {
                if !hostnames.is_empty() {
                    return Err(invalid(
                        "hostnames",
                        hostnames_origin,
                        "host names only apply to the generated certificate; leave them out when \
                         giving tls_cert and tls_key",
                    ));
                }
                TlsSource::Files { cert, key }
            }
            (Some((_, origin)), None) => {
                return Err(invalid(
                    "tls_key",
                    origin,
                    "tls_cert is set but tls_key is not; give both, or neither to use a generated certificate",
                ));
            }
            (None, Some((_, origin))) => {
                return Err(invalid(
                    "tls_cert",
                    origin,
                    "tls_key is set but tls_cert is not; give both, or neither to use a generated certificate",
                ));
            }
            (None, None) => {
                let mut names = Vec::with_capacity(hostnames.len());
                for name in &hostnames {
                    let name = canonical_host_name(name).ok_or_else(|| {
                        invalid(
                            "hostnames",
                            hostnames_origin,
                            format!("{name:?} is not a DNS name or IP address"),
                        )
                    })?;
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                TlsSource::Generated { hostnames: names }
            }
        };

        if let Some((text, origin)) = pick(
            self.log_format,
            file.log_format,
            ("--log-format", "CURBSIDE_LOG_FORMAT"),
            path,
        ) {
            config.log_format = parse_log_format(&text).ok_or_else(|| {
                invalid(
                    "log_format",
                    origin,
                    format!("{text:?} is not text or json"),
                )
            })?;
        }

        if let Some(value) = number(
            "max_body_bytes",
            pick(
                self.max_body_bytes,
                file.max_body_bytes.map(|n| n.to_string()),
                ("--max-body-bytes", "CURBSIDE_MAX_BODY_BYTES"),
                path,
            ),
            BODY_BYTES_RANGE,
            "bytes",
        )? {
            config.max_body_bytes = to_usize(value);
        }
        if let Some(value) = number(
            "shutdown_grace_seconds",
            pick(
                self.shutdown_grace_seconds,
                file.shutdown_grace_seconds.map(|n| n.to_string()),
                (
                    "--shutdown-grace-seconds",
                    "CURBSIDE_SHUTDOWN_GRACE_SECONDS",
                ),
                path,
            ),
            GRACE_SECONDS_RANGE,
            "seconds",
        )? {
            config.shutdown_grace = Duration::from_secs(value);
        }
        if let Some(value) = number(
            "max_connections",
            pick(
                self.max_connections,
                file.max_connections.map(|n| n.to_string()),
                ("--max-connections", "CURBSIDE_MAX_CONNECTIONS"),
                path,
            ),
            CONNECTIONS_RANGE,
            "connections",
        )? {
            config.max_connections = to_usize(value);
        }
        if let Some(value) = number(
            "max_connections_per_address",
            pick(
                self.max_connections_per_address,
                file.max_connections_per_address.map(|n| n.to_string()),
                (
                    "--max-connections-per-address",
                    "CURBSIDE_MAX_CONNECTIONS_PER_ADDRESS",
                ),
                path,
            ),
            CONNECTIONS_RANGE,
            "connections",
        )? {
            config.max_connections_per_address = Some(to_usize(value));
        }
        if let Some(value) = number(
            "session_idle_seconds",
            pick(
                self.session_idle_seconds,
                file.session_idle_seconds.map(|n| n.to_string()),
                ("--session-idle-seconds", "CURBSIDE_SESSION_IDLE_SECONDS"),
                path,
            ),
            SESSION_SECONDS_RANGE,
            "seconds",
        )? {
            config.session_idle = Duration::from_secs(value);
        }
        if let Some(value) = number(
            "token_lifetime_seconds",
            pick(
                self.token_lifetime_seconds,
                file.token_lifetime_seconds.map(|n| n.to_string()),
                (
                    "--token-lifetime-seconds",
                    "CURBSIDE_TOKEN_LIFETIME_SECONDS",
                ),
                path,
            ),
            SESSION_SECONDS_RANGE,
            "seconds",
        )? {
            config.token_lifetime = Duration::from_secs(value);
        }
        if let Some(value) = number(
            "enrollment_code_hours",
            pick(
                self.enrollment_code_hours,
                file.enrollment_code_hours.map(|n| n.to_string()),
                ("--enrollment-code-hours", "CURBSIDE_ENROLLMENT_CODE_HOURS"),
                path,
            ),
            CODE_HOURS_RANGE,
            "hours",
        )? {
            config.enrollment_code_lifetime = Duration::from_secs(value * 3600);
        }
        if let Some(value) = number(
            "audit_checkpoint_entries",
            pick(
                self.audit_checkpoint_entries,
                file.audit_checkpoint_entries.map(|n| n.to_string()),
                (
                    "--audit-checkpoint-entries",
                    "CURBSIDE_AUDIT_CHECKPOINT_ENTRIES",
                ),
                path,
            ),
            CHECKPOINT_ENTRIES_RANGE,
            "entries",
        )? {
            config.audit_checkpoints.every_entries = value;
        }
        if let Some(value) = number(
            "audit_checkpoint_seconds",
            pick(
                self.audit_checkpoint_seconds,
                file.audit_checkpoint_seconds.map(|n| n.to_string()),
                (
                    "--audit-checkpoint-seconds",
                    "CURBSIDE_AUDIT_CHECKPOINT_SECONDS",
                ),
                path,
            ),
            CHECKPOINT_SECONDS_RANGE,
            "seconds",
        )? {
            config.audit_checkpoints.every = Duration::from_secs(value);
        }
        if let Some(value) = number(
            "max_message_bytes",
            pick(
                self.max_message_bytes,
                file.max_message_bytes.map(|n| n.to_string()),
                ("--max-message-bytes", "CURBSIDE_MAX_MESSAGE_BYTES"),
                path,
            ),
            MESSAGE_BYTES_RANGE,
            "bytes",
        )? {
            config.max_message_bytes = to_usize(value);
        }
        if let Some(value) = number(
            "min_free_disk_mib",
            pick(
                self.min_free_disk_mib,
                file.min_free_disk_mib.map(|n| n.to_string()),
                ("--min-free-disk-mib", "CURBSIDE_MIN_FREE_DISK_MIB"),
                path,
            ),
            FREE_DISK_MIB_RANGE,
            "MiB",
        )? {
            config.min_free_disk_bytes = value * 1024 * 1024;
        }

        Ok(config)
    }
}

/// Parses a whole number setting within `range`, naming the setting.
fn number(
    setting: &'static str,
    given: Option<(String, Origin<'_>)>,
    range: RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let Some((text, origin)) = given else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(value) if range.contains(&value) => Ok(Some(value)),
        _ => Err(invalid(
            setting,
            origin,
            format!(
                "{text:?} is not a whole number of {unit} from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// A host name for the certificate in canonical form (lower-case DNS name,
/// or an IP address as Rust writes it), or `None` if it is neither.
fn canonical_host_name(name: &str) -> Option<String> {
    let name = name.trim();
    if let Ok(ip) = name.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Some(ip.to_string());
    }
    let lower = name.to_ascii_lowercase();
    let valid = rustls_pki_types::DnsName::try_from(lower.as_str()).is_ok();
    valid.then_some(lower)
}

fn parse_log_format(text: &str) -> Option<LogFormat> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        _ => None,
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    // The parser's full text quotes the offending line, which may hold a
    // database password: report its message and position only.
    toml::from_str(&text).map_err(|error| {
        let position = error.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {column})")
        });
        ConfigError::ParseFile {
            path: path.to_owned(),
            message: format!("{}{position}", error.message()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides() -> Overrides {
        Overrides::default()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = overrides().resolve().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(!config.database.is_postgres());
        assert_eq!(config.tls, TlsSource::Generated { hostnames: vec![] });
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9443\"\nlog_format = \"json\"\nmax_body_bytes = 2048\n",
        )
        .unwrap();
        let config = Overrides {
            config: Some(file.clone()),
            listen: Some("127.0.0.1:7443".to_owned()),
            ..overrides()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7443");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.max_body_bytes, 2048);
    }

    #[test]
    fn bad_values_name_the_setting_and_its_origin() {
        let error = Overrides {
            listen: Some("localhost".to_owned()),
            ..overrides()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`listen`") && error.contains("--listen"),
            "{error}"
        );

        let error = Overrides {
            max_body_bytes: Some("1".to_owned()),
            ..overrides()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains("`max_body_bytes`"), "{error}");

        let error = Overrides {
            database_url: Some(SecretText("mysql://x".to_owned())),
            ..overrides()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`database_url`") && !error.contains("mysql://x"),
            "{error}"
        );

        let error = Overrides {
            log_format: Some("xml".to_owned()),
            ..overrides()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains("`log_format`"), "{error}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(&file, "lisen = \"0.0.0.0:9443\"\n").unwrap();
        let error = Overrides {
            config: Some(file),
            ..overrides()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains("lisen"), "{error}");
    }

    #[test]
    fn a_bad_file_line_is_located_but_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:8443\"\ndatabse_url = \"postgres://u:hunter2@db/x\"\n",
        )
        .unwrap();
        let error = Overrides {
            config: Some(file),
            ..overrides()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(
            error.contains("databse_url") && error.contains("line 2"),
            "{error}"
        );
    }

    #[test]
    fn host_names_are_validated_and_canonical() {
        let config = Overrides {
            hostnames: vec!["Curbside.Example.org".to_owned(), "[0:0::1]".to_owned()],
            ..overrides()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            config.tls,
            TlsSource::Generated {
                hostnames: vec!["curbside.example.org".to_owned(), "::1".to_owned()]
            }
        );
        for bad in ["https://x", "two words", ""] {
            let error = Overrides {
                hostnames: vec![bad.to_owned()],
                ..overrides()
            }
            .resolve()
            .unwrap_err()
            .to_string();
            assert!(error.contains("`hostnames`"), "{error}");
        }
    }

    #[test]
    fn numbers_outside_their_range_are_refused() {
        for (overrides, setting) in [
            (
                Overrides {
                    max_connections: Some("0".to_owned()),
                    ..overrides()
                },
                "`max_connections`",
            ),
            (
                Overrides {
                    shutdown_grace_seconds: Some("-1".to_owned()),
                    ..overrides()
                },
                "`shutdown_grace_seconds`",
            ),
        ] {
            let error = overrides.resolve().unwrap_err().to_string();
            assert!(error.contains(setting), "{error}");
        }
    }
}
