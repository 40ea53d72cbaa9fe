//! An export of 100,000 audit entries streams in flat memory.
//!
//! A test binary of its own, with one test, so that the process's peak
//! resident memory is this export's alone (the end-to-end suite runs many
//! tests in one process at once). The server runs in this process, and the
//! client reads the stream and throws it away: if the server buffered the
//! export, the peak would grow by at least the export's size.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step is a failed test"
)]

use std::sync::Arc;

use curbside_proto::audit::Outcome;
use curbside_proto::audit_review::{ExportFormat, ExportQuery};
use curbside_proto::identity::EnrollRequest;
use curbside_server::audit::{self, AuditSigner, NewEntry};
use curbside_server::config::CheckpointPolicy;
use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_tests::{Backend, TestEnv, on_backend};
use ring::signature::{Ed25519KeyPair, KeyPair};

const ENTRIES: usize = 100_000;
const PER_TRANSACTION: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_100k_entries_streams_in_flat_memory() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        on_backend(
            backend,
            "an_export_of_100k_entries_streams_in_flat_memory",
            export,
        )
        .await;
    }
}

/// Peak and current resident memory of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn export(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let client = server.client();
    let key = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let enrolled = client
        .enroll(&EnrollRequest {
            code: server.first_admin_code.clone().unwrap(),
            device_name: "export test".to_owned(),
            public_key: key.public_key().as_ref().to_vec(),
            display_name: Some("Dr. Export".to_owned()),
        })
        .await
        .unwrap();
    let mut client = client;
    let token = client
        .login_with_key(&enrolled.server_id, &enrolled.device.device_id, &key)
        .await
        .unwrap()
        .token;
    client.set_token(Some(token));

    // 100,000 entries, appended as the server would, in large batches.
    let database = Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
        .await
        .unwrap();
    let signer =
        Arc::new(AuditSigner::load_or_generate(env.data_dir(), &enrolled.server_id).unwrap());
    for batch in 0..ENTRIES / PER_TRANSACTION {
        let entries: Vec<NewEntry> = (0..PER_TRANSACTION)
            .map(|i| NewEntry {
                time_ms: 1_795_392_000_000 + i64::try_from(batch * PER_TRANSACTION + i).unwrap(),
                actor_user: Some(format!("{:032x}", i % 97)),
                actor_device: Some(format!("{:032x}", i % 89)),
                client_addr: Some("192.0.2.10".to_owned()),
                request_id: format!("{:032x}", batch * PER_TRANSACTION + i),
                action: "thread.read".to_owned(),
                resource_type: "thread".to_owned(),
                resource_id: Some(format!("{:032x}", i % 13)),
                outcome: Outcome::Allowed,
                reason: "ok".to_owned(),
                evidence: None,
            })
            .collect();
        let mut tx = database.pool().begin().await.unwrap();
        audit::append_in(&mut tx, &entries, &signer, CheckpointPolicy::default())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    database.close().await;

    // One export first, unmeasured: it fills what every read fills once,
    // whatever the export's size (on SQLite each pooled connection's page
    // cache, up to 2 MiB each, which alone came within a few percent of the
    // bound below). What is measured then is what an export adds.
    let mut response = client
        .audit_export(&ExportQuery::whole_log(ExportFormat::Csv))
        .await
        .unwrap();
    while client.chunk(&mut response).await.unwrap().is_some() {}

    for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
        // Reset the peak to now (Linux: `5` clears the high-water mark).
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let (_, before) = memory();
        let mut response = client
            .audit_export(&ExportQuery::whole_log(format))
            .await
            .unwrap();
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = client.chunk(&mut response).await.unwrap() {
            bytes += chunk.len();
            lines += chunk.iter().filter(|&&b| b == b'\n').count();
        }
        let (peak, _) = memory();
        let growth = peak.saturating_sub(before);
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "{backend:?} {format:?}: exported {bytes} bytes in {lines} lines; peak resident \
                 memory grew by {growth} bytes\n"
            )
            .as_bytes(),
        );
        assert!(lines > ENTRIES, "every entry exported: {lines} lines");
        assert!(bytes > 20_000_000, "a large export: {bytes} bytes");
        assert!(
            growth < u64::try_from(bytes).unwrap() / 4,
            "memory grew with the export: {growth} bytes for {bytes}"
        );
    }
}
