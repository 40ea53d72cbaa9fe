//! The settings an operator can give, each declared once in [`SETTINGS`]:
//! its key in a configuration file, its flag, its environment variable, its
//! help and the shape of its value. The command line (through clap's
//! builder), the keys a file may hold and the names in error messages all
//! come from that table; `super::Overrides::resolve` says what each value
//! means.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::error::ConfigError;

/// One setting.
pub(super) struct Setting {
    /// The key in a configuration file, and the name errors give it.
    pub key: &'static str,
    /// The command-line flag, without its `--`.
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// What `--help` calls its value.
    pub value_name: &'static str,
    /// The help line.
    pub help: &'static str,
    /// What its value may be.
    pub shape: Shape,
}

/// What a setting's value may be.
pub(super) enum Shape {
    /// Text (an address, a path, a word), or in a file a string.
    Text,
    /// Text that may hold a password: never shown in `--help`, `Debug`
    /// or errors.
    Secret,
    /// Any number of values: a repeated flag, a comma-separated variable,
    /// or in a file an array of strings.
    List,
    /// A whole number of `unit` within `range`; in a file a number or a
    /// string.
    Number {
        unit: &'static str,
        range: RangeInclusive<u64>,
    },
}

const fn number(unit: &'static str, range: RangeInclusive<u64>) -> Shape {
    Shape::Number { unit, range }
}

/// Every setting, in the order `--help` lists them. A file's keys are these
/// keys; `--config`/`CURBSIDE_CONFIG` names the file and is not among them.
pub(super) const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        flag: "data-dir",
        env: "CURBSIDE_DATA_DIR",
        value_name: "DIR",
        help: "Where the database, certificate and keys live [default: ./curbside-data]",
        shape: Shape::Text,
    },
    Setting {
        key: "listen",
        flag: "listen",
        env: "CURBSIDE_LISTEN",
        value_name: "ADDR:PORT",
        help: "The address to serve HTTPS on [default: 127.0.0.1:8443]",
        shape: Shape::Text,
    },
    Setting {
        key: "database_url",
        flag: "database-url",
        env: "CURBSIDE_DATABASE_URL",
        value_name: "URL",
        help: "sqlite:///path/file.db or postgres://user@host/db [default: SQLite in the data \
               directory]",
        shape: Shape::Secret,
    },
    Setting {
        key: "tls_cert",
        flag: "tls-cert",
        env: "CURBSIDE_TLS_CERT",
        value_name: "FILE",
        help: "PEM certificate chain; without it a self-signed certificate is generated",
        shape: Shape::Text,
    },
    Setting {
        key: "tls_key",
        flag: "tls-key",
        env: "CURBSIDE_TLS_KEY",
        value_name: "FILE",
        help: "PEM private key for --tls-cert",
        shape: Shape::Text,
    },
    Setting {
        key: "hostnames",
        flag: "hostname",
        env: "CURBSIDE_HOSTNAMES",
        value_name: "NAME",
        help: "Extra host name or IP address for the generated certificate (repeatable)",
        shape: Shape::List,
    },
    Setting {
        key: "log_format",
        flag: "log-format",
        env: "CURBSIDE_LOG_FORMAT",
        value_name: "FORMAT",
        help: "Log format: text or json [default: text]",
        shape: Shape::Text,
    },
    Setting {
        key: "max_body_bytes",
        flag: "max-body-bytes",
        env: "CURBSIDE_MAX_BODY_BYTES",
        value_name: "BYTES",
        help: "Largest request body in bytes [default: 1048576]",
        shape: number("bytes", 1024..=64 * 1024 * 1024),
    },
    Setting {
        key: "shutdown_grace_seconds",
        flag: "shutdown-grace-seconds",
        env: "CURBSIDE_SHUTDOWN_GRACE_SECONDS",
        value_name: "SECONDS",
        help: "Seconds in-flight requests get to finish at shutdown [default: 30]",
        shape: number("seconds", 0..=3600),
    },
    Setting {
        key: "max_connections",
        flag: "max-connections",
        env: "CURBSIDE_MAX_CONNECTIONS",
        value_name: "N",
        help: "The most connections served at once [default: 16384]",
        shape: number("connections", 1..=1_000_000),
    },
    Setting {
        key: "max_connections_per_address",
        flag: "max-connections-per-address",
        env: "CURBSIDE_MAX_CONNECTIONS_PER_ADDRESS",
        value_name: "N",
        help: "The most connections one client address (an IPv6 client's /64) may hold \
               [default: 1/64 of --max-connections, at least 4, at most 256]",
        shape: number("connections", 1..=1_000_000),
    },
    Setting {
        key: "session_idle_seconds",
        flag: "session-idle-seconds",
        env: "CURBSIDE_SESSION_IDLE_SECONDS",
        value_name: "SECONDS",
        help: "Seconds of inactivity after which a session ends [default: 900]",
        shape: number("seconds", 60..=86_400),
    },
    Setting {
        key: "token_lifetime_seconds",
        flag: "token-lifetime-seconds",
        env: "CURBSIDE_TOKEN_LIFETIME_SECONDS",
        value_name: "SECONDS",
        help: "Seconds a session token is valid [default: 900]",
        shape: number("seconds", 60..=86_400),
    },
    Setting {
        key: "enrollment_code_hours",
        flag: "enrollment-code-hours",
        env: "CURBSIDE_ENROLLMENT_CODE_HOURS",
        value_name: "HOURS",
        help: "Hours an enrollment code is valid [default: 72]",
        shape: number("hours", 1..=720),
    },
    Setting {
        key: "audit_checkpoint_entries",
        flag: "audit-checkpoint-entries",
        env: "CURBSIDE_AUDIT_CHECKPOINT_ENTRIES",
        value_name: "N",
        help: "Sign an audit checkpoint after this many entries [default: 1000]",
        shape: number("entries", 1..=1_000_000),
    },
    Setting {
        key: "audit_checkpoint_seconds",
        flag: "audit-checkpoint-seconds",
        env: "CURBSIDE_AUDIT_CHECKPOINT_SECONDS",
        value_name: "SECONDS",
        help: "Or when the last checkpoint is this many seconds old [default: 60]",
        shape: number("seconds", 1..=86_400),
    },
    Setting {
        key: "audit_witnesses",
        flag: "audit-witness",
        env: "CURBSIDE_AUDIT_WITNESSES",
        value_name: "\"URL FINGERPRINT KEY\"",
        help: "A witness to send audit checkpoints to, as `curbside-server witness` prints it: \
               its URL, TLS certificate fingerprint and witness key (repeatable)",
        shape: Shape::List,
    },
    Setting {
        key: "max_message_bytes",
        flag: "max-message-bytes",
        env: "CURBSIDE_MAX_MESSAGE_BYTES",
        value_name: "BYTES",
        help: "Largest MLS message in bytes [default: 65536]",
        shape: number("bytes", 1024..=512 * 1024),
    },
    Setting {
        key: "max_attachment_mib",
        flag: "max-attachment-mib",
        env: "CURBSIDE_MAX_ATTACHMENT_MIB",
        value_name: "MIB",
        help: "Largest attachment (file) in MiB [default: 100]",
        shape: number("MiB", 1..=4096),
    },
    Setting {
        key: "attachment_quota_mib",
        flag: "attachment-quota-mib",
        env: "CURBSIDE_ATTACHMENT_QUOTA_MIB",
        value_name: "MIB",
        help: "Most MiB of attachments one user may have stored [default: 2048]",
        shape: number("MiB", 1..=1024 * 1024),
    },
    Setting {
        key: "push_gateway_url",
        flag: "push-gateway-url",
        env: "CURBSIDE_PUSH_GATEWAY_URL",
        value_name: "URL",
        help: "Push gateway (the Matrix push gateway API's `/_matrix/push/v1/notify`, HTTPS) \
               that wakes devices which are not connected; notices carry ids only [default: none]",
        shape: Shape::Text,
    },
    Setting {
        key: "push_gateway_ca",
        flag: "push-gateway-ca",
        env: "CURBSIDE_PUSH_GATEWAY_CA",
        value_name: "FILE",
        help: "PEM certificate(s) to trust for the push gateway, instead of the system's roots",
        shape: Shape::Text,
    },
    Setting {
        key: "scim_token",
        flag: "scim-token",
        env: "CURBSIDE_SCIM_TOKEN",
        value_name: "TOKEN",
        help: "The bearer token the identity provider presents to /scim/v2 (at least 32 \
               characters); without it, SCIM provisioning is off [default: none]",
        shape: Shape::Secret,
    },
    Setting {
        key: "metrics_token",
        flag: "metrics-token",
        env: "CURBSIDE_METRICS_TOKEN",
        value_name: "TOKEN",
        help: "The bearer token Prometheus presents to /metrics (at least 32 characters); \
               without it, /metrics is off [default: none]",
        shape: Shape::Secret,
    },
    Setting {
        key: "min_free_disk_mib",
        flag: "min-free-disk-mib",
        env: "CURBSIDE_MIN_FREE_DISK_MIB",
        value_name: "MIB",
        help: "Below this much free space (MiB) on the data directory's disk, refuse \
               unauthenticated work [default: 64]",
        shape: number("MiB", 0..=1024 * 1024),
    },
];

/// The flag and variable naming the configuration file.
const CONFIG_FLAG: &str = "config";
const CONFIG_ENV: &str = "CURBSIDE_CONFIG";

fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.key == key)
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "--{flag}"),
            Self::Env(env) => f.write_str(env),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The values given on the command line or in the environment, before a
/// configuration file is read and before validation.
#[derive(Default, Clone)]
pub struct Overrides {
    /// The configuration file, from `--config` or `CURBSIDE_CONFIG`.
    pub(super) config: Option<PathBuf>,
    /// Each setting given, by key.
    given: BTreeMap<&'static str, (Vec<String>, Origin)>,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&CONFIG_FLAG, &self.config);
        for (key, (values, origin)) in &self.given {
            match setting(key).map(|setting| &setting.shape) {
                Some(Shape::Secret) => map.entry(key, &format_args!("… (from {origin})")),
                _ => map.entry(key, &format_args!("{values:?} (from {origin})")),
            };
        }
        map.finish()
    }
}

impl Overrides {
    /// These overrides with `value` for `key`, as if given by its flag.
    #[cfg(test)]
    pub(super) fn with(mut self, key: &str, value: &str) -> Self {
        let setting = setting(key).unwrap_or_else(|| panic!("{key} is not a setting"));
        let values = match setting.shape {
            Shape::List => value.split(',').map(str::to_owned).collect(),
            _ => vec![value.to_owned()],
        };
        self.given
            .insert(setting.key, (values, Origin::Flag(setting.flag)));
        self
    }

    /// These overrides reading the configuration file at `path`.
    #[cfg(test)]
    pub(super) fn with_config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// Everything given: these overrides, then the configuration file's
    /// settings where these give none.
    pub(super) fn given(self) -> Result<Given, ConfigError> {
        let mut values = self.given;
        if let Some(path) = &self.config {
            for (key, value) in read_file(path)? {
                values
                    .entry(key)
                    .or_insert_with(|| (value, Origin::File(path.clone())));
            }
        }
        Ok(Given { values })
    }
}

impl clap::Args for Overrides {
    fn augment_args(command: Command) -> Command {
        let config = Arg::new(CONFIG_FLAG)
            .long(CONFIG_FLAG)
            .env(CONFIG_ENV)
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help(
                "A TOML file with any of the settings below (keys as the flag names, with _ for -)",
            );
        SETTINGS
            .iter()
            .fold(command.arg(config), |command, setting| {
                let arg = Arg::new(setting.key)
                    .long(setting.flag)
                    .env(setting.env)
                    .value_name(setting.value_name)
                    .help(setting.help);
                command.arg(match setting.shape {
                    Shape::List => arg.action(ArgAction::Append).value_delimiter(','),
                    Shape::Secret => arg.hide_env_values(true),
                    Shape::Text | Shape::Number { .. } => arg,
                })
            })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Self {
            config: matches.get_one::<PathBuf>(CONFIG_FLAG).cloned(),
            given: BTreeMap::new(),
        };
        for setting in SETTINGS {
            let Some(values) = matches.get_many::<String>(setting.key) else {
                continue;
            };
            let origin = match matches.value_source(setting.key) {
                Some(ValueSource::EnvVariable) => Origin::Env(setting.env),
                _ => Origin::Flag(setting.flag),
            };
            let values = values.cloned().collect();
            overrides.given.insert(setting.key, (values, origin));
        }
        Ok(overrides)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Every setting given, from whichever source won; `resolve` takes each.
pub(super) struct Given {
    values: BTreeMap<&'static str, (Vec<String>, Origin)>,
}

impl Given {
    /// The one value given for `key`, and where it came from.
    pub fn text(&mut self, key: &str) -> Option<(String, Origin)> {
        let (values, origin) = self.take(key)?;
        // Only a list setting can hold more than one value.
        values.into_iter().next().map(|value| (value, origin))
    }

    /// The values given for a list setting, and where they came from.
    pub fn list(&mut self, key: &str) -> Option<(Vec<String>, Origin)> {
        self.take(key)
    }

    /// The number given for `key`, checked against the setting's range.
    pub fn number(&mut self, key: &str) -> Result<Option<u64>, ConfigError> {
        let Some((text, origin)) = self.text(key) else {
            return Ok(None);
        };
        let Some(Setting {
            key,
            shape: Shape::Number { unit, range },
            ..
        }) = setting(key)
        else {
            unreachable!("{key} is declared as a number");
        };
        match text.trim().parse::<u64>() {
            Ok(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(invalid(
                key,
                &origin,
                format!(
                    "{text:?} is not a whole number of {unit} from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    fn take(&mut self, key: &str) -> Option<(Vec<String>, Origin)> {
        debug_assert!(setting(key).is_some(), "{key} is not declared in SETTINGS");
        self.values.remove(key)
    }

    /// Whether every setting given was taken (for the test that each
    /// declared setting is applied).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The error for a setting whose value cannot be used.
pub(super) fn invalid(key: &str, origin: &Origin, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting(key).map_or("?", |setting| setting.key),
        origin: origin.to_string(),
        reason: reason.into(),
    }
}

/// The settings in a configuration file, as text, by key.
fn read_file(path: &Path) -> Result<Vec<(&'static str, Vec<String>)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let invalid_file = |message: String, span: Option<std::ops::Range<usize>>| {
        // A position, never the text: the line may hold a database password.
        let position = span.map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {column})")
        });
        ConfigError::ParseFile {
            path: path.to_owned(),
            message: format!("{message}{position}"),
        }
    };
    type Table = BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>;
    let table: Table = toml::from_str(&text)
        .map_err(|error| invalid_file(error.message().to_owned(), error.span()))?;
    let mut settings = Vec::with_capacity(table.len());
    for (key, value) in table {
        let Some(setting) = setting(key.get_ref()) else {
            let known: Vec<&str> = SETTINGS.iter().map(|setting| setting.key).collect();
            return Err(invalid_file(
                format!(
                    "unknown setting `{}`; the settings are {}",
                    key.get_ref(),
                    known.join(", ")
                ),
                Some(key.span()),
            ));
        };
        let span = value.span();
        let values = match (&setting.shape, value.into_inner()) {
            (Shape::List, toml::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(text) => Some(text),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            (Shape::List | Shape::Text | Shape::Secret, toml::Value::String(text)) => {
                Some(vec![text])
            }
            (Shape::Number { .. }, toml::Value::Integer(number)) => Some(vec![number.to_string()]),
            (Shape::Number { .. }, toml::Value::String(text)) => Some(vec![text]),
            _ => None,
        };
        let Some(values) = values else {
            let expected = match setting.shape {
                Shape::List => "an array of strings",
                Shape::Number { .. } => "a whole number",
                Shape::Text | Shape::Secret => "a string",
            };
            return Err(invalid_file(
                format!("`{}` must be {expected}", setting.key),
                Some(span),
            ));
        };
        settings.push((setting.key, values));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_and_variable_is_named_after_its_key() {
        for setting in SETTINGS {
            let stem = match setting.key {
                "hostnames" => "hostname",
                "audit_witnesses" => "audit_witness",
                key => key,
            };
            assert_eq!(setting.flag, stem.replace('_', "-"), "{}", setting.key);
            assert_eq!(
                setting.env,
                format!("CURBSIDE_{}", setting.key.to_ascii_uppercase()),
                "{}",
                setting.key
            );
        }
        let mut keys: Vec<&str> = SETTINGS.iter().map(|setting| setting.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "a key is declared twice");
    }

    #[test]
    fn the_command_line_is_made_from_the_table() {
        use clap::{Args, FromArgMatches};
        let command = Overrides::augment_args(Command::new("t"));
        command.clone().debug_assert();
        let matches = command
            .try_get_matches_from([
                "t",
                "--listen",
                "0.0.0.0:1",
                "--hostname",
                "a",
                "--hostname",
                "b,c",
                "--database-url",
                "postgres://u:hunter2@db/x",
            ])
            .unwrap();
        let overrides = Overrides::from_arg_matches(&matches).unwrap();
        assert!(!format!("{overrides:?}").contains("hunter2"));
        let mut given = overrides.given().unwrap();
        let (hosts, origin) = given.list("hostnames").unwrap();
        assert_eq!(hosts, ["a", "b", "c"]);
        assert_eq!(origin.to_string(), "--hostname");
        assert_eq!(given.text("listen").unwrap().0, "0.0.0.0:1");
    }

    #[test]
    fn a_file_value_of_the_wrong_kind_is_located_but_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\ndatabase_url = [\"postgres://u:hunter2@db/x\"]\n",
        )
        .unwrap();
        let Err(error) = Overrides::default().with_config_file(&file).given() else {
            panic!("a list is not a URL");
        };
        let error = error.to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(
            error.contains("`database_url` must be a string") && error.contains("line 2"),
            "{error}"
        );
    }
}
