//! The messaging policy: after an administrator publishes a version, a
//! user's thread commands are refused with a message saying how to read and
//! accept it; accepting it lets them through, and the audit log shows the
//! acceptance. All through the real CLI.

use curbside_cli::cli::CliError;
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};

use crate::cli::{PASSPHRASE, word_after};

backend_tests!(a_new_policy_version_holds_threads_until_the_user_accepts_it);

/// `curbside` as `profile`, with the suite's passphrase.
async fn curbside(
    server: &TestServer,
    home: &std::path::Path,
    profile: &str,
    args: &[&str],
) -> Result<String, CliError> {
    crate::cli::curbside(server, home, profile, PASSPHRASE, args).await
}

async fn a_new_policy_version_holds_threads_until_the_user_accepts_it(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let code = server.first_admin_code.clone().unwrap();
    curbside(
        &server,
        home,
        "admin",
        &["enroll", "--code", &code, "--display-name", "Dr. Ada Admin"],
    )
    .await
    .unwrap();
    let output = curbside(
        &server,
        home,
        "admin",
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
    let cleo_id = word_after(&output, "Created ").to_owned();
    let output = curbside(&server, home, "admin", &["admin", "user", "code", &cleo_id])
        .await
        .unwrap();
    let cleo_code = output.lines().nth(1).unwrap().trim().to_owned();
    curbside(&server, home, "cleo", &["enroll", "--code", &cleo_code])
        .await
        .unwrap();

    // No policy yet: threads are open, and there is nothing to accept.
    curbside(&server, home, "cleo", &["threads"]).await.unwrap();
    let shown = curbside(&server, home, "cleo", &["policy", "show"])
        .await
        .unwrap();
    assert!(shown.contains("has not published"), "{shown}");

    let policy_file = home.join("policy.txt");
    std::fs::write(
        &policy_file,
        "Discuss patients only with colleagues involved in their care.\n\nUse initials, never full names.",
    )
    .unwrap();
    let published = curbside(
        &server,
        home,
        "admin",
        &["admin", "policy", "publish", policy_file.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert!(published.contains("Published version 1"), "{published}");

    // The clinician's next thread command is refused, saying how to go on.
    let refused = curbside(&server, home, "cleo", &["threads"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("messaging policy")
            && refused.contains("curbside policy show")
            && refused.contains("curbside policy accept"),
        "{refused}"
    );
    let pending = curbside(&server, home, "admin", &["admin", "policy", "pending"])
        .await
        .unwrap();
    assert!(
        pending.contains("Not yet accepted version 1") && pending.contains("Dr. Cleo Clinician"),
        "{pending}"
    );

    let shown = curbside(&server, home, "cleo", &["policy", "show"])
        .await
        .unwrap();
    assert!(
        shown.contains("version 1")
            && shown.contains("Use initials, never full names.")
            && shown.contains("You have not accepted this version"),
        "{shown}"
    );
    let accepted = curbside(
        &server,
        home,
        "cleo",
        &["policy", "accept", "--version", "1"],
    )
    .await
    .unwrap();
    assert!(accepted.contains("Accepted version 1"), "{accepted}");
    curbside(&server, home, "cleo", &["threads"]).await.unwrap();
    let pending = curbside(&server, home, "admin", &["admin", "policy", "pending"])
        .await
        .unwrap();
    assert!(!pending.contains("Dr. Cleo Clinician"), "{pending}");

    // A second version holds them again; accepting an old one is refused.
    std::fs::write(&policy_file, "Version two: no photographs of faces.").unwrap();
    curbside(
        &server,
        home,
        "admin",
        &["admin", "policy", "publish", policy_file.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert!(curbside(&server, home, "cleo", &["threads"]).await.is_err());
    let stale = curbside(
        &server,
        home,
        "cleo",
        &["policy", "accept", "--version", "1"],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(stale.contains("not the current version"), "{stale}");
    curbside(&server, home, "cleo", &["policy", "accept"])
        .await
        .unwrap();
    curbside(&server, home, "cleo", &["threads"]).await.unwrap();

    // The log shows the refusal and both acceptances, by the clinician.
    let log = curbside(
        &server,
        home,
        "admin",
        &[
            "admin", "audit", "search", "--actor", &cleo_id, "--limit", "1000",
        ],
    )
    .await
    .unwrap();
    let accepts: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("policy.accept"))
        .collect();
    assert_eq!(accepts.len(), 3, "two acceptances and one refusal:\n{log}");
    assert_eq!(
        accepts
            .iter()
            .filter(|line| line.contains("allowed"))
            .count(),
        2,
        "{log}"
    );
    // (`threads` asks for its welcomes first: that is what was refused.)
    assert!(
        log.lines()
            .any(|line| line.contains("denied") && line.contains("policy_not_accepted")),
        "{log}"
    );
    server.stop().await;
}
