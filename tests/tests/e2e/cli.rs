//! The `curbside health` command and its certificate pinning.

use clap::Parser;
use curbside_cli::ClientError;
use curbside_cli::cli::{Cli, CliError, run};
use curbside_proto::CertificateFingerprint;
use curbside_tests::{Backend, TestEnv, backend_tests};

backend_tests!(
    health_with_the_right_pin_succeeds,
    health_with_a_wrong_pin_fails_and_says_so,
);

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
