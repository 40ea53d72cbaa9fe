//! Server settings, resolved from command-line flags, `CURBSIDE_*`
//! environment variables and an optional TOML file, in that order of
//! precedence, then validated. A bad value stops start-up with a message that
//! names the setting and where its value came from.
//!
//! Each setting is declared once, in `settings::SETTINGS`; this module turns
//! the values given into a typed [`Config`].

mod database_url;
mod error;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use database_url::{DatabaseUrl, SecretText};
pub use error::ConfigError;
pub use settings::Overrides;
use settings::invalid;

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
/// The largest attachment unless configured otherwise, in MiB.
pub const DEFAULT_MAX_ATTACHMENT_MIB: u64 = 100;
/// Each user's attachment quota unless configured otherwise, in MiB.
pub const DEFAULT_ATTACHMENT_QUOTA_MIB: u64 = 2048;
const MIB: u64 = 1024 * 1024;
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

/// The default most simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

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
    /// The witnesses the audit log's checkpoints are sent to for
    /// cosigning.
    pub audit_witnesses: Vec<WitnessTarget>,
    /// The largest MLS message (commit, application message, welcome).
    pub max_message_bytes: usize,
    /// The largest attachment (the file, before encryption).
    pub max_attachment_bytes: u64,
    /// The most bytes of attachments one user may have stored.
    pub attachment_quota_bytes: u64,
    /// Below this much free space on the data directory's disk, the server
    /// refuses unauthenticated work.
    pub min_free_disk_bytes: u64,
    /// How often expired rows are swept (not a setting: tests shorten it).
    pub sweep_every: Duration,
    /// The push gateway, if one is configured.
    pub push_gateway: Option<PushGateway>,
    /// The identity provider's token for SCIM provisioning; none turns
    /// `/scim/v2` off.
    pub scim_token: Option<ServiceToken>,
    /// Prometheus's token for `/metrics`; none turns it off.
    pub metrics_token: Option<ServiceToken>,
}

/// A bearer token a service (the identity provider, Prometheus) presents.
/// Only its SHA-256 is kept, and `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceToken([u8; 32]);

impl ServiceToken {
    /// The fewest characters a token may have.
    pub const MIN_CHARS: usize = 32;

    /// The token `text`, if it is long enough.
    pub fn new(text: &str) -> Option<Self> {
        (text.chars().count() >= Self::MIN_CHARS && !text.chars().any(char::is_whitespace))
            .then(|| Self(digest(text)))
    }

    /// Whether `given` is this token. Compares digests, so the time taken
    /// says nothing about the token.
    pub fn matches(&self, given: &str) -> bool {
        digest(given) == self.0
    }
}

fn digest(text: &str) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref());
    out
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(…)")
    }
}

/// Where devices that are not connected are woken (see `crate::push::gateway`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushGateway {
    /// The gateway's notify URL (HTTPS).
    pub url: url::Url,
    /// Certificates to trust for it instead of the system's roots.
    pub ca: Option<PathBuf>,
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
            audit_witnesses: Vec::new(),
            max_message_bytes: curbside_proto::threads::DEFAULT_MAX_MESSAGE_BYTES,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_MIB * MIB,
            attachment_quota_bytes: DEFAULT_ATTACHMENT_QUOTA_MIB * MIB,
            min_free_disk_bytes: crate::disk::DEFAULT_MIN_FREE_MIB * 1024 * 1024,
            sweep_every: DEFAULT_SWEEP_EVERY,
            push_gateway: None,
            scim_token: None,
            metrics_token: None,
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

/// A witness of the audit log: where it serves, the certificate it
/// presents, and the key it cosigns with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessTarget {
    /// Its base URL (`https://host:port`, or with a path prefix).
    pub url: String,
    /// The SHA-256 fingerprint of its TLS certificate.
    pub pin: curbside_proto::CertificateFingerprint,
    /// Its cosigning key.
    pub key: curbside_proto::witness::CosignerKey,
}

impl WitnessTarget {
    /// Reads `URL FINGERPRINT KEY`, as `curbside-server witness` prints it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [url, pin, key] = parts[..] else {
            return Err(format!(
                "{text:?} is not \"URL FINGERPRINT KEY\", the line `curbside-server witness` \
                 prints after \"Configure a server with: --audit-witness\""
            ));
        };
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|parsed| parsed.scheme() == "https" && parsed.host().is_some())
            .ok_or_else(|| format!("{url:?} is not an https:// URL"))?;
        let pin = pin.parse().map_err(|error| format!("{pin:?}: {error}"))?;
        let key = curbside_proto::witness::CosignerKey::from_verifier_string(key)
            .ok_or_else(|| format!("{key:?} is not a witness key (name+id+base64)"))?;
        Ok(Self {
            url: parsed.as_str().trim_end_matches('/').to_owned(),
            pin,
            key,
        })
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

impl Overrides {
    /// Resolves these overrides, a configuration file if one is named, and
    /// the defaults into a validated [`Config`].
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let mut given = self.given()?;
        let config = resolve(&mut given)?;
        #[cfg(test)]
        assert!(given.is_empty(), "a declared setting was not applied");
        Ok(config)
    }
}

fn resolve(given: &mut settings::Given) -> Result<Config, ConfigError> {
    let data_dir = given
        .text("data_dir")
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |(dir, _)| dir.into());
    // Every setting not given keeps the default `with_data_dir` sets.
    let mut config = Config::with_data_dir(data_dir);

    if let Some((text, origin)) = given.text("listen") {
        config.listen = text.trim().parse::<SocketAddr>().map_err(|_| {
            invalid(
                "listen",
                &origin,
                format!("{text:?} is not an address and port such as 127.0.0.1:8443 or [::]:8443"),
            )
        })?;
    }
    if let Some((text, origin)) = given.text("database_url") {
        config.database =
            DatabaseUrl::parse(&text).map_err(|reason| invalid("database_url", &origin, reason))?;
    }
    config.tls = tls_source(given)?;
    if let Some((text, origin)) = given.text("log_format") {
        config.log_format = parse_log_format(&text).ok_or_else(|| {
            invalid(
                "log_format",
                &origin,
                format!("{text:?} is not text or json"),
            )
        })?;
    }

    if let Some(value) = given.number("max_body_bytes")? {
        config.max_body_bytes = to_usize(value);
    }
    if let Some(value) = given.number("shutdown_grace_seconds")? {
        config.shutdown_grace = Duration::from_secs(value);
    }
    if let Some(value) = given.number("max_connections")? {
        config.max_connections = to_usize(value);
    }
    if let Some(value) = given.number("max_connections_per_address")? {
        config.max_connections_per_address = Some(to_usize(value));
    }
    if let Some(value) = given.number("session_idle_seconds")? {
        config.session_idle = Duration::from_secs(value);
    }
    if let Some(value) = given.number("token_lifetime_seconds")? {
        config.token_lifetime = Duration::from_secs(value);
    }
    if let Some(value) = given.number("enrollment_code_hours")? {
        config.enrollment_code_lifetime = Duration::from_secs(value * 3600);
    }
    if let Some(value) = given.number("audit_checkpoint_entries")? {
        config.audit_checkpoints.every_entries = value;
    }
    if let Some(value) = given.number("audit_checkpoint_seconds")? {
        config.audit_checkpoints.every = Duration::from_secs(value);
    }
    if let Some((targets, origin)) = given.list("audit_witnesses") {
        config.audit_witnesses = targets
            .iter()
            .map(|text| WitnessTarget::parse(text))
            .collect::<Result<_, _>>()
            .map_err(|reason| invalid("audit_witnesses", &origin, reason))?;
    }
    if let Some(value) = given.number("max_message_bytes")? {
        config.max_message_bytes = to_usize(value);
    }
    if let Some(value) = given.number("max_attachment_mib")? {
        config.max_attachment_bytes = value * MIB;
    }
    if let Some(value) = given.number("attachment_quota_mib")? {
        config.attachment_quota_bytes = value * MIB;
    }
    if let Some(value) = given.number("min_free_disk_mib")? {
        config.min_free_disk_bytes = value * 1024 * 1024;
    }
    let mut metrics_origin = None;
    for (key, slot) in [
        ("scim_token", &mut config.scim_token),
        ("metrics_token", &mut config.metrics_token),
    ] {
        if let Some((text, origin)) = given.text(key) {
            if key == "metrics_token" {
                metrics_origin = Some(origin.clone());
            }
            *slot = Some(ServiceToken::new(&text).ok_or_else(|| {
                invalid(
                    key,
                    &origin,
                    "give a random token of at least 32 characters without spaces, such as \
                     the output of `openssl rand -hex 32`",
                )
            })?);
        }
    }
    if let (Some(scim), Some(metrics), Some(origin)) =
        (&config.scim_token, &config.metrics_token, &metrics_origin)
        && scim == metrics
    {
        return Err(invalid(
            "metrics_token",
            origin,
            "give Prometheus a token of its own: the same token as scim_token would let \
             whoever scrapes the metrics provision users",
        ));
    }
    let ca = given.text("push_gateway_ca");
    match given.text("push_gateway_url") {
        Some((text, origin)) => {
            let url = url::Url::parse(&text)
                .ok()
                .filter(|url| {
                    url.scheme() == "https"
                        && url.host().is_some()
                        && url.username().is_empty()
                        && url.password().is_none()
                })
                .ok_or_else(|| {
                    invalid(
                        "push_gateway_url",
                        &origin,
                        "give the gateway's notify URL over HTTPS, such as \
                         https://push.example.org/_matrix/push/v1/notify, without credentials",
                    )
                })?;
            config.push_gateway = Some(PushGateway {
                url,
                ca: ca.map(|(path, _)| PathBuf::from(path)),
            });
        }
        None => {
            if let Some((_, origin)) = ca {
                return Err(invalid(
                    "push_gateway_ca",
                    &origin,
                    "a certificate for the push gateway is given, but no push_gateway_url",
                ));
            }
        }
    }
    Ok(config)
}

/// The certificate's source: both files, or neither and a generated one
/// with the extra host names.
fn tls_source(given: &mut settings::Given) -> Result<TlsSource, ConfigError> {
    let cert = given.text("tls_cert");
    let key = given.text("tls_key");
    let hostnames = given.list("hostnames");
    match (cert, key, hostnames) {
        (Some(_), Some(_), Some((names, origin))) if !names.is_empty() => Err(invalid(
            "hostnames",
            &origin,
            "host names only apply to the generated certificate; leave them out when giving \
             tls_cert and tls_key",
        )),
        (Some((cert, _)), Some((key, _)), _) => Ok(TlsSource::Files {
            cert: cert.into(),
            key: key.into(),
        }),
        (Some((_, origin)), None, _) => Err(invalid(
            "tls_key",
            &origin,
            "tls_cert is set but tls_key is not; give both, or neither to use a generated \
             certificate",
        )),
        (None, Some((_, origin)), _) => Err(invalid(
            "tls_cert",
            &origin,
            "tls_key is set but tls_cert is not; give both, or neither to use a generated \
             certificate",
        )),
        (None, None, hostnames) => {
            let Some((given_names, origin)) = hostnames else {
                return Ok(TlsSource::Generated {
                    hostnames: Vec::new(),
                });
            };
            let mut names = Vec::with_capacity(given_names.len());
            for name in &given_names {
                let name = canonical_host_name(name).ok_or_else(|| {
                    invalid(
                        "hostnames",
                        &origin,
                        format!("{name:?} is not a DNS name or IP address"),
                    )
                })?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Ok(TlsSource::Generated { hostnames: names })
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides() -> Overrides {
        Overrides::default()
    }

    fn refusal(overrides: Overrides) -> String {
        overrides.resolve().unwrap_err().to_string()
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
            "listen = \"0.0.0.0:9443\"\nlog_format = \"json\"\nmax_body_bytes = 2048\n\
             hostnames = [\"a.example\"]\nsession_idle_seconds = \"120\"\n",
        )
        .unwrap();
        let config = overrides()
            .with_config_file(&file)
            .with("listen", "127.0.0.1:7443")
            .resolve()
            .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7443");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.max_body_bytes, 2048);
        assert_eq!(config.session_idle, Duration::from_secs(120));
        assert_eq!(
            config.tls,
            TlsSource::Generated {
                hostnames: vec!["a.example".to_owned()]
            }
        );
    }

    #[test]
    fn every_setting_is_applied() {
        let config = overrides()
            .with("data_dir", "/srv/curbside")
            .with("listen", "[::]:443")
            .with("database_url", "postgres://curbside@127.0.0.1/curbside")
            .with("log_format", "JSON")
            .with("max_body_bytes", "4096")
            .with("shutdown_grace_seconds", "5")
            .with("max_connections", "100")
            .with("max_connections_per_address", "7")
            .with("session_idle_seconds", "300")
            .with("token_lifetime_seconds", "600")
            .with("enrollment_code_hours", "2")
            .with("audit_checkpoint_entries", "10")
            .with("audit_checkpoint_seconds", "20")
            .with("max_message_bytes", "2048")
            .with("min_free_disk_mib", "1")
            .with("hostnames", "x.example")
            .resolve()
            .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/curbside"));
        assert_eq!(config.listen.to_string(), "[::]:443");
        assert!(config.database.is_postgres());
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.connections_per_address(), 7);
        assert_eq!(config.session_idle, Duration::from_secs(300));
        assert_eq!(config.token_lifetime, Duration::from_secs(600));
        assert_eq!(config.enrollment_code_lifetime, Duration::from_secs(7200));
        assert_eq!(
            config.audit_checkpoints,
            CheckpointPolicy {
                every_entries: 10,
                every: Duration::from_secs(20)
            }
        );
        assert_eq!(config.max_message_bytes, 2048);
        assert_eq!(config.min_free_disk_bytes, 1024 * 1024);
        assert_eq!(
            config.tls,
            TlsSource::Generated {
                hostnames: vec!["x.example".to_owned()]
            }
        );
        // `resolve` itself asserts, under test, that no given setting was
        // left unapplied; the certificate files are the one pair left out
        // above because they exclude host names.
        let config = overrides()
            .with("tls_cert", "/etc/c.pem")
            .with("tls_key", "/etc/k.pem")
            .resolve()
            .unwrap();
        assert_eq!(
            config.tls,
            TlsSource::Files {
                cert: "/etc/c.pem".into(),
                key: "/etc/k.pem".into()
            }
        );
    }

    #[test]
    fn bad_values_name_the_setting_and_its_origin() {
        let error = refusal(overrides().with("listen", "localhost"));
        assert!(
            error.contains("`listen`") && error.contains("--listen"),
            "{error}"
        );
        let error = refusal(overrides().with("max_body_bytes", "1"));
        assert!(error.contains("`max_body_bytes`"), "{error}");
        let error = refusal(overrides().with("database_url", "mysql://x"));
        assert!(
            error.contains("`database_url`") && !error.contains("mysql://x"),
            "{error}"
        );
        let token = "0123456789abcdef0123456789abcdef";
        let error = refusal(overrides().with("scim_token", "short"));
        assert!(
            error.contains("`scim_token`") && !error.contains("short"),
            "{error}"
        );
        let error = refusal(
            overrides()
                .with("scim_token", token)
                .with("metrics_token", token),
        );
        assert!(
            error.contains("`metrics_token`") && !error.contains(token),
            "{error}"
        );
        let error = refusal(overrides().with("log_format", "xml"));
        assert!(error.contains("`log_format`"), "{error}");
        let error = refusal(overrides().with("tls_cert", "/etc/c.pem"));
        assert!(
            error.contains("`tls_key`") && error.contains("--tls-cert"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(&file, "max_connections = 0\n").unwrap();
        let error = refusal(overrides().with_config_file(&file));
        assert!(
            error.contains("`max_connections`") && error.contains("curbside.toml"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(&file, "\nlisen = \"0.0.0.0:9443\"\n").unwrap();
        let error = refusal(overrides().with_config_file(file));
        assert!(
            error.contains("`lisen`") && error.contains("line 2") && error.contains("listen"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_file_line_is_located_but_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("curbside.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:8443\"\ndatabase_url = \"postgres://u:hunter2@db/x\n",
        )
        .unwrap();
        let error = refusal(overrides().with_config_file(file));
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn host_names_are_validated_and_canonical() {
        let config = overrides()
            .with("hostnames", "Curbside.Example.org,[0:0::1]")
            .resolve()
            .unwrap();
        assert_eq!(
            config.tls,
            TlsSource::Generated {
                hostnames: vec!["curbside.example.org".to_owned(), "::1".to_owned()]
            }
        );
        for bad in ["https://x", "two words", ""] {
            let error = refusal(overrides().with("hostnames", bad));
            assert!(error.contains("`hostnames`"), "{error}");
        }
        let error = refusal(
            overrides()
                .with("tls_cert", "c")
                .with("tls_key", "k")
                .with("hostnames", "x.example"),
        );
        assert!(error.contains("`hostnames`"), "{error}");
    }

    #[test]
    fn numbers_outside_their_range_are_refused() {
        for (key, value) in [
            ("max_connections", "0"),
            ("shutdown_grace_seconds", "-1"),
            ("session_idle_seconds", "59"),
            ("enrollment_code_hours", "721"),
        ] {
            let error = refusal(overrides().with(key, value));
            assert!(error.contains(&format!("`{key}`")), "{error}");
        }
    }
}
