//! Disappearing messages, the retention policy and legal holds, through
//! the CLI and the sweep: content past its thread's lifespan is purged
//! (ciphertext and attachments, checked in the database's files and rows)
//! unless a legal hold on the thread or on a member covers it; lifting
//! the last hold lets the next sweep purge it, recalls made under a hold
//! included; content older than the retention policy's age is purged
//! too; every step is in the audit log, purges under no actor.

use curbside_proto::audit::Outcome;
use curbside_proto::audit_review::SearchQuery;
use curbside_proto::retention::{HoldScope, NewHold};
use curbside_tests::{Backend, TestEnv, backend_tests};
use sqlx::Connection;

use crate::conversation::{Clinician, created};
use crate::people::{Person, first_admin};

backend_tests!(held_content_outlives_its_lifespan_until_the_last_hold_is_lifted);

/// Runs `sql` behind the server's back; returns the rows it changed.
async fn execute(env: &TestEnv, sql: &str) -> u64 {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let changed = sqlx::query(sql)
        .execute(&mut connection)
        .await
        .unwrap()
        .rows_affected();
    connection.close().await.unwrap();
    changed
}

/// The bytes of column `column` of the one row `sql` selects.
async fn stored(env: &TestEnv, sql: &str) -> Vec<u8> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let bytes: Vec<u8> = sqlx::query_scalar(sql)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    bytes
}

/// Where each of `needles` is found in storage: a message's ciphertext
/// whole (pieces of it would not do: MLS messages of one epoch begin
/// alike), a file's by pieces (a large value is stored in pages).
async fn found(env: &TestEnv, backend: Backend, needles: &[&[u8]]) -> Vec<usize> {
    let mut counts = Vec::new();
    for needle in needles {
        counts.push(if needle.len() <= 2048 {
            crate::mls::bytes_in_storage(env, backend, needle).await
        } else {
            let pieces = crate::attachments::pieces(needle);
            crate::attachments::pieces_stored(env, backend, &pieces).await
        });
    }
    counts
}

/// Waits until none of `needles` is stored (up to 20 s).
async fn gone(env: &TestEnv, backend: Backend, needles: &[&[u8]], what: &str) {
    let started = std::time::Instant::now();
    loop {
        let counts = found(env, backend, needles).await;
        if counts.iter().all(|count| *count == 0) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{what} is still stored: {counts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Passes several sweeps (every 100 ms here), then checks that every one
/// of `needles` is still stored.
async fn kept(env: &TestEnv, backend: Backend, needles: &[&[u8]], what: &str) {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let counts = found(env, backend, needles).await;
    assert!(
        counts.iter().all(|count| *count > 0),
        "{what} was purged under a hold: {counts:?}"
    );
}

/// The audit entries with `action`, oldest first.
pub(crate) async fn audit(admin: &Person, action: &str) -> Vec<curbside_proto::audit::AuditEntry> {
    admin
        .client
        .audit_search(&SearchQuery {
            action: Some(action.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|recorded| recorded.entry)
        .collect()
}

async fn held_content_outlives_its_lifespan_until_the_last_hold_is_lifted(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.sweep_every = std::time::Duration::from_millis(100);
    let server = env.start_with(config, axum::Router::new()).await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    ben.ok(&["threads"]).await;
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--subject",
            "Bed 9",
        ])
        .await,
    );

    // Said before any lifespan: no lifespan set later reaches it.
    let before = format!("BEFORE-{}", std::process::id());
    ana.ok(&["send", &thread, &before]).await;
    let before_body = stored(
        &env,
        &format!(
            "SELECT body FROM thread_entry WHERE thread_id = '{thread}' AND kind = 'application' \
             ORDER BY seq DESC LIMIT 1"
        ),
    )
    .await;

    // A hold on the thread, then messages that live eight seconds.
    let thread_hold = admin
        .client
        .place_hold(&NewHold {
            scope: HoldScope::Thread,
            target_id: thread.clone(),
            reason: "Matter 2026-114".to_owned(),
        })
        .await
        .unwrap();
    let set = ana.ok(&["lifespan", &thread, "8s"]).await;
    assert!(set.contains("disappear after 8 seconds"), "{set}");
    let sent_at = std::time::Instant::now();

    // A message with a file, and one to be recalled under the hold.
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("wound.png");
    std::fs::write(&path, vec![0x5a; 200_000]).unwrap();
    let marker = format!("EPHEMERAL-{}", std::process::id());
    ana.ok(&["send", &thread, &marker, "--file", path.to_str().unwrap()])
        .await;
    let recalled_path = files.path().join("wrong-patient.pdf");
    std::fs::write(&recalled_path, vec![0x33; 70_000]).unwrap();
    ana.ok(&[
        "send",
        &thread,
        "wrong patient",
        "--file",
        recalled_path.to_str().unwrap(),
    ])
    .await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains(&marker), "{read}");
    let message = stored(
        &env,
        &format!(
            "SELECT body FROM thread_entry WHERE thread_id = '{thread}' AND kind = 'application' \
             ORDER BY seq DESC LIMIT 1 OFFSET 1"
        ),
    )
    .await;
    let file = stored(
        &env,
        "SELECT c.data FROM attachment_chunk c JOIN attachment a \
         ON a.attachment_id = c.attachment_id WHERE a.size > 100000",
    )
    .await;
    let recalled_file = stored(
        &env,
        "SELECT c.data FROM attachment_chunk c JOIN attachment a \
         ON a.attachment_id = c.attachment_id WHERE a.size < 100000",
    )
    .await;
    let recalled_message = stored(
        &env,
        &format!(
            "SELECT body FROM thread_entry WHERE thread_id = '{thread}' AND kind = 'application' \
             ORDER BY seq DESC LIMIT 1"
        ),
    )
    .await;
    let needles: [&[u8]; 4] = [&message, &file, &recalled_file, &recalled_message];

    // Recalled under the hold: every member is told at once, but the
    // ciphertext stays while held.
    ana.ok(&["recall", &thread]).await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains("recalled this message"), "{read}");
    assert!(!read.contains("wrong patient"), "{read}");

    // Past their lifespan, the hold keeps them on the server.
    tokio::time::sleep(std::time::Duration::from_secs(8).saturating_sub(sent_at.elapsed())).await;
    kept(&env, backend, &needles, "content held on its thread").await;

    // A hold on a member (Ben) covers the thread too: with the thread's
    // lifted, it keeps the content.
    let user_hold = admin
        .client
        .place_hold(&NewHold {
            scope: HoldScope::User,
            target_id: ben.user_id.clone(),
            reason: "Matter 2026-114, custodian".to_owned(),
        })
        .await
        .unwrap();
    admin.client.lift_hold(&thread_hold.hold_id).await.unwrap();
    kept(&env, backend, &needles, "content held on a member").await;
    let holds = admin.client.holds().await.unwrap().holds;
    assert_eq!(holds.len(), 2);
    assert!(holds.iter().any(|hold| hold.lifted_at_ms.is_some()));

    // The last hold lifted, the next sweeps purge it all: the message's
    // ciphertext, its file, and the recalled message and its file.
    let lifted = admin.client.lift_hold(&user_hold.hold_id).await.unwrap();
    gone(&env, backend, &needles, "content past its lifespan").await;
    let started = std::time::Instant::now();
    while crate::storage::count_rows(&env, "attachment", "1 = 1").await > 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // What was said before the lifespan stays, on the server and on Ben's
    // device.
    kept(
        &env,
        backend,
        &[&before_body],
        "a message older than its thread's lifespan",
    )
    .await;
    assert!(ben.ok(&["read", &thread]).await.contains(&before));
    let again = admin.client.lift_hold(&user_hold.hold_id).await;
    assert!(
        matches!(&again, Err(curbside_cli::ClientError::Api { status, .. }) if status.as_u16() == 409),
        "{again:?}"
    );

    // Each device forgot it too; the change of lifespan stays.
    for clinician in [&ana, &ben] {
        let read = clinician.ok(&["read", &thread]).await;
        assert!(!read.contains(&marker), "{read}");
        assert!(!read.contains("[attachment"), "{read}");
        assert!(
            read.contains("Dr. Ana Alvarez set messages to disappear after 8 seconds"),
            "{read}"
        );
    }

    // Every step is on the record: the lifespan, both holds and lifts,
    // and the purges, under no actor, after the last lift.
    let lifespans = audit(&admin, "thread.lifespan.set").await;
    assert_eq!(lifespans.len(), 1);
    assert_eq!(lifespans[0].evidence.as_deref(), Some("lifespan_s=8"));
    assert_eq!(audit(&admin, "admin.hold.place").await.len(), 2);
    assert_eq!(
        audit(&admin, "admin.hold.lift")
            .await
            .iter()
            .filter(|entry| entry.outcome == Outcome::Allowed)
            .count(),
        2
    );
    let purges = audit(&admin, "thread.purge").await;
    let reasons: Vec<&str> = purges.iter().map(|entry| entry.reason.as_str()).collect();
    assert!(reasons.contains(&"lifespan"), "{reasons:?}");
    assert!(reasons.contains(&"recall"), "{reasons:?}");
    for purge in &purges {
        assert_eq!(purge.actor_user, None);
        assert_eq!(purge.resource_id.as_deref(), Some(thread.as_str()));
        assert!(purge.time_ms >= lifted.lifted_at_ms.unwrap(), "{purge:?}");
    }

    // The retention policy: off by default; an administrator sets it, and
    // content older than it is purged (here made older behind the
    // server's back: a day cannot pass in a test).
    assert_eq!(admin.client.retention().await.unwrap().max_age_s, None);
    let other = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--subject",
            "Old",
        ])
        .await,
    );
    let old = format!("OLD-{}", std::process::id());
    ana.ok(&["send", &other, &old]).await;
    let old_body = stored(
        &env,
        &format!(
            "SELECT body FROM thread_entry WHERE thread_id = '{other}' AND kind = 'application' \
             ORDER BY seq DESC LIMIT 1"
        ),
    )
    .await;
    let two_days_ago = curbside_server::clock::now_ms() - 2 * 86_400_000;
    assert!(
        execute(
            &env,
            &format!(
                "UPDATE thread_entry SET created_at_ms = {two_days_ago} WHERE thread_id = '{other}'"
            ),
        )
        .await
            > 0
    );
    execute(
        &env,
        &format!("UPDATE thread SET created_at_ms = {two_days_ago} WHERE thread_id = '{other}'"),
    )
    .await;
    kept(&env, backend, &[&old_body], "content with no policy").await;
    let policy = admin.client.set_retention(Some(86_400)).await.unwrap();
    assert_eq!(policy.max_age_s, Some(86_400));
    gone(
        &env,
        backend,
        &[&old_body],
        "content past the retention policy",
    )
    .await;
    let purges = audit(&admin, "thread.purge").await;
    assert!(
        purges.iter().any(|entry| entry.reason == "retention"
            && entry.resource_id.as_deref() == Some(other.as_str())),
        "{purges:?}"
    );
    assert_eq!(audit(&admin, "admin.retention.set").await.len(), 1);
    server.stop().await;
}
