//! Graceful shutdown: stop accepting, finish what is in flight, close the
//! database.

use std::sync::Arc;
use std::time::Duration;

use curbside_tests::{Backend, TestEnv, backend_tests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::probe;

backend_tests!(shutdown_finishes_in_flight_requests_then_refuses_new_ones);

async fn shutdown_finishes_in_flight_requests_then_refuses_new_ones(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut server = env.start_with(env.config(), probe::routes()).await;

    // Start a request and leave its body half sent, so it is in flight.
    let mut config =
        curbside_cli::trust::client_config(&curbside_cli::Trust::Pin(server.fingerprint)).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.address).await.unwrap();
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let body = br#"{"name":"in-flight","count":3}"#;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        probe::PATH,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.signal_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // New connections are no longer accepted.
    let refused = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(server.address))
        .await
        .unwrap();
    assert!(refused.is_err(), "the listener is closed during shutdown");

    // The in-flight request completes.
    stream.write_all(&body[10..]).await.unwrap();
    stream.flush().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""name":"in-flight""#), "{reply}");

    tokio::time::timeout(Duration::from_secs(10), server.stopped())
        .await
        .expect("the server finishes shutting down");
    if backend == Backend::Sqlite {
        // Closing the last connection checkpoints and removes the WAL. The
        // pool hands each SQLite connection's close to its worker thread
        // (sqlx 0.8), so the file goes a moment after the pool says closed.
        let wal = env.data_dir().join("curbside.db-wal");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while wal.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !wal.exists(),
            "the WAL was not checkpointed away at shutdown"
        );
    }
}
