//! Property-based tests of the whole API from its own document, with
//! schemathesis (PyPI), as an administrator and as a clinician: no answer
//! is a server error, and every answer fits the document's schemas.
//!
//! `.ci/run` installs schemathesis and names it in `CURBSIDE_SCHEMATHESIS`;
//! without it the test says it was skipped.

use curbside_proto::identity::Role;
use curbside_tests::{Backend, TestEnv};

use crate::people::{first_admin, person};

/// Test cases per operation and phase: bounded, so the run takes a minute
/// or two.
const EXAMPLES: &str = "10";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_break() {
    let Some(schemathesis) = std::env::var_os("CURBSIDE_SCHEMATHESIS") else {
        curbside_tests::skipped(
            "schemathesis_finds_no_server_error_and_no_schema_break",
            "CURBSIDE_SCHEMATHESIS does not name the schemathesis program",
        );
        return;
    };
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let clinician = person(&server, &admin, "Dr. Casey Clinician", Role::Clinician).await;
    let document = format!("{}{}", server.url, curbside_proto::OPENAPI_PATH);
    // The clinician first: the administrator's run finds real ids in the
    // answers and uses them, deactivating users and removing devices. The
    // two operations that can end the administrator's own session run
    // last, on their own, so that the rest is not answered 401 throughout.
    let ends_a_session = ["admin.session.end", "admin.device.remove"];
    let mut all_but: Vec<&str> = Vec::new();
    for operation in ends_a_session {
        all_but.extend(["--exclude-operation-id", operation]);
    }
    let mut only: Vec<&str> = Vec::new();
    for operation in ends_a_session {
        only.extend(["--include-operation-id", operation]);
    }
    for (who, stem, token, filter, still_signed_in) in [
        (
            "a clinician",
            "clinician",
            clinician.token().to_owned(),
            &all_but,
            Some(&clinician),
        ),
        (
            "an administrator",
            "admin",
            admin.token().to_owned(),
            &all_but,
            Some(&admin),
        ),
        (
            "an administrator ending sessions",
            "admin-sessions",
            admin.token().to_owned(),
            &only,
            None,
        ),
    ] {
        let program = schemathesis.clone();
        let document = document.clone();
        let filter = filter.clone();
        let report = env.data_dir().join(format!("schemathesis-{stem}.txt"));
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(program)
                .args([
                    "run",
                    &document,
                    "--header",
                    &format!("Authorization: Bearer {token}"),
                    // A test server's generated certificate; TLS itself is
                    // tested elsewhere.
                    "--tls-verify",
                    "false",
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,\
                     response_schema_conformance",
                    "--max-examples",
                    EXAMPLES,
                    // Not `stateful`, whose sequences of calls are not
                    // bounded by the examples per operation.
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--seed",
                    "20261206",
                    // Refused requests without a session are answered late
                    // (the tarpit): several at once.
                    "--workers",
                    "4",
                    "--generation-database",
                    "none",
                    "--generation-with-security-parameters",
                    "false",
                    // Ending the session would leave the rest unauthenticated.
                    "--exclude-operation-id",
                    "auth.logout",
                    // A WebSocket upgrade, not a JSON exchange.
                    "--exclude-operation-id",
                    "events.subscribe",
                    "--no-color",
                ])
                .args(filter)
                .output()
                .expect("run schemathesis")
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        std::fs::write(&report, text.as_bytes()).unwrap();
        let summary = text.lines().rev().take(3).collect::<Vec<_>>();
        eprintln!("schemathesis as {who}: {summary:?}");
        assert!(
            output.status.success(),
            "schemathesis, as {who}, found failures:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The run was made signed in, not refused with 401 throughout.
        if let Some(person) = still_signed_in {
            person
                .client
                .whoami()
                .await
                .unwrap_or_else(|error| panic!("{who}'s session ended during the run: {error}"));
        }
    }
    server.stop().await;
}
