//! The database URL setting: which backend, and the rules that keep a
//! configured URL from being unsafe (an in-memory SQLite database that would
//! lose acknowledged writes, a remote PostgreSQL server reached without
//! verified TLS).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A database URL. It may hold a password, so `Debug` and `Display` show only
/// the backend, and validation errors never repeat it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts a `sqlite:` file URL (adding `mode=rwc` so the file is created
    /// on first start) or a `postgres://`/`postgresql://` URL that is local
    /// or asks for verified TLS.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("sqlite:") {
            return parse_sqlite(text);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return parse_postgres(text);
        }
        Err("expected a URL starting with sqlite: or postgres://".to_owned())
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

    /// The SQLite database's file, if this is a SQLite URL.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        let rest = self.0.strip_prefix("sqlite:")?;
        let path = rest.split_once('?').map_or(rest, |(path, _)| path);
        let path = path.strip_prefix("//").unwrap_or(path);
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?;
        Some(std::path::PathBuf::from(decoded.into_owned()))
    }

    /// The URL itself, for the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn parse_sqlite(text: &str) -> Result<DatabaseUrl, String> {
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if path.contains(":memory:") || params.contains(&"mode=memory") {
        return Err(
            "an in-memory SQLite database loses everything when the server stops; name a file, \
             e.g. sqlite:///var/lib/curbside/curbside.db"
                .to_owned(),
        );
    }
    let path = path.trim_start_matches("sqlite:").trim_start_matches("//");
    if path.is_empty() {
        return Err(
            "the SQLite URL names no file, e.g. sqlite:///var/lib/curbside/curbside.db".to_owned(),
        );
    }
    if params.iter().any(|p| p.starts_with("mode=")) {
        Ok(DatabaseUrl(text.to_owned()))
    } else if query.is_empty() {
        Ok(DatabaseUrl(format!("{text}?mode=rwc")))
    } else {
        Ok(DatabaseUrl(format!("{text}&mode=rwc")))
    }
}

fn parse_postgres(text: &str) -> Result<DatabaseUrl, String> {
    let url = url::Url::parse(text)
        .map_err(|_| "not a valid URL; expected postgres://USER@HOST:PORT/DATABASE".to_owned())?;
    let param = |key: &str| {
        url.query_pairs()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.into_owned())
    };
    let local = match param("host") {
        // A Unix socket never leaves the machine.
        Some(host) if host.starts_with('/') => true,
        Some(host) => is_loopback_name(&host),
        None => match url.host() {
            None => true,
            Some(url::Host::Domain(name)) => is_loopback_name(name),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        },
    };
    let verified = matches!(
        param("sslmode").as_deref(),
        Some("verify-full" | "verify-ca")
    );
    if !local && !verified {
        return Err(
            "a PostgreSQL server on another host must be reached over verified TLS: add \
             ?sslmode=verify-full to the URL (with sslrootcert=FILE for a private CA)"
                .to_owned(),
        );
    }
    Ok(DatabaseUrl(text.to_owned()))
}

fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

/// Text that may hold a secret, such as a database URL with a password, as
/// given on the command line or in the configuration file. `Debug` shows
/// nothing of it.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl FromStr for SecretText {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(…)")
    }
}

/// What a `sqlite://` path keeps as it is: letters, digits, `/` and the
/// characters RFC 3986 leaves unreserved; every other byte is `%XX`.
const PATH_KEEPS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a file path for a `sqlite://` URL, keeping `/`.
fn percent_encode_path(path: &Path) -> String {
    percent_encoding::percent_encode(path.as_os_str().as_encoded_bytes(), PATH_KEEPS).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_shown() {
        let url = DatabaseUrl::parse("postgres://curbside:hunter2@127.0.0.1/curbside").unwrap();
        assert!(!format!("{url:?} {url}").contains("hunter2"));
        let text: SecretText = "postgres://curbside:hunter2@db/x".parse().unwrap();
        assert_eq!(
            DatabaseUrl::sqlite_in(Path::new("/tmp/a b?c")).sqlite_file(),
            Some(std::path::PathBuf::from("/tmp/a b?c/curbside.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://u@127.0.0.1/x")
                .unwrap()
                .sqlite_file(),
            None
        );
        assert!(!format!("{text:?}").contains("hunter2"));
        let error =
            DatabaseUrl::parse("postgres://curbside:hunter2@db.example.org/curbside").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn remote_postgres_needs_verified_tls() {
        for remote in [
            "postgres://u@db.example.org/curbside",
            "postgres://u@10.0.0.5/curbside?sslmode=require",
            "postgres://u@10.0.0.5/curbside?sslmode=prefer",
            "postgres:///curbside?host=db.example.org",
        ] {
            assert!(DatabaseUrl::parse(remote).is_err(), "{remote} accepted");
        }
        for accepted in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgresql://u@localhost/curbside",
            "postgres://u@[::1]/curbside",
            "postgres:///curbside?host=/var/run/postgresql",
            "postgres://u@db.example.org/curbside?sslmode=verify-full",
            "postgres://u@10.0.0.5/curbside?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
        ] {
            assert!(DatabaseUrl::parse(accepted).is_ok(), "{accepted} refused");
        }
    }

    #[test]
    fn sqlite_urls_create_their_file_and_memory_is_refused() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/c/curbside.db")
                .unwrap()
                .expose(),
            "sqlite:///var/lib/c/curbside.db?mode=rwc"
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///x.db?mode=rw")
                .unwrap()
                .expose(),
            "sqlite:///x.db?mode=rw"
        );
        for memory in ["sqlite::memory:", "sqlite://?mode=memory", "sqlite://"] {
            assert!(DatabaseUrl::parse(memory).is_err(), "{memory} accepted");
        }
    }

    #[test]
    fn sqlite_paths_are_percent_encoded() {
        let url = DatabaseUrl::sqlite_in(Path::new("/tmp/a b?c"));
        assert_eq!(url.expose(), "sqlite:///tmp/a%20b%3Fc/curbside.db?mode=rwc");
    }
}
