//! The audit log's writer: one gap-free chain under concurrent appends from
//! several writers, tamper evidence that names the right sequence, and
//! refusal when the log cannot be written.

use std::sync::Arc;

use curbside_proto::audit::{Outcome, verify};
use curbside_server::audit::{self, AuditLog, AuditSigner, CheckpointPolicy, NewEntry};
use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_tests::{Backend, TestEnv, backend_tests};

backend_tests!(
    concurrent_appends_form_one_gap_free_chain,
    two_writers_on_one_database_share_one_chain,
    tampering_is_detected_at_the_right_sequence,
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
    let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir()).unwrap());
    let policy = CheckpointPolicy {
        every_entries: 100,
        ..CheckpointPolicy::default()
    };
    let (log, _writer) = AuditLog::start(database.clone(), signer.clone(), policy);
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
    assert_eq!(
        verify(entries, &checkpoints, &signer.public_key()),
        Ok(1600)
    );
}

async fn two_writers_on_one_database_share_one_chain(backend: Backend) {
    // Two writers with pools of their own, as two server processes on one
    // database would have: only the database's head lock orders them.
    let env = TestEnv::new(backend).await;
    let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir()).unwrap());
    let (first_db, second_db) = (open(&env).await, open(&env).await);
    let policy = CheckpointPolicy {
        every_entries: 50,
        ..CheckpointPolicy::default()
    };
    let (first, _a) = AuditLog::start(first_db.clone(), signer.clone(), policy);
    let (second, _b) = AuditLog::start(second_db, signer.clone(), policy);
    let (a, b) = tokio::join!(hammer(&first, 4, 200, 0), hammer(&second, 4, 200, 800));
    let mut seqs: Vec<u64> = a.into_iter().chain(b).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1600).collect::<Vec<u64>>());
    let (entries, checkpoints) = audit::read_all(&first_db).await.unwrap();
    assert_eq!(
        verify(entries, &checkpoints, &signer.public_key()),
        Ok(1600)
    );
}

async fn tampering_is_detected_at_the_right_sequence(backend: Backend) {
    // Each case tampers with a fresh log of 50 entries. Checkpoints come
    // every 10 entries after the first (which is sealed at once): at 1, 11,
    // 21, 31 and 41.
    let cases: [(&[&str], u64); 5] = [
        (
            &["UPDATE audit_entry SET reason = 'nothing to see' WHERE seq = 17"],
            17,
        ),
        (&["DELETE FROM audit_entry WHERE seq = 23"], 23),
        (
            &[
                "UPDATE audit_entry SET seq = -1 WHERE seq = 30",
                "UPDATE audit_entry SET seq = 30 WHERE seq = 31",
                "UPDATE audit_entry SET seq = 31 WHERE seq = -1",
            ],
            30,
        ),
        (&["DELETE FROM audit_entry WHERE seq > 38"], 39),
        (
            &[
                "UPDATE audit_checkpoint SET signature = (SELECT signature FROM audit_checkpoint WHERE seq = 11) WHERE seq = 21",
            ],
            21,
        ),
    ];
    for (statements, broken_at) in cases {
        let env = TestEnv::new(backend).await;
        let database = open(&env).await;
        let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir()).unwrap());
        let policy = CheckpointPolicy {
            every_entries: 10,
            ..CheckpointPolicy::default()
        };
        let (log, _writer) = AuditLog::start(database.clone(), signer.clone(), policy);
        for i in 0..50 {
            log.append(entry(i)).await.unwrap();
        }
        let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
        let sealed: Vec<u64> = checkpoints.iter().map(|c| c.seq).collect();
        assert_eq!(sealed, [1, 11, 21, 31, 41]);
        assert_eq!(verify(entries, &checkpoints, &signer.public_key()), Ok(50));

        for statement in statements {
            crate::storage::execute(&env, statement).await;
        }
        let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
        let broken = verify(entries, &checkpoints, &signer.public_key()).unwrap_err();
        assert_eq!(broken.seq, broken_at, "{statements:?}: {broken}");
        database.close().await;
    }
}

async fn appends_fail_when_the_log_cannot_be_written(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let database = open(&env).await;
    let signer = Arc::new(AuditSigner::load_or_generate(env.data_dir()).unwrap());
    let (log, _writer) = AuditLog::start(database.clone(), signer, CheckpointPolicy::default());
    log.append(entry(0)).await.unwrap();
    match backend {
        Backend::Sqlite => {
            crate::storage::execute(
                &env,
                "CREATE TRIGGER audit_disabled BEFORE INSERT ON audit_entry \
                 BEGIN SELECT RAISE(ABORT, 'audit disabled'); END",
            )
            .await;
        }
        Backend::Postgres => {
            crate::storage::execute(
                &env,
                "CREATE FUNCTION audit_disabled() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$",
            )
            .await;
            crate::storage::execute(
                &env,
                "CREATE TRIGGER audit_disabled BEFORE INSERT ON audit_entry \
                 FOR EACH ROW EXECUTE FUNCTION audit_disabled()",
            )
            .await;
        }
    }
    assert!(
        log.append(entry(1)).await.is_err(),
        "an unwritable log refuses"
    );
    // Nothing half-written: the head did not move.
    let (entries, _) = audit::read_all(&database).await.unwrap();
    assert_eq!(entries.len(), 1);
}
