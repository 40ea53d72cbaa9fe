//! `GET /metrics`: Prometheus's text format (checked by Debian's
//! `promtool check metrics`), the audit writer's counts after a known
//! number of writes, and the scrape token.

use curbside_proto::identity::Role;
use curbside_server::config::ServiceToken;
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};

use crate::conversation::Clinician;
use crate::people::first_admin;
use crate::retention::audit;

backend_tests!(
    promtool_accepts_the_metrics_and_the_audit_writer_counts_each_write,
    metrics_need_the_scrape_token,
);

const TOKEN: &str = "metrics-test-token-0123456789abcdef0123456789";

async fn scrape(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .http()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The value of the sample `name` (with its labels, as written).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

async fn promtool_accepts_the_metrics_and_the_audit_writer_counts_each_write(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.metrics_token = Some(ServiceToken::new(TOKEN).unwrap());
    let server = env.start_with(config, Default::default()).await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll_as(&server, &admin, "Dr. Ana Alvarez", Role::Clinician, "ED").await;
    let (mut watch, _lines) = ana.spawn(&["watch"]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let response = scrape(&server, TOKEN).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let before = response.text().await.unwrap();
    // 50 requests, each of whose entries the audit writer appends.
    const WRITES: u32 = 50;
    for _ in 0..WRITES {
        admin.client.whoami().await.unwrap();
    }
    let after = scrape(&server, TOKEN).await.text().await.unwrap();

    // The writer appended those 50 and the first scrape's own entry: no
    // more, no fewer, in at least one batch each time.
    let entries = |text: &str| sample(text, "curbside_audit_writer_batch_entries_sum");
    let batches = |text: &str| sample(text, "curbside_audit_writer_batch_entries_count");
    assert_eq!(entries(&after) - entries(&before), f64::from(WRITES + 1));
    let new_batches = batches(&after) - batches(&before);
    assert!(
        (1.0..=f64::from(WRITES + 1)).contains(&new_batches),
        "{new_batches}"
    );
    assert_eq!(
        sample(&after, "curbside_audit_writer_commit_seconds_count"),
        batches(&after)
    );
    assert_eq!(sample(&after, "curbside_audit_writer_failures_total"), 0.0);
    assert_eq!(sample(&after, "curbside_audit_writer_queue_depth"), 0.0);
    assert_eq!(
        sample(
            &after,
            "curbside_http_requests_total{method=\"GET\",route=\"/v1/me\",status=\"200\"}"
        ) - sample(
            &before,
            "curbside_http_requests_total{method=\"GET\",route=\"/v1/me\",status=\"200\"}"
        ),
        f64::from(WRITES)
    );
    assert!(
        sample(
            &after,
            "curbside_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/me\"}"
        ) >= f64::from(WRITES)
    );
    // Ana's `watch` holds a WebSocket; the pool has connections.
    assert_eq!(sample(&after, "curbside_websockets_open"), 1.0);
    assert!(sample(&after, "curbside_db_pool_connections{state=\"max\"}") >= 1.0);
    assert!(sample(&after, "curbside_audit_checkpoint_lag_entries") >= 0.0);
    // No raw path or id is a label.
    assert!(!after.contains(&admin.user.user_id), "an id is a label");
    // Each scrape is audited, with no actor.
    let scrapes = audit(&admin, "metrics.scrape").await;
    assert_eq!(scrapes.len(), 2);
    assert!(scrapes.iter().all(|entry| entry.actor_user.is_none()));

    match std::env::var("CURBSIDE_PROMTOOL")
        .ok()
        .or_else(|| which("promtool"))
    {
        Some(promtool) => {
            let output = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut child = std::process::Command::new(promtool)
                    .args(["check", "metrics"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(after.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap();
            assert!(
                output.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        None => curbside_tests::skipped(
            "promtool_accepts_the_metrics",
            "no promtool (Debian's prometheus package), and CURBSIDE_PROMTOOL is not set",
        ),
    }
    let _ = watch.kill();
    let _ = watch.wait();
    server.stop().await;
}

/// `program`'s path on `PATH`, if it is there.
fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
            .map(|path| path.to_string_lossy().into_owned())
    })
}

async fn metrics_need_the_scrape_token(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    // Off until a token is configured.
    let response = scrape(&server, TOKEN).await;
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("metrics_token"),
        "{body}"
    );
    server.stop().await;

    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.metrics_token = Some(ServiceToken::new(TOKEN).unwrap());
    let server = env.start_with(config, Default::default()).await;
    let admin = first_admin(&server).await;
    // A wrong token, and a session's token, are refused.
    assert_eq!(
        scrape(&server, "wrong-token-wrong-token-wrong-token-wrong")
            .await
            .status(),
        401
    );
    assert_eq!(scrape(&server, admin.token()).await.status(), 401);
    assert_eq!(scrape(&server, TOKEN).await.status(), 200);
    server.stop().await;
}
