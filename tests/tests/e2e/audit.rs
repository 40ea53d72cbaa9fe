//! The audit log's writer: one gap-free chain under concurrent appends from
//! several writers, and refusal when the log cannot be written. Tampering
//! is tested end to end, through the CLI, in `audit_access`.

use std::sync::Arc;

use curbside_proto::audit::{Outcome, verify};
use curbside_server::audit::{self, AuditSigner, NewEntry};
use curbside_server::config::CheckpointPolicy;
use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_server::pipeline::writer::AuditLog;
use curbside_tests::{Backend, TestEnv, backend_tests};

backend_tests!(
    concurrent_appends_form_one_gap_free_chain,
    two_writers_on_one_database_share_one_chain,
    appends_fail_when_the_log_cannot_be_written,
);

fn entry(i: usize) -> NewEntry {
    NewEntry {
        time_ms: 1_700_000_000_000,
        actor_user: Some(format!("user-{}", i % 7)),
        actor_device: None,
        client_addr: Some("127.0.0.1".into()),
        request_id: format!("request-{i}"),
        action: "thread.read".into(),
        resource_type: "thread".into(),
        resource_id: Some(format!("thread-{}", i % 3)),
        outcome: if i.is_multiple_of(5) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        reason: "ok\nwith, \"awkward\" text;".into(),
        evidence: None,
    }
}

async fn open(env: &TestEnv) -> Database {
    Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
        .await
        .unwrap()
}

/// `clients` tasks each appending `each` entries through `log`.
async fn hammer(log: &AuditLog, clients: usize, each: usize, offset: usize) -> Vec<u64> {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..each {
                seqs.push(log.append(entry(offset + client * each + i)).await.unwrap());
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs
}

async fn concurrent_appends_form_one_gap_free_chain(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let database = open(&env).await;
    let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir(), "test-server").unwrap());
    let policy = CheckpointPolicy {
        every_entries: 100,
        ..CheckpointPolicy::default()
    };
    let (log, _writer) =
        AuditLog::start(database.clone(), signer.clone(), policy, writer_metrics());
    let mut seqs = hammer(&log, 8, 200, 0).await;
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=1600).collect::<Vec<u64>>(),
        "one gap-free sequence"
    );

    audit::checkpoint_now(&database, &signer).await.unwrap();
    let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
    assert!(checkpoints.len() >= 16, "{} checkpoints", checkpoints.len());
    assert_tree_signed(&database, &signer, &entries).await;
    assert_eq!(
        verify(entries, &checkpoints, &signer.public_key()),
        Ok(1600)
    );
}

async fn two_writers_on_one_database_share_one_chain(backend: Backend) {
    // Two writers with pools of their own, as two server processes on one
    // database would have: only the database's head lock orders them.
    let env = TestEnv::new(backend).await;
    let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir(), "test-server").unwrap());
    let (first_db, second_db) = (open(&env).await, open(&env).await);
    let policy = CheckpointPolicy {
        every_entries: 50,
        ..CheckpointPolicy::default()
    };
    let (first, _a) = AuditLog::start(first_db.clone(), signer.clone(), policy, writer_metrics());
    let (second, _b) = AuditLog::start(second_db, signer.clone(), policy, writer_metrics());
    let (a, b) = tokio::join!(hammer(&first, 4, 200, 0), hammer(&second, 4, 200, 800));
    let mut seqs: Vec<u64> = a.into_iter().chain(b).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1600).collect::<Vec<u64>>());
    let (entries, checkpoints) = audit::read_all(&first_db).await.unwrap();
    assert_tree_signed(&first_db, &signer, &entries).await;
    assert_eq!(
        verify(entries, &checkpoints, &signer.public_key()),
        Ok(1600)
    );
}

/// The head's signed tree checkpoint covers every entry, with the root an
/// implementation written from RFC 9162 for the tests computes.
async fn assert_tree_signed(
    database: &Database,
    signer: &AuditSigner,
    entries: &[(curbside_proto::audit::AuditEntry, Vec<u8>)],
) {
    use crate::audit_tree::rfc9162;
    let head = curbside_server::db::audit::head(database.pool())
        .await
        .unwrap();
    let (size, root) = signer
        .opens(head.tree_note.as_deref().unwrap())
        .expect("the head's tree checkpoint is signed by the audit key");
    assert_eq!(size as usize, entries.len());
    let leaves: Vec<rfc9162::Hash> = entries
        .iter()
        .map(|(entry, _)| rfc9162::leaf(&entry.canonical_bytes().unwrap()))
        .collect();
    assert_eq!(root, rfc9162::mth(&leaves));
}

async fn appends_fail_when_the_log_cannot_be_written(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let database = open(&env).await;
    let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir(), "test-server").unwrap());
    let (log, _writer) = AuditLog::start(
        database.clone(),
        signer,
        CheckpointPolicy::default(),
        writer_metrics(),
    );
    log.append(entry(0)).await.unwrap();
    disable_audit_inserts(&env, backend).await;
    assert!(
        log.append(entry(1)).await.is_err(),
        "an unwritable log refuses"
    );
    // Nothing half-written: the head did not move.
    let (entries, _) = audit::read_all(&database).await.unwrap();
    assert_eq!(entries.len(), 1);
}

/// Makes every insert into the audit log fail, behind the server's back.
pub async fn disable_audit_inserts(env: &TestEnv, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            crate::storage::execute(
                env,
                "CREATE TRIGGER audit_disabled BEFORE INSERT ON audit_entry \
                 BEGIN SELECT RAISE(ABORT, 'audit disabled'); END",
            )
            .await;
        }
        Backend::Postgres => {
            crate::storage::execute(
                env,
                "CREATE FUNCTION audit_disabled() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$",
            )
            .await;
            crate::storage::execute(
                env,
                "CREATE TRIGGER audit_disabled BEFORE INSERT ON audit_entry \
                 FOR EACH ROW EXECUTE FUNCTION audit_disabled()",
            )
            .await;
        }
    }
}

fn writer_metrics() -> curbside_server::metrics::WriterMetrics {
    curbside_server::metrics::WriterMetrics::new().unwrap()
}
