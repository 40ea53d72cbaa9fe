//! Rotating the audit key with the real `curbside-server audit-rotate-key`:
//! the log holds a hand-over signed by both keys, an export verifies
//! across it from the old key alone, the CLI that pinned the old key
//! follows it, and a key swapped without a hand-over is still refused.

use curbside_proto::audit::handover::{HANDOVER_ACTION, Handover};
use curbside_proto::audit_review::SearchQuery;
use curbside_server::audit;
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::audit_access::Cli;
use crate::audit_tree::{accesses, verify_offline};
use crate::people::first_admin;

backend_tests!(a_rotated_key_hands_the_log_over_and_it_verifies_across);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");

/// Runs `curbside-server audit-rotate-key` on `env`: its standard output,
/// or its standard error if it failed.
async fn rotate(env: &TestEnv) -> Result<String, String> {
    let mut command = std::process::Command::new(SERVER);
    command
        .arg("audit-rotate-key")
        .arg("--data-dir")
        .arg(env.data_dir())
        .env("CURBSIDE_DATABASE_URL", env.database_url());
    // Off the test's runtime thread, which the wait would block.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn line_after<'t>(text: &'t str, prefix: &str) -> &'t str {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
        .trim()
}

async fn a_rotated_key_hands_the_log_over_and_it_verifies_across(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let cli = Cli::for_admin(&server.url, &server.fingerprint.to_string(), &admin).await;
    let search = ["admin", "audit", "search", "--limit", "1"];
    accesses(&admin, 10).await;
    cli.run(&search).await.expect("the CLI pins the first key");
    let old_key = admin
        .client
        .audit_key()
        .await
        .unwrap()
        .note_key()
        .unwrap()
        .verifier_string();

    let address = server.address;
    server.stop().await;
    let printed = rotate(&env).await.expect("the rotation succeeds");
    assert_eq!(line_after(&printed, "Old key: "), old_key);
    let new_key = line_after(&printed, "New key: ").to_owned();
    assert_ne!(new_key, old_key);
    let retired = line_after(&printed, "The old public key is kept as ")
        .trim_end_matches(" (its private key was destroyed).")
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(&retired).unwrap().trim(),
        old_key,
        "the old public key is kept"
    );
    // No private key but the new one is left in the data directory.
    let private: Vec<_> = std::fs::read_dir(env.data_dir().join("keys"))
        .unwrap()
        .map(|file| file.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("audit-") && name.ends_with(".pk8"))
        .collect();
    assert_eq!(private, ["audit-ed25519.pk8"]);
    assert!(env.data_dir().join(audit::KEY_FILE).exists());
    assert!(!env.data_dir().join(audit::signer::NEXT_KEY_FILE).exists());

    let server = env
        .start_on(env.config(), axum::Router::new(), address)
        .await;
    accesses(&admin, 10).await;
    let published = admin.client.audit_key().await.unwrap().note_key().unwrap();
    assert_eq!(published.verifier_string(), new_key);

    // The hand-over: one entry, both signatures over the tree before it.
    let page = admin
        .client
        .audit_search(&SearchQuery {
            action: Some(HANDOVER_ACTION.to_owned()),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    let [recorded] = &page.entries[..] else {
        panic!("one hand-over: {:#?}", page.entries);
    };
    let handover = Handover::parse(recorded.entry.evidence.as_deref().unwrap()).unwrap();
    assert_eq!(handover.size, recorded.entry.seq - 1);
    let old = curbside_proto::note::NoteKey::from_verifier_string(&old_key).unwrap();
    assert_eq!(handover.verify(&old.public_key), Ok(published.public_key));
    assert!(handover.verify(&published.public_key).is_err());

    // The CLI pinned the old key: it follows the hand-over, then pins the
    // new key.
    cli.run(&search)
        .await
        .expect("the CLI follows the hand-over");
    accesses(&admin, 3).await;
    cli.run(&search)
        .await
        .expect("and goes on with the new key");
    // Verifying the whole log online starts from the key it began with,
    // found through the hand-over, and checks the rest with the new one.
    let verified = cli
        .run(&["admin", "audit", "verify"])
        .await
        .expect("the log verifies across the hand-over");
    assert!(verified.contains("valid"), "{verified}");
    // A second rotation while the server runs is refused.
    let refused = rotate(&env).await.unwrap_err();
    assert!(refused.contains("a server is running"), "{refused}");

    // An export verifies across the hand-over from the old key alone, and
    // not from the new one (which did not sign the log before it).
    let jsonl = cli.home.path().join("rotated.jsonl");
    cli.run(&[
        "admin",
        "audit",
        "export",
        "--format",
        "jsonl",
        "--out",
        jsonl.to_str().unwrap(),
    ])
    .await
    .unwrap();
    server.stop().await;
    let nobody = tempfile::tempdir().unwrap();
    let report = verify_offline(nobody.path(), &jsonl, &old_key, &[])
        .await
        .expect("verifies across the hand-over");
    assert!(report.contains("valid"), "{report}");
    assert!(
        verify_offline(nobody.path(), &jsonl, &new_key, &[])
            .await
            .is_err()
    );

    // A key swapped in without a hand-over (the new key file replaced by
    // another): the server refuses to sign with it, so nothing it signs can
    // pass for the log's.
    std::fs::remove_file(env.data_dir().join(audit::KEY_FILE)).unwrap();
    std::fs::write(
        env.data_dir().join(audit::KEY_FILE),
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    std::fs::set_permissions(
        env.data_dir().join(audit::KEY_FILE),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let server = env
        .start_on(env.config(), axum::Router::new(), address)
        .await;
    assert!(admin.client.whoami().await.is_err(), "no entry, no answer");
    let error = cli.run(&search).await.unwrap_err().to_string();
    assert!(!error.is_empty());
    server.stop().await;
}
