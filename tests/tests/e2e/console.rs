//! The administrators' web console in a real browser: Debian's Chromium,
//! driven by Playwright (`web/tests/console.mjs`, one phase per run, see
//! [`crate::browser`]), against the real server over TLS with a
//! certificate from a test CA that the browser trusts.
//!
//! The browser enrolls the first administrator with the first-run code,
//! creates a clinician and issues their code; the CLI enrolls with it and
//! works; the browser finds the clinician's entries by name, exports them,
//! verifies the whole log, publishes a policy (which the CLI then has to
//! accept), turns retention on, places a legal hold on the clinician and
//! lifts it (each change in the audit log), provisions an auditor who, in
//! a browser of their own, sees the policy and the holds with no control,
//! creates an on-call role, gives the clinician a shift of it planned in
//! another time zone, and makes the role the backup of the department's
//! escalation policy (all three read back through the API, and seen by
//! the auditor with no control), and deactivates the clinician (whose CLI
//! session ends at once); then one row of the log is changed in the
//! database and the browser names that entry, as the CLI does.

use std::path::Path;

use curbside_cli::cli::CliError;
use curbside_proto::clinical::{Backup, EscalationPolicies, EscalationPolicy, RoleList};
use curbside_proto::routes::{ADMIN_ESCALATION, ADMIN_ROLES};
use curbside_server::config::TlsSource;
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};

use crate::browser::Browser;

backend_tests!(
    the_console_runs_an_administrators_day_in_chromium,
    the_console_is_served_with_a_strict_policy_and_immutable_assets,
);

/// `curbside` as the clinician, with the suite's passphrase.
async fn curbside(server: &TestServer, home: &Path, args: &[&str]) -> Result<String, CliError> {
    crate::cli::curbside(server, home, "clinician", crate::cli::PASSPHRASE, args).await
}

async fn the_console_runs_an_administrators_day_in_chromium(backend: Backend) {
    let Some(chromium) =
        crate::browser::chromium_for("the_console_runs_an_administrators_day_in_chromium")
    else {
        return;
    };
    let env = TestEnv::new(backend).await;
    let files = tempfile::tempdir().unwrap();
    let ca = crate::certificates::write_ca_and_leaf(files.path(), "curbside-test-ca");
    let mut config = env.config();
    config.tls = TlsSource::Files {
        cert: files.path().join("leaf.pem"),
        key: files.path().join("leaf.key"),
    };
    let server: TestServer = env.start_with(config, axum::Router::new()).await;
    let console_url = format!("https://localhost:{}/admin/", server.address.port());
    let browser = Browser::new(chromium.clone(), "console.mjs", &ca, console_url.clone());
    let cli_home = tempfile::tempdir().unwrap();
    let cli_home = cli_home.path();

    // The first administrator enrolls in the browser and provisions a
    // clinician.
    let enrolled = browser
        .phase(
            "enroll-admin",
            &[
                (
                    "FIRST_ADMIN_CODE",
                    server.first_admin_code.as_deref().unwrap(),
                ),
                ("ADMIN_NAME", "Dr. Ada Admin"),
                ("CLINICIAN_NAME", "Dr. Cleo Clinician"),
                ("CLINICIAN_DEPARTMENT", "Oncology"),
            ],
        )
        .await;
    let clinician_id = enrolled["clinician_id"].as_str().unwrap().to_owned();
    let code = enrolled["code"].as_str().unwrap().to_owned();

    // The clinician's CLI enrolls with the code the console showed.
    curbside(&server, cli_home, &["enroll", "--code", &code])
        .await
        .unwrap();
    let whoami = curbside(&server, cli_home, &["whoami"]).await.unwrap();
    assert!(whoami.contains(&clinician_id), "{whoami}");
    curbside(&server, cli_home, &["threads"]).await.unwrap();

    // Review: entries by name, exports, verification, a policy.
    let exports = tempfile::tempdir().unwrap();
    let screenshots = match std::env::var("CURBSIDE_UPDATE_SCREENSHOTS") {
        Ok(_) if backend == Backend::Sqlite => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console")
        }
        _ => exports.path().join("screenshots"),
    };
    std::fs::create_dir_all(&screenshots).unwrap();
    let reviewed = browser
        .phase(
            "review",
            &[
                ("CLINICIAN_NAME", "Dr. Cleo Clinician"),
                ("EXPORT_DIR", exports.path().to_str().unwrap()),
                ("SCREENSHOT_DIR", screenshots.to_str().unwrap()),
                (
                    "POLICY_TEXT",
                    "Discuss patients only with colleagues involved in their care. Use initials, \
                     never full names.",
                ),
            ],
        )
        .await;
    assert!(reviewed["audit_rows"].as_u64().unwrap() >= 3, "{reviewed}");
    for format in ["csv", "jsonl"] {
        let path = reviewed[format].as_str().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.contains(&clinician_id) && text.contains("identity.whoami"),
            "the {format} export holds the clinician's entries: {text}"
        );
    }
    assert!(
        reviewed["verified_entries"].as_u64().unwrap() > 10,
        "{reviewed}"
    );
    for page in ["overview", "people", "audit", "policy"] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "{page}");
    }

    // The policy the console published holds the clinician's threads.
    let refused = curbside(&server, cli_home, &["threads"])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("curbside policy accept"), "{refused}");
    curbside(&server, cli_home, &["policy", "accept"])
        .await
        .unwrap();
    curbside(&server, cli_home, &["threads"]).await.unwrap();

    // Retention and a legal hold on the clinician, set and lifted in the
    // console; then the administrator adds an auditor.
    let hold_reason = "Litigation hold, matter 2024-117";
    let retained = browser
        .phase(
            "retention",
            &[
                ("CLINICIAN_NAME", "Dr. Cleo Clinician"),
                ("ADMIN_NAME", "Dr. Ada Admin"),
                ("AUDITOR_NAME", "Ms. Avery Auditor"),
                ("HOLD_REASON", hold_reason),
                ("SCREENSHOT_DIR", screenshots.to_str().unwrap()),
            ],
        )
        .await;
    assert!(
        !retained["unknown_thread"].as_str().unwrap().is_empty(),
        "{retained}"
    );
    assert!(screenshots.join("retention.png").exists());
    for action in ["admin.retention.set", "admin.hold.place", "admin.hold.lift"] {
        let condition = format!("action = '{action}' AND outcome = 'allowed'");
        assert_eq!(
            crate::storage::count_rows(&env, "audit_entry", &condition).await,
            1,
            "{action}"
        );
    }
    // The hold on a thread that does not exist was refused, and recorded.
    let refused = "action = 'admin.hold.place' AND outcome = 'denied'";
    assert_eq!(
        crate::storage::count_rows(&env, "audit_entry", refused).await,
        1
    );

    // The auditor, in a browser of their own, reads both and may change
    // neither; their reads are in the log too.
    let auditor_id = retained["auditor_id"].as_str().unwrap().to_owned();
    let auditor_browser = Browser::new(chromium, "console.mjs", &ca, console_url);
    let audited = auditor_browser
        .phase(
            "auditor-retention",
            &[
                ("AUDITOR_CODE", retained["auditor_code"].as_str().unwrap()),
                ("CLINICIAN_NAME", "Dr. Cleo Clinician"),
                ("ADMIN_NAME", "Dr. Ada Admin"),
                ("HOLD_REASON", hold_reason),
            ],
        )
        .await;
    assert_eq!(audited["controls"], 0, "{audited}");
    for action in ["admin.retention.get", "admin.hold.list"] {
        let condition =
            format!("action = '{action}' AND outcome = 'allowed' AND actor_user = '{auditor_id}'");
        assert!(
            crate::storage::count_rows(&env, "audit_entry", &condition).await >= 1,
            "{action}"
        );
    }

    // An on-call role, a shift of the clinician's covering now (planned in
    // Tokyo's wall-clock time; one more, tomorrow, is cancelled) and the
    // department's escalation policy with the role as its backup, set up
    // in the console; then the administrator adds another auditor.
    let rostered = browser
        .phase(
            "roles",
            &[
                ("CLINICIAN_NAME", "Dr. Cleo Clinician"),
                ("ROLE_NAME", "Cardiology on-call"),
                ("ROLE_DEPARTMENT", "Cardiology"),
                ("SHIFT_ZONE", "Asia/Tokyo"),
                ("READER_NAME", "Mr. Rory Reader"),
                ("SCREENSHOT_DIR", screenshots.to_str().unwrap()),
            ],
        )
        .await;
    assert!(
        !rostered["duplicate_role"].as_str().unwrap().is_empty(),
        "{rostered}"
    );
    assert!(screenshots.join("roles.png").exists());

    // Read back through the API, as that auditor: the role, the one shift
    // left (at the instants the page was given as Tokyo's clock times),
    // its holder, and the policy.
    let mut reader =
        crate::people::enroll(&server, rostered["reader_code"].as_str().unwrap(), None).await;
    reader.login().await;
    let http = server.http();
    let roles: RoleList = http
        .get(format!("{}{ADMIN_ROLES}", server.url))
        .bearer_auth(reader.token())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(roles.roles.len(), 1, "{roles:?}");
    let role = &roles.roles[0];
    assert_eq!(role.name, "Cardiology on-call", "{role:?}");
    assert_eq!(role.department, "Cardiology", "{role:?}");
    assert_eq!(role.shifts.len(), 1, "{role:?}");
    let shift = &role.shifts[0];
    assert_eq!(shift.user_id, clinician_id, "{shift:?}");
    assert_eq!(shift.display_name, "Dr. Cleo Clinician", "{shift:?}");
    assert_eq!(shift.timezone, "Asia/Tokyo", "{shift:?}");
    assert_eq!(
        Some(shift.starts_at_ms),
        rostered["starts_at_ms"].as_i64(),
        "{rostered}"
    );
    assert_eq!(
        Some(shift.ends_at_ms),
        rostered["ends_at_ms"].as_i64(),
        "{rostered}"
    );
    assert!(
        shift.starts_at_ms <= roles.now_ms && roles.now_ms < shift.ends_at_ms,
        "{roles:?}"
    );
    assert_eq!(role.holder.as_ref(), Some(shift), "{role:?}");
    let policies: EscalationPolicies = http
        .get(format!("{}{ADMIN_ESCALATION}", server.url))
        .bearer_auth(reader.token())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let cardiology = policies
        .policies
        .iter()
        .find(|policy| policy.department == "Cardiology");
    assert_eq!(
        cardiology,
        Some(&EscalationPolicy {
            department: "Cardiology".to_owned(),
            realert_after_s: 60,
            escalate_after_s: 300,
            backup: Backup::Role {
                role_id: role.role_id.clone(),
            },
        }),
        "{policies:?}"
    );

    // The first auditor, in their browser, sees them and may change none.
    let audited = auditor_browser
        .phase(
            "auditor-roles",
            &[
                ("CLINICIAN_NAME", "Dr. Cleo Clinician"),
                ("ROLE_NAME", "Cardiology on-call"),
                ("ROLE_DEPARTMENT", "Cardiology"),
            ],
        )
        .await;
    assert_eq!(audited["controls"], 0, "{audited}");

    // Deactivating in the console ends the CLI's session at once.
    browser
        .phase("deactivate", &[("CLINICIAN_NAME", "Dr. Cleo Clinician")])
        .await;
    let ended = curbside(&server, cli_home, &["threads"]).await.unwrap_err();
    assert!(
        matches!(ended, CliError::SignInRefused(_) | CliError::SessionEnded),
        "{ended}"
    );

    // One changed row: the browser names it.
    let clean = browser.phase("verify", &[]).await;
    assert_eq!(clean["ok"], true, "{clean}");
    crate::storage::execute(
        &env,
        "UPDATE audit_entry SET reason = 'nothing to see' WHERE seq = 5",
    )
    .await;
    let broken = browser.phase("verify", &[]).await;
    assert_eq!(broken["ok"], false, "{broken}");
    assert_eq!(broken["broken_seq"], 5, "{broken}");
    assert!(
        broken["message"].as_str().unwrap().contains('5'),
        "{broken}"
    );
    server.stop().await;
}

/// What `curl -skI https://.../admin/` shows, and the rest of the web
/// app's serving: its CSP allows only this origin's scripts and styles, the
/// page is revalidated and the hashed assets are immutable, `/admin`
/// redirects, app paths and `/` get the page, and anything else is the
/// API's JSON 404 with the API's own headers.
async fn the_console_is_served_with_a_strict_policy_and_immutable_assets(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let http = server.http();
    let url = |path: &str| format!("{}{path}", server.url);

    let head = http.head(url("/admin/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header(&head, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    assert_eq!(header(&head, "cache-control"), "no-cache");
    assert_eq!(header(&head, "x-frame-options"), "DENY");
    assert_eq!(header(&head, "x-content-type-options"), "nosniff");
    assert!(header(&head, "strict-transport-security").starts_with("max-age="));
    assert_eq!(header(&head, "referrer-policy"), "no-referrer");
    assert_eq!(header(&head, "cross-origin-opener-policy"), "same-origin");
    assert!(header(&head, "content-type").starts_with("text/html"));

    // The page names its script and style by hashed, same-origin paths.
    let page = http.get(url("/admin/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("/admin/assets/"))
        .collect();
    assert!(assets.len() >= 2, "{page}");
    for asset in assets {
        let response = http.get(url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable",
            "{asset}"
        );
        assert_eq!(header(&response, "content-security-policy"), csp);
    }

    let redirect = http.get(url("/admin")).send().await;
    // reqwest follows the redirect to the page.
    assert_eq!(redirect.unwrap().url().path(), "/admin/");
    let app_path = http.get(url("/admin/people")).send().await.unwrap();
    assert_eq!(app_path.status(), 200);
    // Clinicians open the same page at the root, under the same policy.
    let root = http.get(url("/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(header(&root, "content-security-policy"), csp);
    assert_eq!(header(&root, "cache-control"), "no-cache");
    assert_eq!(root.text().await.unwrap(), page);

    // `curbside web-digest` checks each file served against the list and
    // prints the digest the server prints at start, which is also what
    // `sha256sum` gives for the committed build's files.
    let home = tempfile::tempdir().unwrap();
    let said = curbside(&server, home.path(), &["web-digest"])
        .await
        .unwrap();
    let digest = crate::cli::word_after(&said, "Digest: ");
    assert_eq!(digest, curbside_server::http::web_app_digest());
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/console");
    let mut names = Vec::new();
    list_files(&built, "", &mut names);
    names.sort();
    assert!(said.contains(&format!("{} files", names.len())), "{said}");
    let sums: String = names
        .iter()
        .map(|name| {
            let bytes = std::fs::read(built.join(name)).unwrap();
            let hash = ring::digest::digest(&ring::digest::SHA256, &bytes);
            format!("{}  {name}\n", hex::encode(hash.as_ref()))
        })
        .collect();
    let expected = ring::digest::digest(&ring::digest::SHA256, sums.as_bytes());
    assert_eq!(digest, hex::encode(expected.as_ref()));

    let missing = http
        .get(url("/admin/assets/missing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "cache-control"), "no-store");
    assert_eq!(
        header(&missing, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(header(&missing, "content-type").starts_with("application/json"));
    // The API keeps its own headers.
    let health = http.get(url("/v1/health")).send().await.unwrap();
    assert_eq!(header(&health, "cache-control"), "no-store");
    server.stop().await;
}

/// The files under `dir`, as paths relative to it (`assets/x.js`).
fn list_files(dir: &Path, prefix: &str, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_str().unwrap());
        if entry.file_type().unwrap().is_dir() {
            list_files(&entry.path(), &format!("{name}/"), names);
        } else {
            names.push(name);
        }
    }
}
