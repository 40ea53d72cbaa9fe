//! The administrators' web console in a real browser: Debian's Chromium,
//! driven by Playwright (`web/tests/console.mjs`, one phase per run),
//! against the real server over TLS with a certificate from a test CA that
//! the browser trusts through its NSS database (no certificate error is
//! ignored). Runs when `CURBSIDE_CHROMIUM` names the browser (`.ci/run`
//! sets it); otherwise it says it was skipped.
//!
//! The browser enrolls the first administrator with the first-run code,
//! creates a clinician and issues their code; the CLI enrolls with it and
//! works; the browser finds the clinician's entries by name, exports them,
//! verifies the whole log, publishes a policy (which the CLI then has to
//! accept) and deactivates the clinician (whose CLI session ends at once);
//! then one row of the log is changed in the database and the browser
//! names that entry, as the CLI does.

use std::path::{Path, PathBuf};

use curbside_cli::cli::CliError;
use curbside_server::config::TlsSource;
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests, skipped};

backend_tests!(
    the_console_runs_an_administrators_day_in_chromium,
    the_console_is_served_with_a_strict_policy_and_immutable_assets,
);

/// `curbside` as the clinician, with the suite's passphrase.
async fn curbside(server: &TestServer, home: &Path, args: &[&str]) -> Result<String, CliError> {
    crate::cli::curbside(server, home, "clinician", crate::cli::PASSPHRASE, args).await
}

/// The browser and the driver, if this run is to use them.
struct Browser {
    chromium: String,
    driver: PathBuf,
    /// `$HOME` for the browser: its NSS database trusts the test CA.
    home: tempfile::TempDir,
    /// The browser profile, kept between phases (it holds the device key).
    profile: tempfile::TempDir,
    url: String,
}

impl Browser {
    fn new(chromium: String, ca: &Path, url: String) -> Self {
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/console.mjs");
        let home = tempfile::tempdir().unwrap();
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        certutil(&["-d", &db, "-N", "--empty-password"]);
        certutil(&[
            "-d",
            &db,
            "-A",
            "-t",
            "C,,",
            "-n",
            "curbside-test-ca",
            "-i",
            ca.to_str().unwrap(),
        ]);
        Self {
            chromium,
            driver,
            home,
            profile: tempfile::tempdir().unwrap(),
            url,
        }
    }

    /// Runs one phase of the driver; its last line of output, as JSON.
    async fn phase(&self, phase: &str, vars: &[(&str, &str)]) -> serde_json::Value {
        let mut command = std::process::Command::new("node");
        command
            .arg(&self.driver)
            .arg(phase)
            .env("HOME", self.home.path())
            .env("CHROMIUM", &self.chromium)
            .env("PROFILE_DIR", self.profile.path())
            .env("CONSOLE_URL", &self.url);
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "phase {phase} failed:\n{stdout}\n{stderr}"
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|error| panic!("phase {phase}: {error} in {stdout}\n{stderr}"))
    }
}

fn certutil(args: &[&str]) {
    let status = std::process::Command::new("certutil")
        .args(args)
        .status()
        .expect("certutil (Debian's libnss3-tools) runs");
    assert!(status.success(), "certutil {args:?}");
}

async fn the_console_runs_an_administrators_day_in_chromium(backend: Backend) {
    let Ok(chromium) = std::env::var("CURBSIDE_CHROMIUM") else {
        skipped(
            "the_console_runs_an_administrators_day_in_chromium",
            "CURBSIDE_CHROMIUM is not set (.ci/run sets it, with web/node_modules installed)",
        );
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
    let port = server.address.port();
    let browser = Browser::new(chromium, &ca, format!("https://localhost:{port}/admin/"));
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

/// What `curl -skI https://.../admin/` shows, and the rest of the console's
/// serving: its CSP allows only this origin's scripts and styles, the page
/// is revalidated and the hashed assets are immutable, `/admin` redirects,
/// app paths get the page, and anything else is the API's JSON 404 with
/// the API's own headers.
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
