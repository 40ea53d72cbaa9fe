//! Where the server's certificate comes from: generated once and reused, or
//! given as PEM files and trusted through its CA.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use curbside_cli::{Client, ClientError, Trust};
use curbside_server::config::TlsSource;
use curbside_tests::{Backend, TestEnv, backend_tests};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

backend_tests!(
    generated_certificate_persists_across_restarts,
    configured_certificate_is_served_and_trusted_through_its_ca,
    a_renewed_certificate_keeps_cli_profiles_working,
);

async fn generated_certificate_persists_across_restarts(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let first = env.start().await;
    let pinned = first.fingerprint;
    first.client().health().await.unwrap();
    first.stop().await;

    let key = env.data_dir().join("tls").join("key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the private key is readable by its owner only"
    );

    let second = env.start().await;
    assert_eq!(
        second.fingerprint, pinned,
        "the same certificate after a restart"
    );
    // A client that pinned the first start's fingerprint still connects.
    Client::new(&second.url, &Trust::Pin(pinned))
        .unwrap()
        .health()
        .await
        .unwrap();
    second.stop().await;
}

async fn configured_certificate_is_served_and_trusted_through_its_ca(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let files = tempfile::tempdir().unwrap();
    let ca = write_ca_and_leaf(files.path(), "hospital-ca");
    let mut config = env.config();
    config.tls = TlsSource::Files {
        cert: files.path().join("leaf.pem"),
        key: files.path().join("leaf.key"),
    };
    let server = env.start_with(config, axum::Router::new()).await;
    // The server presents the configured certificate, not a generated one.
    assert!(!env.data_dir().join("tls").exists());

    let url = format!("https://localhost:{}", server.address.port());
    Client::new(&url, &Trust::CaFile(ca))
        .unwrap()
        .health()
        .await
        .unwrap();

    // A CA that did not issue it is refused with advice, not trusted.
    let other = tempfile::tempdir().unwrap();
    let other_ca = write_ca_and_leaf(other.path(), "some-other-ca");
    let error = Client::new(&url, &Trust::CaFile(other_ca))
        .unwrap()
        .health()
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Untrusted { .. }), "{error}");
    assert!(error.to_string().contains("--pin-sha256"), "{error}");
    server.stop().await;
}

/// Writes `ca.pem`, and `leaf.pem` + `leaf.key` for localhost issued by it,
/// into `dir`; returns the CA file's path.
pub(crate) fn write_ca_and_leaf(dir: &Path, ca_name: &str) -> std::path::PathBuf {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("leaf.key"), leaf_key.serialize_pem()).unwrap();
    std::fs::set_permissions(dir.join("leaf.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    dir.join("ca.pem")
}

/// Puts a certificate for the generated key, valid for `days` more, in
/// place of the generated one (as time would).
fn expire_in(data_dir: &Path, days: i64, new_key: bool) {
    let tls = data_dir.join("tls");
    let key = if new_key {
        let key = KeyPair::generate().unwrap();
        std::fs::write(tls.join("key.pem"), key.serialize_pem()).unwrap();
        key
    } else {
        KeyPair::from_pem(&std::fs::read_to_string(tls.join("key.pem")).unwrap()).unwrap()
    };
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(tls.join("cert.pem"), cert.pem()).unwrap();
}

/// The generated certificate is renewed, with its key, when it runs short;
/// a CLI profile that pinned the old one follows it by its key, and pins
/// the new fingerprint; a certificate with another key is still refused.
async fn a_renewed_certificate_keeps_cli_profiles_working(backend: Backend) {
    use clap::Parser;
    use curbside_cli::cli::{Cli, run};
    let env = TestEnv::new(backend).await;
    let first = env.start().await;
    let admin = crate::people::first_admin(&first).await;
    let user = admin
        .client
        .create_user(&curbside_proto::identity::NewUser {
            display_name: "Dr. Pinned".to_owned(),
            role: curbside_proto::identity::Role::Clinician,
            department: "Cardiology".to_owned(),
            licence_number: None,
            user_name: None,
            external_id: None,
        })
        .await
        .unwrap();
    let code = admin
        .client
        .issue_enrollment_code(&user.user_id)
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let curbside = |server: &str, pin: Option<String>, args: &[&str]| {
        let mut argv = vec![
            "curbside".to_owned(),
            "--server".to_owned(),
            server.to_owned(),
        ];
        if let Some(pin) = pin {
            argv.extend(["--pin-sha256".to_owned(), pin]);
        }
        argv.extend(["--home".to_owned(), home.path().display().to_string()]);
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        let mut cli = Cli::parse_from(argv);
        cli.passphrase = Some("correct horse battery".to_owned());
        run(cli)
    };
    let old = first.fingerprint;
    curbside(
        &first.url,
        Some(old.to_string()),
        &["enroll", "--code", &code.code],
    )
    .await
    .unwrap();
    curbside(&first.url, None, &["whoami"]).await.unwrap();
    first.stop().await;

    // Five days left: the next start renews the certificate, same key.
    expire_in(env.data_dir(), 5, false);
    let second = env.start().await;
    assert_ne!(second.fingerprint, old, "a renewed certificate");
    // The profile follows it (and keeps doing so), with its stored pin...
    for _ in 0..2 {
        let whoami = curbside(&second.url, None, &["whoami"]).await.unwrap();
        assert!(whoami.contains("Dr. Pinned"), "{whoami}");
    }
    // ...while the old fingerprint alone is refused, as any other would be.
    let error = curbside(&second.url, Some(old.to_string()), &["whoami"])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("fingerprint"), "{error}");
    second.stop().await;

    // A certificate with another key is not the same server.
    expire_in(env.data_dir(), 300, true);
    let third = env.start().await;
    let error = curbside(&third.url, None, &["whoami"]).await.unwrap_err();
    assert!(error.to_string().contains("fingerprint"), "{error}");
    third.stop().await;
}
