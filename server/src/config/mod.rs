//! Server settings, resolved from command-line flags, `CURBSIDE_*`
//! environment variables and an optional TOML file, in that order of
//! precedence, then validated. A bad value stops start-up with a message that
//! names the setting and where its value came from.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default listening address: loopback only, so a first start exposes
/// nothing until an administrator chooses an address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "curbside-data";
/// The default largest request body, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default time in-flight requests get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const MIN_BODY_BYTES: usize = 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

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
}

impl Config {
    /// Defaults for everything, with this data directory: SQLite inside it,
    /// a generated certificate, and the default listening address.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            database: DatabaseUrl::sqlite_in(&data_dir),
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls: TlsSource::Generated {
                hostnames: Vec::new(),
            },
            log_format: LogFormat::Text,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
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

/// A database URL. It may hold a password, so `Debug` and `Display` show only
/// the backend.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts `sqlite:` and `postgres:`/`postgresql:` URLs.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            Ok(Self(url.to_owned()))
        } else {
            Err("expected a URL starting with sqlite: or postgres://".to_owned())
        }
    }

    /// The SQLite database file `curbside.db` inside `data_dir`.
    pub fn sqlite_in(data_dir: &Path) -> Self {
        Self(format!(
            "sqlite://{}?mode=rwc",
            percent_encode_path(&data_dir.join("curbside.db"))
        ))
    }

    /// Whether this is a PostgreSQL URL.
    pub fn is_postgres(&self) -> bool {
        !self.0.starts_with("sqlite:")
    }

    /// The URL itself, for the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_postgres() {
            "postgres://…"
        } else {
            "sqlite://…"
        })
    }
}

/// Percent-encodes a file path for a `sqlite://` URL, keeping `/`.
fn percent_encode_path(path: &Path) -> String {
    let mut encoded = String::new();
    for byte in path.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'.' | b'-' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
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
    pub database_url: Option<String>,
    /// PEM certificate chain; without it a self-signed certificate is generated.
    #[arg(
        long,
        env = "CURBSIDE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "CURBSIDE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
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
}

/// The settings a TOML configuration file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    database_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    hostnames: Option<Vec<String>>,
    log_format: Option<String>,
    max_body_bytes: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
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

        let listen = match pick(
            self.listen,
            file.listen,
            ("--listen", "CURBSIDE_LISTEN"),
            path,
        ) {
            Some((text, origin)) => text.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "listen",
                    origin,
                    format!(
                        "{text:?} is not an address and port such as 127.0.0.1:8443 or [::]:8443"
                    ),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8443)),
        };

        let database = match pick(
            self.database_url,
            file.database_url,
            ("--database-url", "CURBSIDE_DATABASE_URL"),
            path,
        ) {
            Some((text, origin)) => DatabaseUrl::parse(&text)
                .map_err(|reason| invalid("database_url", origin, reason))?,
            None => DatabaseUrl::sqlite_in(&data_dir),
        };

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
        let hostnames = if self.hostnames.is_empty() {
            file.hostnames.unwrap_or_default()
        } else {
            self.hostnames
        };
        let tls = match (cert, key) {
            (Some((cert, _)), Some((key, _))) => {
                if !hostnames.is_empty() {
                    return Err(ConfigError::Invalid {
                        setting: "hostnames",
                        origin: "--hostname or CURBSIDE_HOSTNAMES".to_owned(),
                        reason:
                            "host names only apply to the generated certificate; leave them out \
                                 when giving --tls-cert and --tls-key"
                                .to_owned(),
                    });
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
                for name in &hostnames {
                    if name.trim().is_empty() || name.contains(char::is_whitespace) {
                        return Err(ConfigError::Invalid {
                            setting: "hostnames",
                            origin: "--hostname, CURBSIDE_HOSTNAMES or the configuration file"
                                .to_owned(),
                            reason: format!("{name:?} is not a host name or IP address"),
                        });
                    }
                }
                TlsSource::Generated { hostnames }
            }
        };

        let log_format = match pick(
            self.log_format,
            file.log_format,
            ("--log-format", "CURBSIDE_LOG_FORMAT"),
            path,
        ) {
            Some((text, origin)) => parse_log_format(&text).ok_or_else(|| {
                invalid(
                    "log_format",
                    origin,
                    format!("{text:?} is not text or json"),
                )
            })?,
            None => LogFormat::Text,
        };

        let max_body_bytes = match pick(
            self.max_body_bytes
                .map(|text| text.trim().parse::<u64>().map_err(|_| text)),
            file.max_body_bytes.map(Ok),
            ("--max-body-bytes", "CURBSIDE_MAX_BODY_BYTES"),
            path,
        ) {
            Some((value, origin)) => {
                let range =
                    format!("a whole number of bytes from {MIN_BODY_BYTES} to {MAX_BODY_BYTES}");
                match value.map(usize::try_from) {
                    Ok(Ok(bytes)) if (MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&bytes) => bytes,
                    Ok(_) => {
                        return Err(invalid(
                            "max_body_bytes",
                            origin,
                            format!("expected {range}"),
                        ));
                    }
                    Err(text) => {
                        return Err(invalid(
                            "max_body_bytes",
                            origin,
                            format!("{text:?} is not {range}"),
                        ));
                    }
                }
            }
            None => DEFAULT_MAX_BODY_BYTES,
        };

        let shutdown_grace = match pick(
            self.shutdown_grace_seconds
                .map(|text| text.trim().parse::<u64>().map_err(|_| text)),
            file.shutdown_grace_seconds.map(Ok),
            (
                "--shutdown-grace-seconds",
                "CURBSIDE_SHUTDOWN_GRACE_SECONDS",
            ),
            path,
        ) {
            Some((Ok(seconds), _)) if seconds <= 3600 => Duration::from_secs(seconds),
            Some((_, origin)) => {
                return Err(invalid(
                    "shutdown_grace_seconds",
                    origin,
                    "expected a whole number of seconds from 0 to 3600",
                ));
            }
            None => DEFAULT_SHUTDOWN_GRACE,
        };

        Ok(Config {
            data_dir,
            listen,
            database,
            tls,
            log_format,
            max_body_bytes,
            shutdown_grace,
        })
    }
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
    toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
        path: path.to_owned(),
        message: error.to_string(),
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
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
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
            database_url: Some("mysql://x".to_owned()),
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
    fn database_url_hides_credentials() {
        let url = DatabaseUrl::parse("postgres://curbside:hunter2@db/curbside").unwrap();
        assert!(!format!("{url:?} {url}").contains("hunter2"));
    }

    #[test]
    fn sqlite_paths_are_percent_encoded() {
        let url = DatabaseUrl::sqlite_in(Path::new("/tmp/a b?c"));
        assert_eq!(url.expose(), "sqlite:///tmp/a%20b%3Fc/curbside.db?mode=rwc");
    }
}
