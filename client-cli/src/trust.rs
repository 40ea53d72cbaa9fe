//! How the client decides to trust a server's certificate: by a pinned
//! SHA-256 fingerprint, by a given CA certificate, or by the system's roots,
//! in that order of preference. A pin that does not match is an error, never
//! a reason to fall back to another way of trusting.
//!
//! A profile also remembers the public key of the certificate it pinned
//! ([`Trust::PinOrSameKey`]): the server renews its generated certificate
//! with the same key before it expires, and a certificate with that key is
//! the same server, so the profile follows the renewal and pins the new
//! fingerprint. A certificate with any other key is refused as before.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use curbside_proto::CertificateFingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use rustls_platform_verifier::BuilderVerifierExt;

/// How to trust the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Accept exactly the certificate with this SHA-256 fingerprint (host
    /// name and expiry are not checked: the pin is the whole identity).
    Pin(CertificateFingerprint),
    /// Accept the certificate with this fingerprint, or one whose public key
    /// (its SubjectPublicKeyInfo) has this SHA-256: the pinned server's
    /// certificate, renewed with the same key.
    PinOrSameKey {
        /// The pinned certificate's fingerprint.
        certificate: CertificateFingerprint,
        /// The SHA-256 of its SubjectPublicKeyInfo.
        key: [u8; 32],
    },
    /// Accept certificates issued for the server's host name by the CA
    /// certificates in this PEM file.
    CaFile(PathBuf),
    /// Accept certificates the operating system trusts.
    SystemRoots,
}

impl Trust {
    /// Picks the trust mode from the options given, preferring the pin, then
    /// the CA file, then the system roots.
    pub fn from_options(pin: Option<CertificateFingerprint>, ca_file: Option<PathBuf>) -> Self {
        match (pin, ca_file) {
            (Some(pin), _) => Self::Pin(pin),
            (None, Some(path)) => Self::CaFile(path),
            (None, None) => Self::SystemRoots,
        }
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use the CA certificate file {path} (--ca-cert): {problem}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate the pin refused: what was expected and what the server
/// presented. It travels inside the rustls error of the failed handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the certificate's fingerprint is {presented}, not the pinned {expected}")]
pub struct PinMismatch {
    /// The pinned fingerprint.
    pub expected: CertificateFingerprint,
    /// The fingerprint of the certificate the server presented.
    pub presented: CertificateFingerprint,
}

/// A pinned certificate the client accepted: its fingerprint and the
/// SHA-256 of its public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    /// The certificate's fingerprint.
    pub certificate: CertificateFingerprint,
    /// The SHA-256 of its SubjectPublicKeyInfo.
    pub key: [u8; 32],
}

/// Where a pinned configuration records the certificate it last accepted.
pub type Observed = Arc<std::sync::Mutex<Option<Presented>>>;

/// The SHA-256 of a certificate's SubjectPublicKeyInfo, if it parses.
pub fn key_hash(certificate: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let leaf = webpki::EndEntityCert::try_from(certificate).ok()?;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        leaf.subject_public_key_info().as_ref(),
    );
    digest.as_ref().try_into().ok()
}

/// Builds the TLS client configuration for `trust`: TLS 1.3 and 1.2 only
/// (rustls's `ring` provider), ALPN h2 and http/1.1.
pub fn client_config(trust: &Trust) -> Result<ClientConfig, TrustError> {
    client_config_observed(trust).map(|(config, _)| config)
}

/// [`client_config`], and where a pinned configuration records the
/// certificate it accepted.
pub fn client_config_observed(trust: &Trust) -> Result<(ClientConfig, Observed), TrustError> {
    let observed = Observed::default();
    let config = build(
        trust,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        observed.clone(),
    )?;
    Ok((config, observed))
}

/// [`client_config`] restricted to some TLS versions (tests use it to check
/// that the server accepts each one).
pub fn client_config_for_versions(
    trust: &Trust,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<ClientConfig, TrustError> {
    build(trust, versions, Observed::default())
}

fn build(
    trust: &Trust,
    versions: &[&'static rustls::SupportedProtocolVersion],
    observed: Observed,
) -> Result<ClientConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let pinned = |expected: CertificateFingerprint, key: Option<[u8; 32]>| PinnedCertificate {
        expected,
        key,
        algorithms: provider.signature_verification_algorithms,
        observed: observed.clone(),
    };
    let mut config = match trust {
        Trust::Pin(expected) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pinned(*expected, None)))
            .with_no_client_auth(),
        Trust::PinOrSameKey { certificate, key } => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pinned(*certificate, Some(*key))))
            .with_no_client_auth(),
        Trust::CaFile(path) => {
            let roots = read_roots(path)?;
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TrustError::CaFile {
                    path: path.clone(),
                    problem: error.to_string(),
                })?;
            builder.with_webpki_verifier(verifier).with_no_client_auth()
        }
        Trust::SystemRoots => builder.with_platform_verifier()?.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let problem = |problem: String| TrustError::CaFile {
        path: path.to_owned(),
        problem,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| problem(format!("not a readable PEM file ({error})")))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(problem("it holds no usable CA certificate".to_owned()));
    }
    Ok(roots)
}

/// Accepts exactly one certificate, by fingerprint, or (given the key) a
/// certificate for the same public key. The handshake signature is still
/// verified, so the server must hold that certificate's key.
#[derive(Debug)]
struct PinnedCertificate {
    expected: CertificateFingerprint,
    key: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
    observed: Observed,
}

impl PinnedCertificate {
    /// Whether `certificate` is the pinned one, or has its key.
    fn accepts(&self, certificate: &CertificateDer<'_>) -> bool {
        CertificateFingerprint::of_der(certificate.as_ref()) == self.expected
            || (self.key.is_some() && key_hash(certificate) == self.key)
    }

    /// Notes the certificate the server proved it holds the key of (its
    /// handshake signature verified).
    fn observe(&self, certificate: &CertificateDer<'_>) {
        if !self.accepts(certificate) {
            return;
        }
        if let Some(key) = key_hash(certificate) {
            *self
                .observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Presented {
                certificate: CertificateFingerprint::of_der(certificate.as_ref()),
                key,
            });
        }
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = CertificateFingerprint::of_der(end_entity.as_ref());
        if self.accepts(end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(PinMismatch {
                expected: self.expected,
                presented,
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)?;
        self.observe(cert);
        Ok(valid)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)?;
        self.observe(cert);
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
