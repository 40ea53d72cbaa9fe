//! The `curbside health` command and its certificate pinning.

use std::os::unix::fs::PermissionsExt;

use clap::Parser;
use curbside_cli::ClientError;
use curbside_cli::cli::{Cli, CliError, run};
use curbside_proto::CertificateFingerprint;
use curbside_tests::{Backend, TestEnv, backend_tests};
use ring::signature::KeyPair;

backend_tests!(
    health_with_the_right_pin_succeeds,
    health_with_a_wrong_pin_fails_and_says_so,
    first_admin_enrolls_a_clinician_through_the_cli,
);

pub(crate) const PASSPHRASE: &str = "correct horse battery";

/// Runs `curbside` as `profile` against `server`, with profiles under `home`.
pub(crate) async fn curbside(
    server: &curbside_tests::TestServer,
    home: &std::path::Path,
    profile: &str,
    passphrase: &str,
    args: &[&str],
) -> Result<String, CliError> {
    let pin = server.fingerprint.to_string();
    let mut argv = vec![
        "curbside",
        "--server",
        &server.url,
        "--pin-sha256",
        &pin,
        "--home",
        home.to_str().unwrap(),
        "--profile",
        profile,
    ];
    argv.extend_from_slice(args);
    let mut cli = Cli::parse_from(argv);
    cli.passphrase = Some(passphrase.to_owned());
    run(cli).await
}

/// The first whitespace-separated word after `prefix` at the start of a line.
pub(crate) fn word_after<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {prefix:?} in {output}"))
}

async fn first_admin_enrolls_a_clinician_through_the_cli(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let code = server.first_admin_code.clone().unwrap();

    curbside(
        &server,
        home,
        "admin",
        PASSPHRASE,
        &["enroll", "--code", &code, "--display-name", "Dr. Ada Admin"],
    )
    .await
    .unwrap();
    let output = curbside(&server, home, "admin", PASSPHRASE, &["login"])
        .await
        .unwrap();
    assert!(output.contains("Dr. Ada Admin (admin)"), "{output}");
    let output = curbside(
        &server,
        home,
        "admin",
        PASSPHRASE,
        &[
            "admin",
            "user",
            "create",
            "--name",
            "Dr. Cleo Clinician",
            "--role",
            "clinician",
            "--department",
            "Oncology",
        ],
    )
    .await
    .unwrap();
    let clinician_id = word_after(&output, "Created ").to_owned();
    let output = curbside(
        &server,
        home,
        "admin",
        PASSPHRASE,
        &["admin", "user", "code", &clinician_id],
    )
    .await
    .unwrap();
    let clinician_code = output.lines().nth(1).unwrap().trim().to_owned();

    curbside(
        &server,
        home,
        "cleo",
        PASSPHRASE,
        &["enroll", "--code", &clinician_code],
    )
    .await
    .unwrap();
    curbside(&server, home, "cleo", PASSPHRASE, &["login"])
        .await
        .unwrap();
    let whoami = curbside(&server, home, "cleo", PASSPHRASE, &["whoami"])
        .await
        .unwrap();
    assert!(
        whoami.contains("Dr. Cleo Clinician") && whoami.contains(&clinician_id),
        "{whoami}"
    );
    let found = curbside(
        &server,
        home,
        "cleo",
        PASSPHRASE,
        &["directory", "search", "ada"],
    )
    .await
    .unwrap();
    assert!(found.contains("Dr. Ada Admin"), "{found}");

    // The store is private, and holds neither key in the clear.
    let profile = curbside_cli::store::Profile::new(home, "cleo").unwrap();
    let path = profile.store_path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = std::fs::read(&path).unwrap();
    let contents = profile.load(PASSPHRASE).unwrap();
    let public_key = ring::signature::Ed25519KeyPair::from_pkcs8(&contents.device_key_pkcs8)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    for secret in [
        contents.device_key_pkcs8.clone(),
        curbside_proto::b64::encode(&contents.device_key_pkcs8).into_bytes(),
        public_key.clone(),
        curbside_proto::b64::encode(&public_key).into_bytes(),
        contents.device_key_pkcs8[contents.device_key_pkcs8.len() - 32..].to_vec(),
    ] {
        assert!(
            !stored
                .windows(secret.len())
                .any(|window| window == secret.as_slice()),
            "the store holds key material in the clear"
        );
    }
    let wrong = curbside(&server, home, "cleo", "not the passphrase", &["whoami"])
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("passphrase"), "{wrong}");

    // Deactivation: the clinician's very next request fails with 401.
    curbside(
        &server,
        home,
        "admin",
        PASSPHRASE,
        &["admin", "user", "deactivate", &clinician_id],
    )
    .await
    .unwrap();
    let refused = curbside(&server, home, "cleo", PASSPHRASE, &["whoami"])
        .await
        .unwrap_err();
    match refused {
        CliError::SignInRefused(message) => {
            assert!(message.contains("ask your administrator"), "{message}");
        }
        other => panic!("expected the sign-in to be refused, got {other}"),
    }
    server.stop().await;
}

async fn health_with_the_right_pin_succeeds(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let pin = server.fingerprint.to_string();
    let output = run(Cli::parse_from([
        "curbside",
        "--server",
        &server.url,
        "--pin-sha256",
        &pin,
        "health",
    ]))
    .await
    .unwrap();
    assert!(output.contains("healthy"), "{output}");
    // The bare lower-case spelling of the same fingerprint works too.
    let bare = pin.replace(':', "").to_lowercase();
    run(Cli::parse_from([
        "curbside",
        "--server",
        &server.url,
        "--pin-sha256",
        &bare,
        "health",
    ]))
    .await
    .unwrap();
    server.stop().await;
}

async fn health_with_a_wrong_pin_fails_and_says_so(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let wrong = CertificateFingerprint::of_der(b"some other certificate").to_string();
    // A wrong pin is refused even though a CA file is also given: no fallback.
    let ca = env.data_dir().join("tls").join("cert.pem");
    let error = run(Cli::parse_from([
        "curbside",
        "--server",
        &server.url,
        "--pin-sha256",
        &wrong,
        "--ca-cert",
        ca.to_str().unwrap(),
        "health",
    ]))
    .await
    .unwrap_err();
    match &error {
        CliError::Client(ClientError::PinMismatch(mismatch)) => {
            assert_eq!(mismatch.presented, server.fingerprint);
            assert_eq!(mismatch.expected.to_string(), wrong);
        }
        other => panic!("expected a pin mismatch, got {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("did not match the pinned fingerprint"),
        "{message}"
    );
    assert!(
        message.contains(&server.fingerprint.to_string()),
        "{message}"
    );

    // A malformed pin is refused before anything is sent.
    let parsed = Cli::try_parse_from([
        "curbside",
        "--server",
        &server.url,
        "--pin-sha256",
        "abc",
        "health",
    ]);
    let message = parsed.unwrap_err().to_string();
    assert!(message.contains("64 hexadecimal digits"), "{message}");
    server.stop().await;
}
