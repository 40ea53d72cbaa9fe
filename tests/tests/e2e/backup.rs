//! Backup and restore, as docs/operations.md tells an operator to do them:
//! a backup taken while messages are being sent, restored into a fresh
//! data directory (and, on PostgreSQL, a database filled with pg_dump and
//! pg_restore), holds every message acknowledged before the backup began,
//! and its audit log verifies; a restore refuses a tampered copy, a wrong
//! key and a data directory in use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use curbside_proto::identity::Role;
use curbside_proto::threads::NewThread;
use curbside_server::audit;
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::audit_access::open;
use crate::people::{first_admin, person};
use crate::threads::{blob, send, thread_id};

backend_tests!(a_backup_under_load_restores_every_acknowledged_message_and_a_valid_log);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");
const THREADS: u8 = 3;
const SENDERS_PER_THREAD: usize = 2;

/// Thread, sequence number, body: a message the server acknowledged.
type Acked = (String, u64, Vec<u8>);

/// Runs `curbside-server ARGS` on `data_dir` and `database_url`, beside
/// the test's runtime; its exit status and what it printed.
async fn server_command(args: &[&str], data_dir: &Path, database_url: &str) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let (data_dir, database_url) = (data_dir.to_owned(), database_url.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(SERVER)
            .args(&args)
            .env("CURBSIDE_DATA_DIR", data_dir)
            .env("CURBSIDE_DATABASE_URL", database_url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Runs a program beside the test's runtime; fails the test if it fails.
async fn run(program: &str, args: Vec<String>) {
    let program = program.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn a_backup_under_load_restores_every_acknowledged_message_and_a_valid_log(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let audit_key = server
        .client()
        .audit_key()
        .await
        .unwrap()
        .note_key()
        .unwrap()
        .verifier_string();
    let mut people = Vec::new();
    for i in 0..THREADS * 2 {
        people.push(person(&server, &admin, &format!("Dr. {i}"), Role::Clinician).await);
    }
    for n in 0..THREADS {
        let (creator, other) = (&people[usize::from(n) * 2], &people[usize::from(n) * 2 + 1]);
        creator
            .client
            .create_thread(&NewThread {
                thread_id: thread_id(n),
                epoch: 1,
                devices: vec![other.device_id.clone()],
                welcome: blob("welcome"),
            })
            .await
            .unwrap();
    }

    // Senders on every thread, from both members, until told to stop.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for n in 0..THREADS {
        for s in 0..SENDERS_PER_THREAD {
            let client = people[usize::from(n) * 2 + s % 2].client.clone();
            let (acked, stop) = (acked.clone(), stop.clone());
            senders.push(tokio::spawn(async move {
                let thread = thread_id(n);
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return i;
                    }
                    let body = format!("thread {n} sender {s} message {i}");
                    let seq = send(&client, &thread, 1, &body).await.unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push((thread.clone(), seq, body.into()));
                }
                0
            }));
        }
    }
    while acked.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The backup, as docs/operations.md says, with sends in flight.
    let before = acked.lock().unwrap().clone();
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("curbside.backup");
    let (ok, said) = server_command(
        &["backup", "--out", file.to_str().unwrap()],
        env.data_dir(),
        env.database_url(),
    )
    .await;
    assert!(ok, "{said}");
    assert!(said.contains("Backed up to"), "{said}");
    let dump = backups.path().join("curbside.dump");
    if backend == Backend::Postgres {
        run(
            "pg_dump",
            vec![
                "--format=custom".into(),
                "--file".into(),
                dump.to_str().unwrap().into(),
                env.database_url().into(),
            ],
        )
        .await;
    }
    let acked_during = acked.lock().unwrap().len() - before.len();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(acked_during > 0, "no message was sent during the backup");
    server.stop().await;
    // Written for its owner only.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A backup never overwrites.
    let (ok, said) = server_command(
        &["backup", "--out", file.to_str().unwrap()],
        env.data_dir(),
        env.database_url(),
    )
    .await;
    assert!(!ok && said.contains("exists"), "{said}");

    // Restored into a fresh data directory (and database).
    let fresh = TestEnv::new(backend).await;
    if backend == Backend::Postgres {
        run(
            "pg_restore",
            vec![
                "--no-owner".into(),
                "--exit-on-error".into(),
                "--dbname".into(),
                fresh.database_url().into(),
                dump.to_str().unwrap().into(),
            ],
        )
        .await;
    }
    // Against another key, the log does not verify: nothing is restored.
    let other_key = {
        let other = TestEnv::new(Backend::Sqlite).await;
        let other_server = other.start().await;
        let key = other_server
            .client()
            .audit_key()
            .await
            .unwrap()
            .note_key()
            .unwrap()
            .verifier_string();
        other_server.stop().await;
        key
    };
    let restore = |key: String, from: String| {
        vec![
            "restore".to_owned(),
            "--from".to_owned(),
            from,
            "--audit-key".to_owned(),
            key,
        ]
    };
    let args = restore(other_key, file.to_str().unwrap().to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, said) = server_command(&args, fresh.data_dir(), fresh.database_url()).await;
    assert!(!ok && said.contains("does not verify"), "{said}");
    assert!(!fresh.data_dir().join("keys").exists());

    let args = restore(audit_key.clone(), file.to_str().unwrap().to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, said) = server_command(&args, fresh.data_dir(), fresh.database_url()).await;
    assert!(ok, "{said}");
    assert!(said.contains("the audit log verifies"), "{said}");
    // Into a data directory that holds an installation, never.
    let (ok, said) = server_command(&args, fresh.data_dir(), fresh.database_url()).await;
    assert!(!ok && said.contains("already holds"), "{said}");

    // A server on the restored copy has every message acknowledged before
    // the backup began, unchanged.
    let restored = fresh.start().await;
    assert_eq!(
        restored
            .client()
            .audit_key()
            .await
            .unwrap()
            .note_key()
            .unwrap()
            .verifier_string(),
        audit_key
    );
    let mut logs: HashMap<String, HashMap<u64, Vec<u8>>> = HashMap::new();
    for n in 0..THREADS {
        let mut reader = restored.client();
        reader.set_token(Some(people[usize::from(n) * 2].token().to_owned()));
        let thread = thread_id(n);
        let log = logs.entry(thread.clone()).or_default();
        let mut after = 0;
        loop {
            let page = reader.entries(&thread, after, 500).await.unwrap();
            let Some(last) = page.entries.last() else {
                break;
            };
            after = last.seq;
            for entry in page.entries {
                log.insert(entry.seq, entry.body.0);
            }
        }
    }
    let lost: Vec<(String, u64)> = before
        .iter()
        .filter(|(thread, seq, body)| logs.get(thread).and_then(|log| log.get(seq)) != Some(body))
        .map(|(thread, seq, _)| (thread.clone(), *seq))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} messages acknowledged before the backup are missing: {lost:?}",
        lost.len(),
        before.len()
    );
    // New messages go on the restored log, and the whole of it verifies.
    send(
        &{
            let mut client = restored.client();
            client.set_token(Some(people[0].token().to_owned()));
            client
        },
        &thread_id(0),
        1,
        "after the restore",
    )
    .await
    .unwrap();
    restored.stop().await;
    let database = open(&fresh).await;
    let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
    let key = curbside_proto::note::NoteKey::from_verifier_string(&audit_key).unwrap();
    assert_eq!(
        curbside_proto::audit::verify(entries.clone(), &checkpoints, &key.public_key),
        Ok(entries.len() as u64)
    );
    database.close().await;

    // A copy whose log was altered is refused (SQLite: the file holds the
    // database itself).
    if backend == Backend::Sqlite {
        let unpacked = backups.path().join("unpacked");
        std::fs::create_dir(&unpacked).unwrap();
        run(
            "tar",
            vec![
                "-xf".into(),
                file.to_str().unwrap().into(),
                "-C".into(),
                unpacked.to_str().unwrap().into(),
            ],
        )
        .await;
        let copy = curbside_server::config::DatabaseUrl::sqlite_in(&unpacked);
        let copy = curbside_server::db::Database::open_as_is(&copy)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_entry SET reason = 'rewritten' WHERE seq = 3")
            .execute(copy.pool())
            .await
            .unwrap();
        copy.close().await;
        let pack = |name: &str| {
            let tampered = backups.path().join(name);
            let args: Vec<String> = vec![
                "-cf".into(),
                tampered.to_str().unwrap().into(),
                "-C".into(),
                unpacked.to_str().unwrap().into(),
                "MANIFEST.json".into(),
                "MANIFEST.sig".into(),
                "curbside.db".into(),
                "keys".into(),
                "tls".into(),
            ];
            (tampered, args)
        };
        let refused = async |tampered: &Path| {
            let target = TestEnv::new(backend).await;
            let args = restore(audit_key.clone(), tampered.to_str().unwrap().to_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, said) = server_command(&args, target.data_dir(), target.database_url()).await;
            assert!(!ok, "{said}");
            assert!(!target.data_dir().join("curbside.db").exists());
            assert!(!target.data_dir().join("keys").exists());
            said
        };
        // The database changed: its hash is not the manifest's.
        let (tampered, args) = pack("tampered.backup");
        run("tar", args).await;
        let said = refused(&tampered).await;
        assert!(
            said.contains("curbside.db is not the file its manifest lists"),
            "{said}"
        );
        // The manifest's hash changed to match: its signature fails.
        let manifest_path = unpacked.join("MANIFEST.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &std::fs::read(unpacked.join("curbside.db")).unwrap(),
        );
        manifest["files"]["curbside.db"] = hex::encode(digest).into();
        std::fs::write(
            &manifest_path,
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();
        let (resigned, args) = pack("resigned.backup");
        run("tar", args).await;
        let said = refused(&resigned).await;
        assert!(said.contains("signature does not verify"), "{said}");
    }
}
