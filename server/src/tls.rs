//! The server's TLS identity and rustls configuration.
//!
//! Only TLS 1.3, and TLS 1.2 with ECDHE key exchange and AEAD ciphers, are
//! offered: that is exactly what rustls's `ring` provider implements, so no
//! suite needs to be filtered out. Without a configured certificate the
//! server generates a self-signed one once, keeps it in the data directory and
//! reuses it, so clients can pin its fingerprint.
//!
//! The generated certificate is valid for 397 days (browsers' rules allow
//! 398) and renewed, with the same key, when it has less than 30 days
//! left: at start, and twice a day while the server runs (served from then
//! on without a restart). Its fingerprint then changes but its key does
//! not, and the CLI, which remembers the key of the certificate it pinned,
//! follows the renewal (`curbside_cli::trust`). A certificate generated
//! before this rule, valid for ten years, is renewed the same way when it
//! has 30 days left (at once, it would break the pins of the profiles made
//! before they learned to follow a renewal).

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
/// How long a generated certificate is valid.
pub const GENERATED_VALIDITY_DAYS: i64 = 397;
/// A generated certificate with less left than this is renewed.
pub const RENEW_WITHIN_DAYS: u64 = 30;
/// How often the running server looks at its generated certificate.
pub const RENEWAL_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

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
    /// The fingerprint of the generated certificate this start renewed.
    pub renewed_from: Option<CertificateFingerprint>,
    /// The certificate being served, swapped when a generated one is
    /// renewed while the server runs.
    pub current: Arc<CurrentCertificate>,
    /// Where the generated certificate lives, if it is one.
    generated_dir: Option<PathBuf>,
}

/// The certificate and key the server presents, swappable at run time.
#[derive(Debug)]
pub struct CurrentCertificate {
    certified: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl CurrentCertificate {
    /// The SHA-256 fingerprint of the certificate being served now.
    pub fn fingerprint(&self) -> Option<CertificateFingerprint> {
        let certified = self
            .certified
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        certified
            .cert
            .first()
            .map(|leaf| CertificateFingerprint::of_der(leaf.as_ref()))
    }
}

impl rustls::server::ResolvesServerCert for CurrentCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.certified
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
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
            identity(chain, key, cert.clone(), false, Vec::new(), None, None)
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
            let mut chain = read_certificates(&cert_path)?;
            let mut renewed_from = None;
            if chain.first().is_some_and(needs_renewal) {
                // A renewal that fails (a full disk, say) leaves the current
                // certificate in use: the running server tries again.
                match renew(&dir) {
                    Ok(()) => {
                        renewed_from = chain
                            .first()
                            .map(|leaf| CertificateFingerprint::of_der(leaf.as_ref()));
                        chain = read_certificates(&cert_path)?;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot renew the generated TLS certificate");
                    }
                }
            }
            let key = read_private_key(&key_path)?;
            identity(
                chain,
                key,
                cert_path,
                newly_generated,
                missing_hostnames,
                renewed_from,
                Some(dir),
            )
        }
    }
}

fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    certificate_path: PathBuf,
    newly_generated: bool,
    missing_hostnames: Vec<String>,
    renewed_from: Option<CertificateFingerprint>,
    generated_dir: Option<PathBuf>,
) -> Result<TlsIdentity, TlsError> {
    let fingerprint = chain
        .first()
        .map(|leaf| CertificateFingerprint::of_der(leaf.as_ref()))
        .ok_or_else(|| TlsError::Pem {
            path: certificate_path.clone(),
            problem: "holds no certificate".to_owned(),
        })?;
    let current = Arc::new(CurrentCertificate {
        certified: std::sync::RwLock::new(Arc::new(certified(chain, key)?)),
    });
    Ok(TlsIdentity {
        config: Arc::new(server_config(current.clone())?),
        fingerprint,
        certificate_path,
        newly_generated,
        missing_hostnames,
        renewed_from,
        current,
        generated_dir,
    })
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::sign::CertifiedKey, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
}

/// The rustls configuration: TLS 1.3 and 1.2 (ECDHE + AEAD only, which is
/// all the `ring` provider offers), no client certificates, ALPN h2 and
/// http/1.1, presenting the current certificate.
pub fn server_config(current: Arc<CurrentCertificate>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(current);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

impl TlsIdentity {
    /// Renews a generated certificate that has less than 30 days left and
    /// serves the new one from now on; returns its fingerprint if it did.
    pub fn renew_if_due(&self) -> Result<Option<CertificateFingerprint>, TlsError> {
        let Some(dir) = &self.generated_dir else {
            return Ok(None);
        };
        let cert_path = dir.join(CERT_FILE);
        let chain = read_certificates(&cert_path)?;
        if !chain.first().is_some_and(needs_renewal) {
            return Ok(None);
        }
        renew(dir)?;
        let chain = read_certificates(&cert_path)?;
        let fingerprint = chain
            .first()
            .map(|leaf| CertificateFingerprint::of_der(leaf.as_ref()));
        let key = read_private_key(&dir.join(KEY_FILE))?;
        let certified = Arc::new(certified(chain, key)?);
        *self
            .current
            .certified
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = certified;
        Ok(fingerprint)
    }
}

/// `days` from now, as rustls and webpki count time.
fn days_from_now(days: u64) -> rustls_pki_types::UnixTime {
    rustls_pki_types::UnixTime::since_unix_epoch(
        rustls_pki_types::UnixTime::now()
            .as_secs()
            .checked_add(days * 86_400)
            .map_or(std::time::Duration::MAX, std::time::Duration::from_secs),
    )
}

/// Whether `certificate` (self-signed) is valid at `at`: webpki checks it
/// as its own trust anchor, which covers its validity period.
fn valid_at(certificate: &CertificateDer<'_>, at: rustls_pki_types::UnixTime) -> bool {
    let Ok(anchor) = webpki::anchor_from_trusted_cert(certificate) else {
        return false;
    };
    let Ok(leaf) = webpki::EndEntityCert::try_from(certificate) else {
        return false;
    };
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        at,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .is_ok()
}

/// Whether a generated certificate must be renewed: it has less than 30
/// days left. (One generated before the 397-day rule keeps its ten years
/// until then: renewing it at once would break the pins of profiles made
/// before they learned to follow a renewal by its key.)
fn needs_renewal(certificate: &CertificateDer<'_>) -> bool {
    !valid_at(certificate, days_from_now(RENEW_WITHIN_DAYS))
}

/// Makes a new certificate for the generated key in `dir`, for the names it
/// covers, and puts it in place.
fn renew(dir: &Path) -> Result<(), TlsError> {
    let key_path = dir.join(KEY_FILE);
    let pem = fs::read_to_string(&key_path).map_err(|error| TlsError::Pem {
        path: key_path.clone(),
        problem: format!("cannot be read ({error})"),
    })?;
    let key = rcgen::KeyPair::from_pem(&pem)?;
    let names: Vec<String> = fs::read_to_string(dir.join(NAMES_FILE))
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let names = if names.is_empty() {
        LOCAL_NAMES.iter().map(|name| (*name).to_owned()).collect()
    } else {
        names
    };
    let cert = self_signed(&names, &key)?;
    write_new_file(&dir.join(CERT_FILE), cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn self_signed(names: &[String], key: &rcgen::KeyPair) -> Result<rcgen::Certificate, TlsError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, "Curbside server (self-signed)");
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(GENERATED_VALIDITY_DAYS);
    Ok(params.self_signed(key)?)
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
    let key = rcgen::KeyPair::generate()?;
    let cert = self_signed(&names, &key)?;

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

    /// The SHA-256 of a certificate's public key (its SPKI).
    fn key_of(path: &Path) -> Vec<u8> {
        let der = CertificateDer::from_pem_file(path).unwrap();
        let leaf = webpki::EndEntityCert::try_from(&der).unwrap();
        ring::digest::digest(
            &ring::digest::SHA256,
            leaf.subject_public_key_info().as_ref(),
        )
        .as_ref()
        .to_vec()
    }

    /// Puts a certificate for the generated key, valid `days` from now, in
    /// place of the generated one.
    fn replace_with_validity(data_dir: &Path, days: i64) {
        let dir = data_dir.join(TLS_DIR);
        let key =
            rcgen::KeyPair::from_pem(&fs::read_to_string(dir.join(KEY_FILE)).unwrap()).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.self_signed(&key).unwrap();
        fs::write(dir.join(CERT_FILE), cert.pem()).unwrap();
    }

    #[test]
    fn a_generated_certificate_lasts_397_days_and_is_renewed_with_its_key() {
        let temporary = tempfile::tempdir().unwrap();
        let data_dir = temporary.path().join("data");
        let source = TlsSource::Generated { hostnames: vec![] };
        let first = load_or_generate(&source, &data_dir).unwrap();
        let cert_path = data_dir.join(TLS_DIR).join(CERT_FILE);
        let der = CertificateDer::from_pem_file(&cert_path).unwrap();
        assert!(valid_at(&der, days_from_now(396)));
        assert!(!valid_at(&der, days_from_now(398)));
        assert!(!needs_renewal(&der));
        assert_eq!(first.renew_if_due().unwrap(), None);
        let key = key_of(&cert_path);

        // Ten days left: the next start renews it, with the same key.
        replace_with_validity(&data_dir, 10);
        let expiring = CertificateFingerprint::of_der(
            CertificateDer::from_pem_file(&cert_path).unwrap().as_ref(),
        );
        let second = load_or_generate(&source, &data_dir).unwrap();
        assert_eq!(second.renewed_from, Some(expiring));
        assert_ne!(second.fingerprint, expiring);
        assert_eq!(key_of(&cert_path), key);
        let renewed = CertificateDer::from_pem_file(&cert_path).unwrap();
        assert!(valid_at(&renewed, days_from_now(396)));

        // A ten-year certificate from before the rule is kept (profiles
        // pinned to it may not know its key yet); a running server renews
        // one that runs short, serving it at once.
        replace_with_validity(&data_dir, 3650);
        assert!(
            load_or_generate(&source, &data_dir)
                .unwrap()
                .renewed_from
                .is_none()
        );
        replace_with_validity(&data_dir, 5);
        let now_serving = second.renew_if_due().unwrap().unwrap();
        assert_eq!(
            now_serving,
            CertificateFingerprint::of_der(
                CertificateDer::from_pem_file(&cert_path).unwrap().as_ref()
            )
        );
        let served = second.current.certified.read().unwrap().clone();
        let served = served.end_entity_cert().unwrap().clone();
        assert_eq!(CertificateFingerprint::of_der(served.as_ref()), now_serving);
        assert_eq!(key_of(&cert_path), key);
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
