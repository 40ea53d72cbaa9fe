//! No client can starve the server of connections: every phase of a
//! connection has a deadline, and one address holds at most its share of
//! the slots. Each attack is made as an attacker would, over real TLS, while
//! a normal client checks the server's health throughout.
//!
//! These tests exercise the accept loop, not storage, so they run on
//! SQLite only.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use curbside_tests::{Backend, TestEnv, TestServer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long every held connection may live, per the issue.
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn idle_half_open_and_trickling_connections_are_closed() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env.start().await;
    attack_while_probing(&server, None).await;
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut config = env.config();
    config.max_connections = 50;
    let server = env.start_with(config, axum::Router::new()).await;
    // The prober comes from another loopback address than the attacker.
    attack_while_probing(&server, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))).await;
    server.stop().await;
}

/// A client that pipelines requests and never reads the answers: once the
/// server's writes have waited 30 s for it, the connection is dropped.
#[tokio::test]
async fn a_client_that_never_reads_is_dropped() {
    use tokio::io::AsyncWriteExt;
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env.start().await;
    let mut config =
        curbside_cli::trust::client_config(&curbside_cli::Trust::Pin(server.fingerprint)).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive window, so the server's writes soon wait.
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.address).await.unwrap();
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let opened = Instant::now();
    let request = b"GET /v1/nothing-here HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(64);
    // Writes go on until the server stops reading (its own writes wait) and
    // then drops the connection.
    let dropped = loop {
        let written =
            tokio::time::timeout(Duration::from_secs(60), stream.write_all(&request)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break opened.elapsed(),
            Err(_) => panic!("writes were blocked for 60 s and the connection was not dropped"),
        }
        assert!(
            opened.elapsed() < Duration::from_secs(90),
            "the connection was not dropped"
        );
    };
    eprintln!("a client that never reads was dropped after {dropped:?}");
    assert!(
        dropped < Duration::from_secs(60),
        "dropped only after {dropped:?}"
    );
    server.client().health().await.unwrap();
    server.stop().await;
}

/// WebSockets keep their connection's slot and their address's share: one
/// address cannot open more than its share of them, and a closed one frees
/// its place.
#[tokio::test]
async fn websockets_count_against_the_connection_limits() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut config = env.config();
    config.max_connections = 8;
    config.max_connections_per_address = Some(3);
    let server = env.start_with(config, axum::Router::new()).await;
    let admin = crate::people::first_admin(&server).await;
    // The sockets come from an address of their own.
    let mut from_three = curbside_cli::Client::new_from(
        &server.url,
        &curbside_cli::Trust::Pin(server.fingerprint),
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))),
    )
    .unwrap();
    from_three.set_token(Some(admin.token().to_owned()));
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(from_three.events().await.unwrap());
    }
    // The share is held by the open sockets: a fourth connection from this
    // address is closed at once, socket or not.
    assert!(from_three.events().await.is_err());
    assert!(from_three.whoami().await.is_err());
    // Another address is served.
    admin.client.whoami().await.unwrap();
    // Closing one frees its place.
    drop(sockets.pop());
    let started = Instant::now();
    loop {
        if from_three.whoami().await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// Opens 200 connections that finish TLS and send nothing, 200 that stop
/// half-way through the HTTP/2 preface and 50 that trickle a request
/// body, all from 127.0.0.1, and checks that each is closed within
/// [`CLOSED_WITHIN`] while health checks (from `prober` if given) keep
/// being answered.
async fn attack_while_probing(server: &TestServer, prober: Option<IpAddr>) {
    let connector = TlsConnector::from(Arc::new(
        curbside_cli::trust::client_config(&curbside_cli::Trust::Pin(server.fingerprint)).unwrap(),
    ));
    let probe = {
        let client = match prober {
            Some(local) => server.http1_from(local),
            None => server.http1(),
        };
        let url = format!("{}/v1/health", server.url);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut answered = 0;
            while started.elapsed() < CLOSED_WITHIN + Duration::from_secs(2) {
                let asked = Instant::now();
                let response =
                    tokio::time::timeout(Duration::from_secs(3), client.get(&url).send())
                        .await
                        .unwrap_or_else(|_| {
                            panic!("health went unanswered for 3 s at {:?}", started.elapsed())
                        })
                        .unwrap_or_else(|error| {
                            panic!("health failed at {:?}: {error}", started.elapsed())
                        });
                assert!(response.status().is_success(), "{}", response.status());
                answered += 1;
                tokio::time::sleep(Duration::from_millis(250).saturating_sub(asked.elapsed()))
                    .await;
            }
            answered
        })
    };

    let mut attacks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        attacks.spawn(silent(connector.clone(), server.address, b"http/1.1"));
    }
    for _ in 0..200 {
        attacks.spawn(partial_http2_preface(connector.clone(), server.address));
    }
    for _ in 0..50 {
        attacks.spawn(trickling_body(connector.clone(), server.address));
    }
    let mut longest = Duration::ZERO;
    let mut count = 0;
    while let Some(held) = attacks.join_next().await {
        let held = held.unwrap();
        assert!(
            held <= CLOSED_WITHIN,
            "an attacking connection was held for {held:?}"
        );
        longest = longest.max(held);
        count += 1;
    }
    assert_eq!(count, 450);
    let answered = probe.await.unwrap();
    assert!(
        answered >= 40,
        "only {answered} health checks were answered"
    );
    eprintln!("longest attacking connection: {longest:?}; {answered} health checks answered");
}

async fn connect(
    connector: &TlsConnector,
    address: std::net::SocketAddr,
    alpn: &'static [u8],
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = (**connector.config()).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await.ok()?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()
}

/// Reads until the server closes the connection (or an error says it did).
async fn until_closed(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) {
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + CLOSED_WITHIN + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// Finishes TLS, then says nothing; returns how long the server kept it.
async fn silent(
    connector: TlsConnector,
    address: std::net::SocketAddr,
    alpn: &'static [u8],
) -> Duration {
    let opened = Instant::now();
    if let Some(mut stream) = connect(&connector, address, alpn).await {
        until_closed(&mut stream).await;
    }
    opened.elapsed()
}

/// Chooses HTTP/2 and sends only the first half of its preface.
async fn partial_http2_preface(connector: TlsConnector, address: std::net::SocketAddr) -> Duration {
    let opened = Instant::now();
    if let Some(mut stream) = connect(&connector, address, b"h2").await
        && stream.write_all(b"PRI * HTTP/2.0\r\n").await.is_ok()
    {
        until_closed(&mut stream).await;
    }
    opened.elapsed()
}

/// Sends a request's headers, then its body a byte a second.
async fn trickling_body(connector: TlsConnector, address: std::net::SocketAddr) -> Duration {
    let opened = Instant::now();
    let Some(stream) = connect(&connector, address, b"http/1.1").await else {
        return opened.elapsed();
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = b"POST /v1/enroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n";
    if writer.write_all(head).await.is_err() {
        return opened.elapsed();
    }
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if writer.write_all(b" ").await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let deadline = Instant::now() + CLOSED_WITHIN + Duration::from_secs(5);
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline.into(), reader.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    trickle.abort();
    let held = opened.elapsed();
    // The server said why before it closed (unless this connection was
    // over its address's share and closed at once).
    if !answer.is_empty() {
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    held
}
