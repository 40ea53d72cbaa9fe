//! The clinical workflow through the CLI: urgent messages re-alert and
//! then escalate to the on-call backup, who is added by a member's client,
//! reads the message and acknowledges it; an acknowledgement stops the
//! escalation; threads started with a role reach whoever holds it; a
//! clinician's new device joins all their threads, and a removed one can
//! decrypt nothing sent afterwards; devices that are not connected are
//! woken through a push gateway with ids only, retried when it fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use curbside_cli::Client;
use curbside_cli::store::{Profile, StoreContents};
use curbside_proto::audit::{AuditEntry, Outcome};
use curbside_proto::clinical::{Backup, EscalationPolicy, NewRole, NewShift, PushTokenRequest};
use curbside_proto::identity::Role;
use curbside_tests::{Backend, TestEnv, backend_tests};
use rustls_pki_types::pem::PemObject;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conversation::{Clinician, PASSPHRASE, created};
use crate::people::{Person, first_admin};
use crate::retention::audit;

backend_tests!(
    an_unacknowledged_urgent_message_reaches_the_backup,
    a_thread_with_a_role_reaches_whoever_holds_it,
    a_new_device_joins_every_thread_and_a_removed_one_reads_nothing_after,
    a_member_who_leaves_again_is_taken_out_of_the_group_again,
    devices_that_are_not_connected_are_woken_through_the_gateway,
);

/// Waits (up to `within`) for an audit entry with `action` whose evidence
/// contains `evidence`; returns it.
async fn audited(admin: &Person, action: &str, evidence: &str, within: Duration) -> AuditEntry {
    let started = Instant::now();
    loop {
        if let Some(entry) = audit(admin, action).await.into_iter().find(|entry| {
            entry
                .evidence
                .as_deref()
                .is_some_and(|found| found.contains(evidence))
        }) {
            return entry;
        }
        assert!(
            started.elapsed() < within,
            "no {action} entry with {evidence:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The profile's stored contents.
pub(crate) fn stored(clinician: &Clinician) -> StoreContents {
    Profile::new(clinician.home.path(), "default")
        .unwrap()
        .load(PASSPHRASE)
        .unwrap()
}

/// Another device of `of`'s user, enrolled through the CLI.
pub(crate) async fn second_device(admin: &Person, of: &Clinician) -> Clinician {
    let code = admin
        .client
        .issue_enrollment_code(&of.user_id)
        .await
        .unwrap();
    let device = Clinician {
        url: of.url.clone(),
        pin: of.pin.clone(),
        home: tempfile::tempdir().unwrap(),
        user_id: of.user_id.clone(),
    };
    device
        .run(&["enroll", "--code", &code.code, "--device-name", "phone"])
        .await
        .unwrap();
    device
}

/// The entry number in `send`'s output ("Sent to X (entry N)").
fn entry_of(output: &str) -> u64 {
    output
        .split("(entry ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no entry number in {output:?}"))
}

/// One row of `sql`, as (bytes, text).
async fn row(env: &TestEnv, sql: &str) -> (Vec<u8>, String) {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let found: (Vec<u8>, String) = sqlx::query_as(sql)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    found
}

async fn role(admin: &Person, name: &str, department: &str) -> String {
    admin
        .client
        .create_role(&NewRole {
            name: name.to_owned(),
            department: department.to_owned(),
        })
        .await
        .unwrap()
        .role_id
}

async fn shift(admin: &Person, role_id: &str, user_id: &str, from_ms: i64, to_ms: i64) {
    admin
        .client
        .assign_shift(
            role_id,
            &NewShift {
                user_id: user_id.to_owned(),
                starts_at_ms: from_ms,
                ends_at_ms: to_ms,
                timezone: "Europe/Paris".to_owned(),
            },
        )
        .await
        .unwrap();
}

fn now_ms() -> i64 {
    curbside_cli::clock::now_ms()
}

/// Nobody acknowledges an urgent message: its recipient is alerted again
/// after the policy's interval, then it escalates to whoever holds the
/// backup role; the sender's client, at its next ordinary command, adds
/// the backup and passes the message on; the backup reads it and
/// acknowledges it, which the sender sees. A second urgent message,
/// acknowledged at once, neither re-alerts nor escalates. The audit log
/// has each step in order.
async fn an_unacknowledged_urgent_message_reaches_the_backup(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll_as(
        &server,
        &admin,
        "Dr. Ana Alvarez",
        Role::Clinician,
        "Emergency",
    )
    .await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    let backup_role = role(&admin, "Cardiology backup", "Cardiology").await;
    shift(
        &admin,
        &backup_role,
        &cal.user_id,
        now_ms() - 60_000,
        now_ms() + 3_600_000,
    )
    .await;
    admin
        .client
        .set_escalation_policy(&EscalationPolicy {
            department: "Cardiology".to_owned(),
            realert_after_s: 2,
            escalate_after_s: 4,
            backup: Backup::Role {
                role_id: backup_role.clone(),
            },
        })
        .await
        .unwrap();
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--subject",
            "Bed 12",
        ])
        .await,
    );
    ben.ok(&["read", &thread]).await;

    let text = format!("BP 70/40, please come now {}", std::process::id());
    let sent_at = now_ms();
    let sent = ana.ok(&["send", &thread, &text, "--urgent"]).await;
    assert!(sent.contains("urgently"), "{sent}");
    let seq = entry_of(&sent);
    let evidence = format!("seq={seq}");

    // Not acknowledged: alerted again after 2 s, escalated after 4 s.
    let realert = audited(
        &admin,
        "thread.urgent.realert",
        &evidence,
        Duration::from_secs(15),
    )
    .await;
    assert!(realert.time_ms - sent_at >= 2_000, "re-alerted too soon");
    assert_eq!(realert.actor_user, None);
    assert_eq!(realert.resource_id.as_deref(), Some(thread.as_str()));
    let escalate = audited(
        &admin,
        "thread.urgent.escalate",
        &evidence,
        Duration::from_secs(15),
    )
    .await;
    assert!(escalate.time_ms - sent_at >= 4_000, "escalated too soon");
    assert_eq!(escalate.outcome, Outcome::Allowed);
    assert_eq!(escalate.reason, "backup_invited");
    assert!(
        escalate
            .evidence
            .as_deref()
            .is_some_and(|evidence| evidence.contains(&format!("to={}", cal.user_id))),
        "{escalate:?}"
    );

    // Cal is not in the thread yet: nothing of it is his to read.
    assert!(cal.run(&["read", &thread]).await.is_err());
    // Ana's ordinary use of her client adds Cal and passes the message on.
    ana.ok(&["read", &thread]).await;
    let read = cal.ok(&["read", "Bed 12"]).await;
    assert!(read.contains(&text), "{read}");
    assert!(
        read.contains(&format!(
            "passed on URGENT message {seq} from Dr. Ana Alvarez"
        )),
        "{read}"
    );
    let acked = cal.ok(&["ack", "Bed 12"]).await;
    assert!(
        acked.contains(&format!(
            "Acknowledged urgent message {seq} from Dr. Ana Alvarez"
        )),
        "{acked}"
    );
    let shown = ana.ok(&["thread", "show", &thread]).await;
    assert!(
        shown.contains(
            "urgent, acknowledged; acknowledged by Dr. Cal Chen; escalated to Dr. Cal Chen"
        ),
        "{shown}"
    );

    // The audit log, in order: the urgent send, the re-alert, the
    // escalation, the commit that added Cal, his acknowledgement.
    let send = audit(&admin, "thread.message.send")
        .await
        .into_iter()
        .find(|entry| entry.evidence.as_deref() == Some("urgent"))
        .expect("the urgent send is audited as such");
    let add = audit(&admin, "thread.commit")
        .await
        .into_iter()
        .filter(|entry| entry.resource_id.as_deref() == Some(thread.as_str()))
        .find(|entry| entry.seq > escalate.seq)
        .expect("the commit that added the backup");
    assert_eq!(add.actor_user.as_deref(), Some(ana.user_id.as_str()));
    let ack = audit(&admin, "thread.urgent.ack")
        .await
        .into_iter()
        .find(|entry| entry.evidence.as_deref() == Some(evidence.as_str()))
        .expect("the acknowledgement");
    assert_eq!(ack.actor_user.as_deref(), Some(cal.user_id.as_str()));
    let order = [send.seq, realert.seq, escalate.seq, add.seq, ack.seq];
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");

    // Acknowledged at once: no re-alert, no escalation.
    let second = entry_of(
        &ana.ok(&["send", &thread, "Second: K+ 7.1", "--urgent"])
            .await,
    );
    let acked = ben.ok(&["ack", &thread]).await;
    assert!(
        acked.contains(&format!("urgent message {second}")),
        "{acked}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let second_evidence = format!("seq={second}");
    for action in ["thread.urgent.realert", "thread.urgent.escalate"] {
        assert!(
            !audit(&admin, action).await.iter().any(|entry| entry
                .evidence
                .as_deref()
                .is_some_and(|found| found.split(' ').any(|part| part == second_evidence))),
            "{action} after an acknowledgement"
        );
    }
    let detail = ana.ok(&["thread", "show", &thread]).await;
    assert!(detail.contains("acknowledged by Dr. Ben Brown"), "{detail}");
    // An acknowledgement of one's own, or of what is not urgent, says what to do.
    let own = ana
        .run(&["ack", &thread, &second.to_string()])
        .await
        .unwrap_err();
    assert!(
        own.to_string().contains("its recipients acknowledge it"),
        "{own}"
    );
    server.stop().await;
}

/// A thread started with a role reaches whoever holds it at that moment;
/// after a handoff, the next one reaches the next holder, and the
/// directory shows it.
async fn a_thread_with_a_role_reaches_whoever_holds_it(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    let on_call = role(&admin, "Cardiology on-call", "Cardiology").await;
    let handoff_ms = now_ms() + 3_000;
    shift(
        &admin,
        &on_call,
        &ben.user_id,
        now_ms() - 60_000,
        handoff_ms + 60_000,
    )
    .await;
    shift(
        &admin,
        &on_call,
        &cal.user_id,
        handoff_ms,
        handoff_ms + 3_600_000,
    )
    .await;
    let roles = ana.ok(&["directory", "roles"]).await;
    assert!(roles.contains("now: Dr. Ben Brown"), "{roles}");
    assert!(roles.contains("next: Dr. Cal Chen"), "{roles}");

    let first = ana
        .ok(&[
            "thread",
            "new",
            "--with-role",
            "cardiology ON-CALL",
            "--subject",
            "Chest pain, bed 3",
        ])
        .await;
    assert!(
        first.contains("Dr. Ben Brown holds Cardiology on-call"),
        "{first}"
    );
    let first = created(&first);
    ana.ok(&["send", &first, "Troponin rising"]).await;
    assert!(
        ben.ok(&["read", "Chest pain, bed 3"])
            .await
            .contains("Troponin rising")
    );

    // The shift changes hands.
    let wait = handoff_ms - now_ms() + 200;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap())).await;
    }
    let roles = ana.ok(&["directory", "roles"]).await;
    assert!(roles.contains("now: Dr. Cal Chen"), "{roles}");
    let second = ana
        .ok(&[
            "thread",
            "new",
            "--with-role",
            "Cardiology on-call",
            "--subject",
            "Syncope, bed 8",
        ])
        .await;
    assert!(
        second.contains("Dr. Cal Chen holds Cardiology on-call"),
        "{second}"
    );
    let second = created(&second);
    ana.ok(&["send", &second, "ECG attached soon"]).await;
    assert!(
        cal.ok(&["read", "Syncope, bed 8"])
            .await
            .contains("ECG attached soon")
    );
    // Ben, off duty, is not in it.
    assert!(ben.run(&["read", &second]).await.is_err());
    // A role nobody holds says so; an unknown one says how to find them.
    let vacant = role(&admin, "Night registrar", "Medicine").await;
    assert!(!vacant.is_empty());
    let error = ana
        .run(&["thread", "new", "--with-role", "Night registrar"])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("nobody holds Night registrar right now"),
        "{error}"
    );
    let error = ana
        .run(&["thread", "new", "--with-role", "Astrology"])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("curbside directory roles"),
        "{error}"
    );
    let shifts = audit(&admin, "admin.role.assign").await;
    assert_eq!(shifts.len(), 2);
    server.stop().await;
}

/// Ben's second device, enrolled after three threads exist, reads new
/// messages in all three, with nothing typed on any profile but Ana's
/// ordinary `send`s and its own `read`s. Once removed, it cannot decrypt
/// what Ana sends next with what it stored: her client removed it from
/// the MLS group first.
async fn a_new_device_joins_every_thread_and_a_removed_one_reads_nothing_after(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let mut threads = Vec::new();
    for subject in ["Bed 1", "Bed 2", "Bed 3"] {
        threads.push(created(
            &ana.ok(&[
                "thread",
                "new",
                "--with",
                "Dr. Ben Brown",
                "--subject",
                subject,
            ])
            .await,
        ));
    }
    let phone = second_device(&admin, &ben).await;
    for (n, thread) in threads.iter().enumerate() {
        ana.ok(&["send", thread, &format!("New result {n}")]).await;
    }
    for (n, subject) in ["Bed 1", "Bed 2", "Bed 3"].iter().enumerate() {
        let read = phone.ok(&["read", subject]).await;
        assert!(read.contains(&format!("New result {n}")), "{read}");
    }
    // Ben's first device still reads them too.
    assert!(ben.ok(&["read", "Bed 2"]).await.contains("New result 1"));

    // The phone is removed; Ana's next message is sent after her client
    // removed it from the group.
    let phone_state = stored(&phone);
    admin
        .client
        .remove_device(&ben.user_id, &phone_state.device_id)
        .await
        .unwrap();
    let secret = format!("After removal {}", std::process::id());
    ana.ok(&["send", &threads[0], &secret]).await;
    let thread = &threads[0];
    let (_, removed) = row(
        &env,
        &format!(
            "SELECT body, COALESCE(removed, '') FROM thread_entry WHERE thread_id = '{thread}' \
             AND kind = 'commit' ORDER BY seq DESC LIMIT 1"
        ),
    )
    .await;
    assert!(
        removed.contains(&phone_state.device_id),
        "no commit removed the phone"
    );
    let (body, sender) = row(
        &env,
        &format!(
            "SELECT body, sender_device FROM thread_entry WHERE thread_id = '{thread}' \
             AND kind = 'application' ORDER BY seq DESC LIMIT 1"
        ),
    )
    .await;
    let device = curbside_cli::mls::Device::new(
        &phone_state.user_id,
        &phone_state.device_id,
        &phone_state.device_key_pkcs8,
        phone_state
            .mls_state
            .iter()
            .map(|value| (value.key.clone(), value.value.clone()))
            .collect(),
    )
    .unwrap();
    let opened = device.process(thread, &sender, &body, None);
    assert!(
        opened.is_err(),
        "the removed device decrypted a later message"
    );
    // The other threads lost it too, at Ana's next message there.
    ana.ok(&["send", &threads[1], "Still here"]).await;
    let read = ben.ok(&["read", "Bed 1"]).await;
    assert!(read.contains(&secret), "{read}");
    server.stop().await;
}

/// Waits (up to 40 s) for a commit of `thread` whose `column` (`added`
/// or `removed`) names `device`; returns the user who made it.
pub(crate) async fn commit_naming(
    env: &TestEnv,
    thread: &str,
    column: &str,
    device: &str,
) -> String {
    let started = Instant::now();
    loop {
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(env.database_url())
            .await
            .unwrap();
        let found: Option<String> = sqlx::query_scalar(&format!(
            "SELECT sender_user FROM thread_entry WHERE thread_id = '{thread}' \
             AND kind = 'commit' AND {column} LIKE '%{device}%' ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&mut connection)
        .await
        .unwrap();
        connection.close().await.unwrap();
        if let Some(sender) = found {
            return sender;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no commit {column} {device} in {thread}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The device ids the last commit of `thread` removed.
async fn last_removed(env: &TestEnv, thread: &str) -> String {
    row(
        env,
        &format!(
            "SELECT body, COALESCE(removed, '') FROM thread_entry WHERE thread_id = '{thread}' \
             AND kind = 'commit' ORDER BY seq DESC LIMIT 1"
        ),
    )
    .await
    .1
}

/// Ben leaves; Ana's next message is sent after her client took his
/// device out of the group. Added back, he reads again; when he leaves a
/// second time, he is taken out again (his membership, made afresh, no
/// longer says he was).
async fn a_member_who_leaves_again_is_taken_out_of_the_group_again(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let ben_device = stored(&ben).device_id.clone();
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--subject",
            "Bed 30",
        ])
        .await,
    );
    ben.ok(&["read", &thread]).await;
    for round in 0..2 {
        ben.ok(&["thread", "leave", &thread]).await;
        ana.ok(&["send", &thread, &format!("After leaving {round}")])
            .await;
        assert!(
            last_removed(&env, &thread).await.contains(&ben_device),
            "round {round}: Ben's device is still in the group"
        );
        ana.ok(&["thread", "add", &thread, "Dr. Ben Brown"]).await;
        ana.ok(&["send", &thread, &format!("Welcome back {round}")])
            .await;
        let read = ben.ok(&["read", &thread]).await;
        assert!(read.contains(&format!("Welcome back {round}")), "{read}");
        assert!(!read.contains(&format!("After leaving {round}")), "{read}");
    }
    server.stop().await;
}

/// A push gateway on loopback, speaking HTTP/1.1 over TLS: it records
/// each notice's body and answers 500 to the first `fail` of them.
struct Gateway {
    url: String,
    ca: std::path::PathBuf,
    notices: tokio::sync::mpsc::UnboundedReceiver<(Instant, serde_json::Value)>,
    fail: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::certificates::write_ca_and_leaf(dir.path(), "Gateway test CA");
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(dir.path().join("leaf.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_file(dir.path().join("leaf.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, notices) = tokio::sync::mpsc::unbounded_channel();
        let fail = Arc::new(AtomicUsize::new(0));
        let failing = fail.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                let failing = failing.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then the body by its Content-Length.
                    let (head_end, length) = loop {
                        let Ok(n) = tls.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|value| value.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let Ok(n) = tls.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&buffer[head_end..head_end + length])
                            .unwrap_or(serde_json::Value::Null);
                    let _ = sender.send((Instant::now(), body));
                    let failed = failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                            left.checked_sub(1)
                        })
                        .is_ok();
                    let answer: &[u8] = if failed {
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"rejected\":[]}"
                    };
                    let _ = tls.write_all(answer).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            url: format!("https://localhost:{port}/_matrix/push/v1/notify"),
            ca,
            notices,
            fail,
            _dir: dir,
        }
    }

    /// The next notice, and how long after `since` it came.
    async fn next(&mut self, since: Instant) -> (Duration, serde_json::Value) {
        let (at, body) = tokio::time::timeout(Duration::from_secs(10), self.notices.recv())
            .await
            .expect("no notice reached the gateway")
            .unwrap();
        (at.saturating_duration_since(since), body)
    }
}

/// Ben's device registered a push token and is not connected: each of
/// Ana's messages reaches the gateway within a second, as ids and a
/// priority only; a gateway that fails is tried again, and each try is
/// audited.
async fn devices_that_are_not_connected_are_woken_through_the_gateway(backend: Backend) {
    let mut gateway = Gateway::start().await;
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.push_gateway = Some(curbside_server::config::PushGateway {
        url: gateway.url.parse().unwrap(),
        ca: Some(gateway.ca.clone()),
    });
    let server = env.start_with(config, axum::Router::new()).await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--subject",
            "Bed 20",
        ])
        .await,
    );
    ben.ok(&["read", &thread]).await;
    let ben_state = stored(&ben);
    let mut ben_client = Client::new(
        &server.url,
        &curbside_cli::Trust::from_options(Some(server.fingerprint), None),
    )
    .unwrap();
    ben_client.set_token(
        ben_state
            .session
            .as_ref()
            .map(|session| session.token.clone()),
    );
    let token = format!("pushkey-{}", std::process::id());
    ben_client
        .register_push_token(&PushTokenRequest {
            app_id: "org.example.curbside".to_owned(),
            token: token.clone(),
        })
        .await
        .unwrap();

    let text = format!("Lactate 6.2 {}", std::process::id());
    let seq = entry_of(&ana.ok(&["send", &thread, &text]).await);
    let sent = Instant::now();
    let (after, notice) = gateway.next(sent).await;
    assert!(after < Duration::from_secs(1), "the notice took {after:?}");
    let expected = serde_json::json!({
        "notification": {
            "event_id": seq.to_string(),
            "room_id": thread,
            "prio": "low",
            "devices": [{"app_id": "org.example.curbside", "pushkey": token}],
        }
    });
    assert_eq!(
        notice, expected,
        "the notice carries ids and the priority only"
    );
    let raw = notice.to_string();
    for secret in [text.as_str(), "Bed 20", "Ana", &ana.user_id] {
        assert!(!raw.contains(secret), "{secret:?} reached the gateway");
    }

    // Urgent: high priority.
    let urgent = entry_of(&ana.ok(&["send", &thread, "Come now", "--urgent"]).await);
    let (_, notice) = gateway.next(Instant::now()).await;
    assert_eq!(notice["notification"]["prio"], "high");
    assert_eq!(notice["notification"]["event_id"], urgent.to_string());

    // The gateway fails twice: the notice is tried again, and comes.
    gateway.fail.store(2, Ordering::SeqCst);
    let third = entry_of(&ana.ok(&["send", &thread, "Repeat lactate ordered"]).await);
    let started = Instant::now();
    for _ in 0..3 {
        let (_, notice) = gateway.next(started).await;
        assert_eq!(notice["notification"]["event_id"], third.to_string());
    }
    let evidence = format!("seq={third} ");
    let started = Instant::now();
    let tries = loop {
        let tries: Vec<AuditEntry> = audit(&admin, "push.gateway.notify")
            .await
            .into_iter()
            .filter(|entry| {
                entry
                    .evidence
                    .as_deref()
                    .is_some_and(|found| found.contains(&evidence))
            })
            .collect();
        if tries.len() >= 3 || started.elapsed() > Duration::from_secs(10) {
            break tries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let outcomes: Vec<(Outcome, &str)> = tries
        .iter()
        .map(|entry| (entry.outcome, entry.reason.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Outcome::Denied, "gateway_error"),
            (Outcome::Denied, "gateway_error"),
            (Outcome::Allowed, "ok")
        ]
    );
    assert!(
        tries
            .iter()
            .all(|entry| entry.resource_id.as_deref() == Some(ben_state.device_id.as_str())),
        "{tries:?}"
    );
    // Nothing more: each notice went once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(gateway.notices.try_recv().is_err());
    server.stop().await;
}
