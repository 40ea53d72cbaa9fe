//! The server's TLS identity and rustls configuration.
//!
//! Only TLS 1.3, and TLS 1.2 with ECDHE key exchange and AEAD ciphers, are
//! offered: that is exactly what rustls's `ring` provider implements, so no
//! suite needs to be filtered out. Without a configured certificate the
//! server generates a self-signed one once, keeps it in the data directory and
//! reuses it, so clients can pin its fingerprint.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use curbside_proto::CertificateFingerprint;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSource;
use crate::files::{FileError, check_key_permissions, create_private_dir, write_new_file};

/// The protocols offered by ALPN, most preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

const TLS_DIR: &str = "tls";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const NAMES_FILE: &str = "hostnames.txt";
/// The names every generated certificate covers.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
const GENERATED_VALIDITY_DAYS: i64 = 3650;

/// The server's certificate, key and the rustls configuration built from them.
pub struct TlsIdentity {
    /// The rustls server configuration.
    pub config: Arc<ServerConfig>,
    /// The SHA-256 fingerprint of the leaf certificate.
    pub fingerprint: CertificateFingerprint,
    /// Where the certificate came from, for the start-up message.
    pub certificate_path: PathBuf,
    /// Whether this start generated the certificate (as opposed to loading it).
    pub newly_generated: bool,
    /// Host names asked for with `--hostname` that the stored generated
    /// certificate does not cover.
    pub missing_hostnames: Vec<String>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("certificate_path", &self.certificate_path)
            .finish_non_exhaustive()
    }
}

/// Why the TLS identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file holds nothing usable.
    #[error("{path} {problem}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The generated certificate's files are incomplete.
    #[error(
        "{present} exists but {missing} does not; restore the missing file, or remove both to \
         generate a new certificate (clients that pinned the old fingerprint must then be told the new one)"
    )]
    Incomplete {
        /// The file that is there.
        present: PathBuf,
        /// The file that is not.
        missing: PathBuf,
    },
    /// A file could not be written, or is readable by others.
    #[error(transparent)]
    File(#[from] FileError),
    /// rustls refused the certificate or key.
    #[error("the TLS certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
    /// rcgen could not make a certificate.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Loads the configured certificate, or loads or generates the self-signed
/// one in `data_dir`.
pub fn load_or_generate(source: &TlsSource, data_dir: &Path) -> Result<TlsIdentity, TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            check_key_permissions(key, 0o640)?;
            let chain = read_certificates(cert)?;
            let key = read_private_key(key)?;
            identity(chain, key, cert.clone(), false, Vec::new())
        }
        TlsSource::Generated { hostnames } => {
            let dir = data_dir.join(TLS_DIR);
            let cert_path = dir.join(CERT_FILE);
            let key_path = dir.join(KEY_FILE);
            let names_path = dir.join(NAMES_FILE);
            let newly_generated = match (cert_path.exists(), key_path.exists()) {
                (true, true) => false,
                (false, false) => {
                    generate(&dir, &cert_path, &key_path, &names_path, hostnames)?;
                    true
                }
                (true, false) => {
                    return Err(TlsError::Incomplete {
                        present: cert_path,
                        missing: key_path,
                    });
                }
                (false, true) => {
                    return Err(TlsError::Incomplete {
                        present: key_path,
                        missing: cert_path,
                    });
                }
            };
            let covered = fs::read_to_string(&names_path).unwrap_or_default();
            let missing_hostnames = hostnames
                .iter()
                .filter(|name| !covered.lines().any(|line| line == name.as_str()))
                .cloned()
                .collect();
            check_key_permissions(&key_path, 0o600)?;
            let chain = read_certificates(&cert_path)?;
            let key = read_private_key(&key_path)?;
            identity(chain, key, cert_path, newly_generated, missing_hostnames)
        }
    }
}

fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    certificate_path: PathBuf,
    newly_generated: bool,
    missing_hostnames: Vec<String>,
) -> Result<TlsIdentity, TlsError> {
    let fingerprint = chain
        .first()
        .map(|leaf| CertificateFingerprint::of_der(leaf.as_ref()))
        .ok_or_else(|| TlsError::Pem {
            path: certificate_path.clone(),
            problem: "holds no certificate".to_owned(),
        })?;
    Ok(TlsIdentity {
        config: Arc::new(server_config(chain, key)?),
        fingerprint,
        certificate_path,
        newly_generated,
        missing_hostnames,
    })
}

/// The rustls configuration: TLS 1.3 and 1.2 (ECDHE + AEAD only, which is
/// all the `ring` provider offers), no client certificates, ALPN h2 and
/// http/1.1.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsError::Pem {
            path: path.to_owned(),
            problem: format!("is not a readable PEM certificate file ({error})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            problem: "holds no CERTIFICATE block".to_owned(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| TlsError::Pem {
        path: path.to_owned(),
        problem: format!("is not a readable PEM private key (PKCS#8, PKCS#1 or SEC1) ({error})"),
    })
}

fn generate(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    names_path: &Path,
    hostnames: &[String],
) -> Result<(), TlsError> {
    create_private_dir(dir)?;
    let mut names: Vec<String> = LOCAL_NAMES.iter().map(|name| (*name).to_owned()).collect();
    for name in hostnames {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names.clone())?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, "Curbside server (self-signed)");
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(GENERATED_VALIDITY_DAYS);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    // The key first: a certificate without its key is reported as incomplete
    // on the next start rather than silently replaced.
    write_new_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new_file(names_path, (names.join("\n") + "\n").as_bytes(), 0o644)?;
    write_new_file(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_reused_and_its_key_is_private() {
        let temporary = tempfile::tempdir().unwrap();
        let data_dir = temporary.path().join("data");
        let source = TlsSource::Generated {
            hostnames: vec!["curbside.example.org".to_owned()],
        };
        let first = load_or_generate(&source, &data_dir).unwrap();
        assert!(first.newly_generated);
        let key_mode = fs::metadata(data_dir.join(TLS_DIR).join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);

        let second = load_or_generate(&source, &data_dir).unwrap();
        assert!(!second.newly_generated);
        assert_eq!(first.fingerprint, second.fingerprint);
        assert!(second.missing_hostnames.is_empty());

        let more = TlsSource::Generated {
            hostnames: vec!["other.example.org".to_owned()],
        };
        let third = load_or_generate(&more, &data_dir).unwrap();
        assert_eq!(third.fingerprint, first.fingerprint);
        assert_eq!(
            third.missing_hostnames,
            vec!["other.example.org".to_owned()]
        );
    }

    #[test]
    fn a_lost_key_is_reported_not_replaced() {
        let temporary = tempfile::tempdir().unwrap();
        let data_dir = temporary.path().join("data");
        let source = TlsSource::Generated { hostnames: vec![] };
        load_or_generate(&source, &data_dir).unwrap();
        fs::remove_file(data_dir.join(TLS_DIR).join(KEY_FILE)).unwrap();
        let error = load_or_generate(&source, &data_dir).unwrap_err();
        assert!(matches!(error, TlsError::Incomplete { .. }), "{error}");
    }

    #[test]
    fn garbage_pem_files_are_refused_with_the_file_named() {
        let temporary = tempfile::tempdir().unwrap();
        let data_dir = temporary.path().to_owned();
        let cert = data_dir.join("cert.pem");
        let key = data_dir.join("key.pem");
        fs::write(&cert, "not a certificate").unwrap();
        fs::write(&key, "not a key").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let error = load_or_generate(
            &TlsSource::Files {
                cert: cert.clone(),
                key,
            },
            &data_dir,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(&cert.display().to_string()), "{error}");
    }

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_data_directories_and_keys_are_refused() {
        let temporary = tempfile::tempdir().unwrap();
        let open = temporary.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let error = create_private_dir(&open).unwrap_err().to_string();
        assert!(error.contains("chmod 700"), "{error}");

        let data_dir = temporary.path().join("data");
        let source = TlsSource::Generated { hostnames: vec![] };
        load_or_generate(&source, &data_dir).unwrap();
        let key = data_dir.join(TLS_DIR).join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_generate(&source, &data_dir)
            .unwrap_err()
            .to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }
}
