//! A flood of requests without a session fills neither the audit log nor
//! the server's time: past a small allowance per address, refusals are
//! counted into one entry per address, reason and interval, and answered
//! after a pause, while signed-in clinicians are served as before.
//!
//! A test binary of its own, its cases one after the other: it measures a
//! clinician's latency, which other tests running beside it would disturb
//! (cargo runs test binaries one at a time).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step is a failed test"
)]

#[path = "e2e/people.rs"]
#[allow(dead_code, reason = "shared with the e2e suite, which uses all of it")]
mod people;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use curbside_proto::audit::Outcome;
use curbside_proto::identity::Role;
use curbside_server::audit;
use curbside_tests::{Backend, TestEnv};

use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use people::{first_admin, person};

/// Both cases on both databases, one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        curbside_tests::on_backend(
            backend,
            "an_anonymous_flood_is_counted_and_does_not_slow_clinicians",
            an_anonymous_flood_is_counted_and_does_not_slow_clinicians,
        )
        .await;
        curbside_tests::on_backend(
            backend,
            "a_replayed_token_cannot_fill_the_log",
            a_replayed_token_cannot_fill_the_log,
        )
        .await;
    }
}

async fn open(env: &TestEnv) -> Database {
    Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
        .await
        .unwrap()
}

/// A token whose session has ended, replayed in a loop (a stolen laptop's,
/// say), names its user but is no session: its refusals are counted past
/// the user's allowance, and answered slowly.
async fn a_replayed_token_cannot_fill_the_log(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let mut clinician = person(&server, &admin, "Dr. Gone", Role::Clinician).await;
    let token = clinician.token().to_owned();
    clinician.client.logout().await.unwrap();
    let replayer = server.http1_from(FLOODER);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (replayer, url, token) = (
            replayer.clone(),
            format!("{}/v1/me", server.url),
            token.clone(),
        );
        tasks.spawn(async move {
            let mut refused = 0u64;
            while started.elapsed() < Duration::from_secs(8) {
                let status = replayer
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 401);
                refused += 1;
            }
            refused
        });
    }
    let mut refused = 0;
    while let Some(count) = tasks.join_next().await {
        refused += count.unwrap();
    }
    clinician.login().await;
    server.stop().await;
    let database = open(&env).await;
    let (entries, _) = audit::read_all(&database).await.unwrap();
    let user = clinician.user.user_id.as_str();
    let (mut recorded, mut written) = (0u64, 0);
    for (entry, _) in &entries {
        if entry.actor_user.as_deref() != Some(user) || entry.action != "identity.whoami" {
            continue;
        }
        written += 1;
        recorded += if entry.resource_type == "refusal_count" {
            entry
                .resource_id
                .as_deref()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        } else {
            1
        };
    }
    eprintln!("{refused} replays, {written} entries");
    assert_eq!(recorded, refused);
    assert!(
        written <= 30 + 10 + 4,
        "{written} entries for {refused} replays"
    );
}

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const FLOOD_FOR: Duration = Duration::from_secs(20);
const FLOOD_CONNECTIONS: usize = 32;

async fn an_anonymous_flood_is_counted_and_does_not_slow_clinicians(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let clinician = person(&server, &admin, "Dr. Quiet", Role::Clinician).await;

    // Warm up (connections, caches), then the quiet figure.
    latencies(&clinician.client, 100).await;
    let quiet = latencies(&clinician.client, 1000).await;

    let flooder = server.http1_from(FLOODER);
    let base = server.url.clone();
    let mut flood = tokio::task::JoinSet::new();
    for connection in 0..FLOOD_CONNECTIONS {
        let (flooder, base) = (flooder.clone(), base.clone());
        flood.spawn(async move {
            let started = Instant::now();
            let mut refused = 0u64;
            let mut sent = connection;
            while started.elapsed() < FLOOD_FOR {
                sent += 1;
                // Three kinds of request without a (valid) session.
                let request = match sent % 3 {
                    0 => flooder.get(format!("{base}/v1/threads")),
                    1 => flooder
                        .get(format!("{base}/v1/me"))
                        .header("Authorization", "Bearer not-a-token"),
                    _ => flooder
                        .post(format!("{base}/v1/key-packages/claim"))
                        .header("Content-Type", "application/json")
                        .body(format!(r#"{{"user_id":"{}"}}"#, "0".repeat(32))),
                };
                let status = request.send().await.unwrap().status();
                assert!(
                    status == 401 || status == 429,
                    "a request without a session got {status}"
                );
                refused += 1;
            }
            refused
        });
    }
    // The clinician's requests while the flood runs.
    let mut busy = Vec::new();
    let flooding = Instant::now();
    while flooding.elapsed() < FLOOD_FOR - Duration::from_secs(2) {
        busy.extend(latencies(&clinician.client, 50).await);
    }
    let mut refused = 0;
    while let Some(count) = flood.join_next().await {
        refused += count.unwrap();
    }
    // Sign-in from the flooding address is not locked out: it keeps its own
    // limits (a colleague behind the same address can still sign in).
    let neighbour = curbside_cli::Client::new_from(
        &server.url,
        &curbside_cli::Trust::Pin(server.fingerprint),
        Some(FLOODER),
    )
    .unwrap();
    neighbour.challenge(&clinician.device_id).await.unwrap();
    server.stop().await;

    let (quiet_p99, busy_p99) = (p99(quiet), p99(busy));
    eprintln!(
        "{refused} refused; clinician p99 quiet {quiet_p99:?}, during the flood {busy_p99:?}"
    );
    assert!(
        busy_p99 <= quiet_p99 * 2,
        "the clinician's p99 went from {quiet_p99:?} to {busy_p99:?} during the flood"
    );

    // Every refusal is on the record, in a bounded number of entries.
    let database = open(&env).await;
    let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
    let flooder = FLOODER.to_string();
    let (mut recorded, mut own_entries, mut counted_entries) = (0u64, 0, 0);
    for (entry, _) in &entries {
        if entry.client_addr.as_deref() != Some(flooder.as_str()) {
            continue;
        }
        if entry.action == "auth.challenge" {
            // The neighbour's sign-in, after the flood.
            assert_eq!(entry.outcome, Outcome::Allowed, "{entry:#?}");
            continue;
        }
        assert_eq!(entry.outcome, Outcome::Denied, "{entry:#?}");
        assert_eq!(entry.actor_user, None, "{entry:#?}");
        if entry.resource_type == "refusal_count" {
            assert!(entry.request_id.starts_with("refusals:"), "{entry:#?}");
            recorded += entry
                .resource_id
                .as_deref()
                .unwrap()
                .parse::<u64>()
                .unwrap();
            counted_entries += 1;
        } else {
            recorded += 1;
            own_entries += 1;
        }
    }
    eprintln!("{own_entries} entries of their own, {counted_entries} counted entries");
    assert_eq!(
        recorded, refused,
        "the entries' counts add up to the refusals"
    );
    // 30 at once and one a second of their own; one counted entry per reason
    // every 10 s.
    assert!(own_entries <= 30 + 25, "{own_entries} entries of their own");
    assert!(
        counted_entries <= 4 * 4,
        "{counted_entries} counted entries"
    );
    assert!(refused > (own_entries + counted_entries) as u64 * 4);
    // And the log still verifies.
    let key = audit::AuditSigner::load_or_generate(env.data_dir(), "test-server")
        .unwrap()
        .public_key();
    let count = entries.len() as u64;
    assert_eq!(
        curbside_proto::audit::verify(entries, &checkpoints, &key),
        Ok(count)
    );
}

/// How long each of `count` signed-in requests took, sent at a brisk
/// person's pace (under the per-user limit of 200 a second).
async fn latencies(client: &curbside_cli::Client, count: usize) -> Vec<Duration> {
    let mut taken = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        client.threads().await.unwrap();
        taken.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    taken
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}
