//! The server speaks nothing but TLS 1.3 and TLS 1.2 with ECDHE + AEAD.
//!
//! The refused handshakes are sent as raw ClientHello records, because no
//! TLS library here will offer TLS 1.1 or CBC suites; the accepted ones use
//! the client's own (pinned) rustls configuration, one version at a time.

use std::sync::Arc;
use std::time::Duration;

use curbside_proto::CertificateFingerprint;
use curbside_tests::{Backend, TestEnv, backend_tests};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

backend_tests!(
    plain_http_gets_no_http_response,
    tls_1_1_only_client_fails_the_handshake,
    tls_1_2_with_only_cbc_suites_fails_the_handshake,
    tls_1_2_and_1_3_clients_succeed_with_alpn,
    connections_beyond_the_limit_wait_for_a_free_slot,
);

const TLS_CONTENT_ALERT: u8 = 0x15;
const TLS_CONTENT_HANDSHAKE: u8 = 0x16;

async fn plain_http_gets_no_http_response(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_reply(&mut stream).await;
    assert!(
        !reply.starts_with(b"HTTP"),
        "plain HTTP got an HTTP answer: {reply:?}"
    );
    assert!(
        reply.is_empty() || reply[0] == TLS_CONTENT_ALERT,
        "expected a TLS alert or a closed connection, got {reply:?}"
    );
    // The server is still serving TLS afterwards.
    server.client().health().await.unwrap();
    server.stop().await;
}

async fn tls_1_1_only_client_fails_the_handshake(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    // TLS 1.1, with the suites a TLS 1.1 client would offer.
    let hello = client_hello(
        [0x03, 0x02],
        &[0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035],
    );
    assert_refused(&server, &hello).await;
    server.stop().await;
}

async fn tls_1_2_with_only_cbc_suites_fails_the_handshake(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let hello = client_hello(
        [0x03, 0x03],
        &[0xc013, 0xc014, 0xc009, 0xc00a, 0xc027, 0x002f],
    );
    assert_refused(&server, &hello).await;
    server.stop().await;
}

async fn tls_1_2_and_1_3_clients_succeed_with_alpn(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = curbside_cli::trust::client_config_for_versions(
            &curbside_cli::Trust::Pin(server.fingerprint),
            &[version],
        )
        .unwrap();
        let tcp = TcpStream::connect(server.address).await.unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap_or_else(|error| panic!("{version:?} handshake failed: {error}"));
        let (_, connection) = tls.get_ref();
        assert_eq!(connection.protocol_version(), Some(version.version));
        assert_eq!(connection.alpn_protocol(), Some(&b"h2"[..]));
        let suite = format!(
            "{:?}",
            connection.negotiated_cipher_suite().unwrap().suite()
        );
        assert!(
            suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
            "{suite} is not an AEAD suite"
        );
        if version == &rustls::version::TLS12 {
            assert!(suite.contains("ECDHE"), "{suite} is not an ECDHE suite");
        }
        let leaf = &connection.peer_certificates().unwrap()[0];
        assert_eq!(
            CertificateFingerprint::of_der(leaf.as_ref()),
            server.fingerprint
        );
    }
    server.stop().await;
}

async fn connections_beyond_the_limit_wait_for_a_free_slot(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.max_connections = 1;
    let server = env.start_with(config, axum::Router::new()).await;
    let connector = TlsConnector::from(Arc::new(
        curbside_cli::trust::client_config(&curbside_cli::Trust::Pin(server.fingerprint)).unwrap(),
    ));
    let name = || ServerName::try_from("localhost").unwrap();

    let first = connector
        .connect(name(), TcpStream::connect(server.address).await.unwrap())
        .await
        .unwrap();
    // The second client reaches the kernel's backlog, but the server does
    // not take it on while the first connection holds the only slot.
    let second = tokio::spawn({
        let connector = connector.clone();
        let address = server.address;
        async move {
            connector
                .connect(name(), TcpStream::connect(address).await.unwrap())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "a second connection was served beyond the limit"
    );

    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the waiting client is served once a slot frees")
        .unwrap();
    assert!(second.is_ok(), "{second:?}");
    server.stop().await;
}

/// Sends `hello` and checks the server answers with a TLS alert (or just
/// closes), never with a ServerHello.
async fn assert_refused(server: &curbside_tests::TestServer, hello: &[u8]) {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(hello).await.unwrap();
    let reply = read_reply(&mut stream).await;
    assert_ne!(
        reply.first(),
        Some(&TLS_CONTENT_HANDSHAKE),
        "the server went on with the handshake: {reply:?}"
    );
    assert!(
        reply.is_empty() || reply[0] == TLS_CONTENT_ALERT,
        "expected a TLS alert, got {reply:?}"
    );
}

/// Reads what the server sends until it closes the connection (or 5 s pass).
async fn read_reply(stream: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    reply
}

/// A ClientHello record offering `version` (with no supported_versions
/// extension, so nothing newer) and these cipher suites.
fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(data);
        out
    }
    let mut extensions = Vec::new();
    // supported_groups: x25519, secp256r1.
    extensions.extend(extension(0x000a, &[0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]));
    // ec_point_formats: uncompressed.
    extensions.extend(extension(0x000b, &[0x01, 0x00]));
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
    extensions.extend(extension(
        0x000d,
        &[0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    ));

    let mut body = version.to_vec();
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&u16::try_from(suites.len() * 2).unwrap().to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[0x01, 0x00]); // compression: null only
    body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
    body.extend(extensions);

    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend(body);

    let mut record = vec![TLS_CONTENT_HANDSHAKE, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend(handshake);
    record
}
