//! Live delivery over `/v1/events`: a connected member device gets each new
//! entry, welcome and receipt within a second, in order; others get
//! nothing; the socket closes when the session ends.

use std::sync::Arc;
use std::time::Duration;

use curbside_cli::Trust;
use curbside_proto::threads::{EntryKind, Event, ReceiptKind};
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::people::Person;
use crate::threads::{blob, commit, send, three};

/// The close code of a session that was ended (logout, idle, removal).
const ENDED: u16 = 4401;
/// The close code of a session whose lifetime ran out.
const EXPIRED: u16 = 4402;

backend_tests!(
    a_connected_member_receives_each_event_at_once,
    a_removed_device_is_pushed_nothing_more,
    the_commit_that_removes_a_device_reaches_it,
    an_expired_session_is_told_to_sign_in_again,
    pushes_cross_between_replicas,
    a_new_policy_version_closes_live_events_until_accepted,
    a_browser_opens_live_events_with_a_single_use_ticket,
);

/// The close code of a socket whose user has a policy version to accept.
const POLICY_NOT_ACCEPTED: u16 = 4403;

type Socket = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens `/v1/events` with `token` in the header, over TLS pinned to the
/// server (HTTP/1.1, as WebSocket upgrades are).
async fn connect(server: &TestServer, token: &str) -> Socket {
    connect_to(server.address, server.fingerprint, token).await
}

async fn connect_to(
    address: std::net::SocketAddr,
    fingerprint: curbside_proto::CertificateFingerprint,
    token: &str,
) -> Socket {
    let header = ("authorization", format!("Bearer {token}"));
    upgrade(address, fingerprint, "/v1/events", &header)
        .await
        .unwrap()
        .0
}

/// Asks for a WebSocket at `path` with one extra header: the socket and
/// the subprotocol the server chose, or the refusal's status.
async fn upgrade(
    address: std::net::SocketAddr,
    fingerprint: curbside_proto::CertificateFingerprint,
    path: &str,
    (name, value): &(&'static str, String),
) -> Result<(Socket, Option<String>), u16> {
    let mut config = curbside_cli::trust::client_config(&Trust::Pin(fingerprint)).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await.unwrap();
    let server_name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(server_name, tcp).await.unwrap();
    let mut request = format!("wss://localhost:{}{path}", address.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(*name, value.parse().unwrap());
    match tokio_tungstenite::client_async(request, tls).await {
        Ok((socket, response)) => {
            assert_eq!(response.status(), 101);
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|value| value.to_str().unwrap().to_owned());
            Ok((socket, protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("{error}"),
    }
}

/// A live-events ticket for `person`'s session, as a browser asks for one.
async fn ticket(server: &TestServer, person: &Person) -> String {
    let answer: serde_json::Value = server
        .http1()
        .post(format!("{}/v1/events/ticket", server.url))
        .bearer_auth(person.token())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["ticket"].as_str().unwrap().to_owned()
}

/// The subprotocols a browser offers: the events protocol and the ticket.
fn offering(ticket: &str) -> (&'static str, String) {
    (
        "sec-websocket-protocol",
        format!("curbside.events, curbside.ticket.{ticket}"),
    )
}

/// A browser's WebSocket cannot send `Authorization`: it opens the socket
/// with a ticket, which serves once, within its lifetime, for a live
/// session, and on this route only.
async fn a_browser_opens_live_events_with_a_single_use_ticket(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (address, pin) = (server.address, server.fingerprint);
    let (_admin, ana, ben, _cal, thread) = three(&server).await;

    // The ticket opens Ben's socket, which gets what Ana sends.
    let first = ticket(&server, &ben).await;
    let (mut socket, protocol) = upgrade(address, pin, "/v1/events", &offering(&first))
        .await
        .unwrap();
    assert_eq!(protocol.as_deref(), Some("curbside.events"));
    send(&ana.client, &thread, 1, "to the browser")
        .await
        .unwrap();
    match next(&mut socket, SOON).await {
        Ok(Some(Event::Entry { thread_id, .. })) => assert_eq!(thread_id, thread),
        other => panic!("expected the entry, got {other:?}"),
    }

    // Used once, it opens nothing more; nor does a made-up one.
    let again = upgrade(address, pin, "/v1/events", &offering(&first)).await;
    assert_eq!(again.err(), Some(401));
    let made_up = offering("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        upgrade(address, pin, "/v1/events", &made_up).await.err(),
        Some(401)
    );

    // Expired, it is refused.
    let stale = ticket(&server, &ben).await;
    crate::storage::execute(&env, "UPDATE events_ticket SET expires_at_ms = 1").await;
    let late = upgrade(address, pin, "/v1/events", &offering(&stale)).await;
    assert_eq!(late.err(), Some(401));

    // No other route takes a ticket in place of the token.
    let elsewhere = ticket(&server, &ben).await;
    let threads = server
        .http1()
        .get(format!("{}/v1/threads", server.url))
        .header("sec-websocket-protocol", offering(&elsewhere).1)
        .send()
        .await
        .unwrap();
    assert_eq!(threads.status(), 401);

    // A ticket outlives nothing: after logout, the session it was for is over.
    let orphan = ticket(&server, &ben).await;
    ben.client.logout().await.unwrap();
    let ended = upgrade(address, pin, "/v1/events", &offering(&orphan)).await;
    assert_eq!(ended.err(), Some(401));
    server.stop().await;
}

/// The next event within `wait`, `Err(code)` if the server closed the
/// socket, or `Ok(None)` if nothing came.
async fn next(socket: &mut Socket, wait: Duration) -> Result<Option<Event>, u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Ok(None),
            Ok(None) => return Err(0),
            Ok(Some(message)) => message.unwrap(),
        };
        match message {
            Message::Text(text) => {
                return Ok(Some(curbside_proto::json::decode(text.as_bytes()).unwrap()));
            }
            Message::Close(frame) => return Err(frame.map_or(0, |frame| frame.code.into())),
            _ => {}
        }
    }
}

const SOON: Duration = Duration::from_secs(1);

/// How many thread entries the audit log records as pushed to `reader`.
async fn pushes_recorded(admin: &Person, reader: &Person) -> usize {
    let page = admin
        .client
        .audit_search(&curbside_proto::audit_review::SearchQuery {
            action: Some("thread.entries.push".to_owned()),
            actor: Some(reader.user.user_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    page.entries.len()
}

async fn a_connected_member_receives_each_event_at_once(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (admin, ana, ben, cal, thread) = three(&server).await;
    let mut ben_socket = connect(&server, ben.token()).await;
    let mut ana_socket = connect(&server, ana.token()).await;
    let mut outsider = connect(&server, admin.token()).await;
    let mut cal_socket = connect(&server, cal.token()).await;

    // Each message reaches the other member within a second, in order.
    for i in 1..=3u64 {
        send(&ana.client, &thread, 1, &format!("message {i}"))
            .await
            .unwrap();
        match next(&mut ben_socket, SOON).await {
            Ok(Some(Event::Entry { thread_id, entry })) => {
                assert_eq!(thread_id, thread);
                assert_eq!((entry.seq, entry.kind), (i, EntryKind::Application));
                assert_eq!(entry.body, blob(&format!("message {i}")));
            }
            other => panic!("expected entry {i}, got {other:?}"),
        }
    }

    // Adding Cal: the members see the commit, Cal gets his welcome.
    ana.client
        .commit(&thread, &commit(1, &[&cal], &[]))
        .await
        .unwrap();
    match next(&mut ben_socket, SOON).await {
        Ok(Some(Event::Entry { entry, .. })) => assert_eq!(entry.kind, EntryKind::Commit),
        other => panic!("expected the commit, got {other:?}"),
    }
    match next(&mut cal_socket, SOON).await {
        Ok(Some(Event::Welcome { welcome })) => {
            assert_eq!(
                (welcome.thread_id.as_str(), welcome.joined_seq),
                (thread.as_str(), 4)
            );
        }
        other => panic!("expected a welcome, got {other:?}"),
    }

    // A read receipt reaches the others.
    ben.receipt(&thread, 3, true).await.unwrap();
    let mut saw_receipt = false;
    while let Ok(Some(event)) = next(&mut ana_socket, SOON).await {
        if let Event::Receipt {
            kind, user_id, seq, ..
        } = event
        {
            assert_eq!(
                (kind, user_id.as_str(), seq),
                (ReceiptKind::Read, ben.user.user_id.as_str(), 3)
            );
            saw_receipt = true;
            break;
        }
    }
    assert!(saw_receipt, "no read receipt");

    // Someone who is not a member heard nothing.
    assert_eq!(
        next(&mut outsider, Duration::from_millis(300)).await,
        Ok(None)
    );

    // Each push was a read of the thread, on the record.
    assert_eq!(pushes_recorded(&admin, &ben).await, 4);

    // Ending the session closes the socket (within the re-check interval).
    ben.client.logout().await.unwrap();
    let closed = loop {
        match next(&mut ben_socket, Duration::from_secs(8)).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the socket stayed open after logout"),
            Err(code) => break code,
        }
    };
    assert_eq!(closed, ENDED);
}

async fn a_removed_device_is_pushed_nothing_more(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (admin, ana, ben, _cal, thread) = three(&server).await;
    let mut ben_socket = connect(&server, ben.token()).await;
    send(&ana.client, &thread, 1, "before").await.unwrap();
    match next(&mut ben_socket, SOON).await {
        Ok(Some(Event::Entry { entry, .. })) => assert_eq!(entry.seq, 1),
        other => panic!("expected entry 1, got {other:?}"),
    }

    // Ben's device is removed while its socket is open (the session
    // re-check that closes it comes up to 5 s later): what Ana sends now
    // is not pushed to it, nor recorded as read by it.
    admin
        .client
        .remove_device(&ben.user.user_id, &ben.device_id)
        .await
        .unwrap();
    send(&ana.client, &thread, 1, "after").await.unwrap();
    let deadline = tokio::time::Instant::now() + SOON;
    while tokio::time::Instant::now() < deadline {
        match next(&mut ben_socket, Duration::from_millis(100)).await {
            Ok(Some(Event::Entry { entry, .. })) => {
                panic!("a removed device was pushed entry {}", entry.seq)
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(pushes_recorded(&admin, &ben).await, 1);
}

/// A member removed by a commit is pushed that commit (and nothing
/// after it): it is how a watching device learns of its removal at once.
async fn the_commit_that_removes_a_device_reaches_it(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (_admin, ana, ben, _cal, thread) = three(&server).await;
    let mut ben_socket = connect(&server, ben.token()).await;
    let removed = ana
        .client
        .commit(&thread, &commit(1, &[], &[&ben]))
        .await
        .unwrap();
    match next(&mut ben_socket, SOON).await {
        Ok(Some(Event::Entry { entry, .. })) => {
            assert_eq!(entry.seq, removed.seq);
            assert_eq!(entry.kind, EntryKind::Commit);
        }
        other => panic!("expected the commit that removed Ben, got {other:?}"),
    }
    send(&ana.client, &thread, 2, "after").await.unwrap();
    assert_eq!(
        next(&mut ben_socket, Duration::from_millis(500)).await,
        Ok(None),
        "a former member was pushed what came after its removal"
    );
}

/// A session whose lifetime runs out while its socket is open is closed
/// with 4402 (sign in again), not 4401 (ended: stop).
async fn an_expired_session_is_told_to_sign_in_again(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.token_lifetime = Duration::from_secs(20);
    let server = env.start_with(config, axum::Router::new()).await;
    let (_admin, _ana, ben, _cal, _thread) = three(&server).await;
    let mut ben_socket = connect(&server, ben.token()).await;
    let closed = loop {
        match next(&mut ben_socket, Duration::from_secs(40)).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the socket stayed open after its session expired"),
            Err(code) => break code,
        }
    };
    assert_eq!(closed, EXPIRED);
}

async fn pushes_cross_between_replicas(backend: Backend) {
    if backend == Backend::Sqlite {
        // Replicas share PostgreSQL; a SQLite file belongs to one server.
        curbside_tests::skipped(
            "pushes_cross_between_replicas on SQLite",
            "replicas share PostgreSQL",
        );
        return;
    }
    const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");
    let env = TestEnv::new(backend).await;
    let first = curbside_tests::ServerProcess::start(&env, SERVER, &[], true);
    let second = curbside_tests::ServerProcess::start(&env, SERVER, &[], false);
    let mut admin = crate::people::enroll_with(
        first.client(),
        first.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    admin.login().await;
    // Ana works through the first replica, Ben through the second.
    let role = curbside_proto::identity::Role::Clinician;
    let ana = crate::people::person_on(first.client(), &admin, "Dr. Ana", role).await;
    let ben = crate::people::person_on(second.client(), &admin, "Dr. Ben", role).await;
    let thread = crate::threads::thread_id(3);
    ana.client
        .create_thread(&curbside_proto::threads::NewThread {
            thread_id: thread.clone(),
            epoch: 1,
            devices: vec![ben.device_id.clone()],
            welcome: blob("welcome"),
        })
        .await
        .unwrap();
    let address =
        |url: &str| -> std::net::SocketAddr { url.trim_start_matches("https://").parse().unwrap() };
    let mut ben_socket = connect_to(address(&second.url), second.fingerprint, ben.token()).await;
    for i in 1..=3u64 {
        send(&ana.client, &thread, 1, &format!("across {i}"))
            .await
            .unwrap();
        loop {
            match next(&mut ben_socket, SOON).await {
                Ok(Some(Event::Entry { entry, .. })) => {
                    assert_eq!(entry.seq, i);
                    assert_eq!(entry.body, blob(&format!("across {i}")));
                    break;
                }
                // The thread's welcome is pushed too, through the first
                // replica's NOTIFY, which can reach the second after its
                // socket opened and before or after the first message's.
                Ok(Some(Event::Welcome { .. })) => {}
                other => panic!("expected entry {i} on the other replica, got {other:?}"),
            }
        }
    }
}

/// A socket opened before a policy version was published does not keep
/// carrying threads: it is closed within the session re-check (5 s) with
/// 4403, a new one is refused until the user accepts, then works again.
async fn a_new_policy_version_closes_live_events_until_accepted(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (admin, ana, ben, _cal, thread) = three(&server).await;
    let mut ben_socket = connect(&server, ben.token()).await;
    admin
        .client
        .publish_policy("Use initials, never full names.")
        .await
        .unwrap();
    let closed = next(&mut ben_socket, Duration::from_secs(8)).await;
    assert_eq!(closed, Err(POLICY_NOT_ACCEPTED), "{closed:?}");
    let refused = ben
        .client
        .events()
        .await
        .err()
        .map(|error| error.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|message| message.contains("curbside policy accept")),
        "{refused:?}"
    );
    let version = ben.client.policy().await.unwrap().current.unwrap().version;
    ben.client.accept_policy(version).await.unwrap();
    let mut ben_socket = connect(&server, ben.token()).await;
    ana.client.accept_policy(version).await.unwrap();
    send(&ana.client, &thread, 1, "after the policy")
        .await
        .unwrap();
    match next(&mut ben_socket, SOON).await {
        Ok(Some(Event::Entry { entry, .. })) => {
            assert_eq!(entry.body, blob("after the policy"));
        }
        other => panic!("expected the new entry, got {other:?}"),
    }
    server.stop().await;
}
