//! Recall ("delete for everyone"), through the CLI: the sender takes a
//! message back; the other member's `read` shows it as recalled and no
//! longer holds its text; its ciphertext is found nowhere in the SQLite
//! file or its write-ahead log, nor in any PostgreSQL row; only the
//! sender may recall it, once; the audit log records the recall.

use curbside_proto::audit_review::SearchQuery;
use curbside_tests::{Backend, TestEnv, backend_tests};
use sqlx::Connection;

use crate::conversation::{Clinician, created};
use crate::people::first_admin;

backend_tests!(a_recalled_message_is_gone_from_every_device_and_from_storage);

/// The ciphertext of entry `seq` of `thread`, read behind the server's back.
async fn ciphertext(env: &TestEnv, thread: &str, seq: i64) -> Vec<u8> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let body: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM thread_entry WHERE thread_id = $1 AND seq = $2")
            .bind(thread)
            .bind(seq)
            .fetch_one(&mut connection)
            .await
            .unwrap();
    connection.close().await.unwrap();
    body
}

async fn a_recalled_message_is_gone_from_every_device_and_from_storage(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
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
            "Bed 2",
        ])
        .await,
    );
    let marker = format!("RECALL-ME-{}-{}", std::process::id(), "x".repeat(200));
    let sent = ana.ok(&["send", &thread, &marker]).await;
    let seq: i64 = sent
        .rsplit("(entry ")
        .next()
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no entry number in {sent}"));
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains(&marker), "{read}");
    let body = ciphertext(&env, &thread, seq).await;
    assert!(body.len() > 200);
    // A control: before the recall, the scan finds it.
    assert!(crate::mls::bytes_in_storage(&env, backend, &body).await > 0);

    // Only its sender may recall it.
    let refused = ben
        .run(&["recall", &thread, &seq.to_string()])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("only its sender"), "{refused}");

    let recalled = ana.ok(&["recall", &thread]).await;
    assert!(recalled.contains(&format!("entry {seq}")), "{recalled}");
    let again = ana
        .run(&["recall", &thread, &seq.to_string()])
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("already recalled"), "{again}");

    // Both devices show it as recalled, and neither holds its text.
    for (who, clinician) in [("Ben", &ben), ("Ana", &ana)] {
        let read = clinician.ok(&["read", &thread]).await;
        assert!(!read.contains(&marker), "{who}: {read}");
        assert!(
            read.contains("Dr. Ana Alvarez recalled this message"),
            "{who}: {read}"
        );
    }

    // Its ciphertext is gone from the database's files and rows.
    let started = std::time::Instant::now();
    loop {
        let left = crate::mls::bytes_in_storage(&env, backend, &body).await;
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "the recalled ciphertext is still in {left} place(s)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The audit log has the recall, and the refused attempts.
    let page = admin
        .client
        .audit_search(&SearchQuery {
            action: Some("thread.message.recall".to_owned()),
            resource: Some(thread.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcomes: Vec<String> = page
        .entries
        .iter()
        .map(|recorded| format!("{:?} {:?}", recorded.entry.outcome, recorded.entry.reason))
        .collect();
    assert_eq!(page.entries.len(), 3, "{outcomes:?}");
    server.stop().await;
}
