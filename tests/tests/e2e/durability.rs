//! Nothing acknowledged is lost: messages answered 200 survive `kill -9`
//! of the server in the middle of a load, and the audit chain is intact.
//! A killed process leaves its writes to the operating system, so this
//! shows that the server answers only after its commit; that a commit
//! survives power loss is the database's part (`synchronous=FULL`, and
//! PostgreSQL's `fsync`), which no process kill can show.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use curbside_proto::identity::Role;
use curbside_proto::threads::NewThread;
use curbside_server::audit;
use curbside_tests::{Backend, ServerProcess, TestEnv, backend_tests};

use crate::audit_access::open;
use crate::people::{enroll_with, person_on};
use crate::threads::{blob, send, thread_id};

backend_tests!(acknowledged_messages_survive_kill_9_under_load);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");
/// Signed checkpoints often enough that the crashed run has some.
const CHECKPOINTS: &[&str] = &["--audit-checkpoint-entries", "100"];
const THREADS: u8 = 4;
const SENDERS_PER_THREAD: usize = 4;

/// Thread, sequence number, body: a message the server acknowledged.
type Acked = (String, u64, Vec<u8>);

async fn acknowledged_messages_survive_kill_9_under_load(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = ServerProcess::start(&env, SERVER, CHECKPOINTS, true);
    let mut admin = enroll_with(
        server.client(),
        server.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    admin.login().await;
    let mut people = Vec::new();
    for i in 0..THREADS * 2 {
        people.push(
            person_on(
                server.client(),
                &admin,
                &format!("Dr. {i}"),
                Role::Clinician,
            )
            .await,
        );
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

    // Senders on every thread, from both members, until the server dies.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let mut senders = Vec::new();
    for n in 0..THREADS {
        for s in 0..SENDERS_PER_THREAD {
            let client = people[usize::from(n) * 2 + s % 2].client.clone();
            let acked = acked.clone();
            senders.push(tokio::spawn(async move {
                let thread = thread_id(n);
                for i in 0.. {
                    let body = format!("thread {n} sender {s} message {i}");
                    match send(&client, &thread, 1, &body).await {
                        Ok(seq) => acked
                            .lock()
                            .unwrap()
                            .push((thread.clone(), seq, body.into())),
                        Err(_) => return,
                    }
                }
            }));
        }
    }
    // Kill it mid-stream, once plenty has been acknowledged.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Restarted on the same data directory and database, the log holds
    // every acknowledged message, at its sequence number, unchanged.
    let restarted = ServerProcess::start(&env, SERVER, CHECKPOINTS, false);
    let mut logs: HashMap<String, HashMap<u64, Vec<u8>>> = HashMap::new();
    for n in 0..THREADS {
        let mut reader = restarted.client();
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
    let mut lost = Vec::new();
    for (thread, seq, body) in &acked {
        if logs.get(thread).and_then(|log| log.get(seq)) != Some(body) {
            lost.push((thread.clone(), *seq));
        }
    }
    assert!(acked.len() >= 300);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages were lost: {lost:?}",
        lost.len(),
        acked.len()
    );

    // Each of them was audited, and the chain is whole.
    let database = open(&env).await;
    let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
    for n in 0..THREADS {
        let thread = thread_id(n);
        let sends = entries
            .iter()
            .filter(|(entry, _)| {
                entry.action == "thread.message.send"
                    && entry.outcome == curbside_proto::audit::Outcome::Allowed
                    && entry.resource_id.as_deref() == Some(thread.as_str())
            })
            .count();
        let acknowledged = acked.iter().filter(|(t, _, _)| *t == thread).count();
        // At least one entry per acknowledged message of the thread (a
        // message committed as the server died has one too, unanswered).
        assert!(
            sends >= acknowledged,
            "thread {n}: {sends} send entries for {acknowledged} acknowledged messages"
        );
    }
    let key = restarted.client().audit_key().await.unwrap().public_key;
    assert_eq!(
        curbside_proto::audit::verify(entries.clone(), &checkpoints, &key),
        Ok(entries.len() as u64),
        "the audit chain verifies after the crash"
    );
}
