//! A log line that cannot be written, or a disk that fills up, never takes
//! the server down: it answers 503 while it cannot write, counts the log
//! lines it drops, and serves again by itself once space returns, having
//! lost nothing it acknowledged.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use curbside_cli::{Client, Trust};
use curbside_proto::CertificateFingerprint;
use curbside_proto::health::{Ready, Warning};
use curbside_proto::identity::Role;
use curbside_proto::threads::NewThread;
use curbside_tests::{Backend, ServerProcess, TestEnv, backend_tests};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::people::{enroll_with, person_on};
use crate::threads::{blob, send, thread_id};

backend_tests!(a_full_volume_refuses_then_recovers_by_itself);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");

/// A message the server acknowledged: its sequence number and body.
type Acked = (u64, Vec<u8>);

/// Standard error on a device that refuses every write, standard output a
/// pipe already closed: the server starts, serves, and counts what it
/// could not log. (Not a storage test: SQLite only.)
#[tokio::test]
async fn logging_to_a_device_that_refuses_writes_does_not_stop_the_server() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(SERVER)
        .arg("serve")
        .arg("--data-dir")
        .arg(env.data_dir())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("CURBSIDE_DATABASE_URL", env.database_url())
        .env("CURBSIDE_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create("/dev/full").unwrap())
        .spawn()
        .unwrap();
    // Nobody reads the banner.
    drop(child.stdout.take());

    let client = wait_until_serving(env.data_dir(), port, &mut child).await;
    // Requests, audited ones included, are served.
    for _ in 0..20 {
        client.health().await.unwrap();
        assert!(client.challenge(&"1".repeat(32)).await.is_ok());
    }
    let ready = ready(&client).await;
    assert!(ready.log_lines_lost > 0, "{ready:?}");
    assert!(ready.warnings.contains(&Warning::LogLinesLost), "{ready:?}");
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the server exited: {:?}",
        child.try_wait()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Waits for the server on `port` to answer, trusting the certificate it
/// generated in `data_dir`.
async fn wait_until_serving(data_dir: &Path, port: u16, child: &mut std::process::Child) -> Client {
    let started = Instant::now();
    loop {
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the server exited while starting: {:?}",
            child.try_wait()
        );
        let certificate = data_dir.join("tls/cert.pem");
        if let Ok(der) = CertificateDer::from_pem_file(&certificate) {
            let pin = CertificateFingerprint::of_der(der.as_ref());
            let client =
                Client::new(&format!("https://127.0.0.1:{port}"), &Trust::Pin(pin)).unwrap();
            if client.health().await.is_ok() {
                return client;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(client: &Client) -> Ready {
    client.ready().await.unwrap()
}

/// The data directory and the log share a 40 MiB volume; it fills while
/// messages are being sent.
async fn a_full_volume_refuses_then_recovers_by_itself(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let volume = tempfile::tempdir().unwrap();
    let mut command = Command::new("unshare");
    if !is_root() {
        command.args(["--user", "--map-root-user"]);
    }
    // A mount namespace of the server's own: the volume disappears with it.
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=40m curbside-test "$0" && exec "$@" 2>>"$0/server.log""#)
        .arg(volume.path())
        .arg(SERVER)
        .arg("serve")
        .arg("--data-dir")
        .arg(volume.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--min-free-disk-mib", "4"])
        .args(["--audit-checkpoint-entries", "50"])
        .env("CURBSIDE_LOG", "info");
    match backend {
        Backend::Sqlite => command.env_remove("CURBSIDE_DATABASE_URL"),
        Backend::Postgres => command.env("CURBSIDE_DATABASE_URL", env.database_url()),
    };
    let mut server = ServerProcess::spawn(command, true);
    // The volume as this process sees it, through the server's namespace.
    let inside = PathBuf::from(format!("/proc/{}/root", server.pid()))
        .join(volume.path().strip_prefix("/").unwrap());
    assert!(inside.join("server.log").exists());

    let mut admin = enroll_with(
        server.client(),
        server.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    admin.login().await;
    let ana = person_on(server.client(), &admin, "Dr. Ana", Role::Clinician).await;
    let ben = person_on(server.client(), &admin, "Dr. Ben", Role::Clinician).await;
    ana.client
        .create_thread(&NewThread {
            thread_id: thread_id(0),
            epoch: 1,
            devices: vec![ben.device_id.clone()],
            welcome: blob("welcome"),
        })
        .await
        .unwrap();

    // Senders, counting what was acknowledged and what was refused.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let refused: Arc<Mutex<Vec<u16>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let client = if sender % 2 == 0 { &ana } else { &ben }.client.clone();
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let padding = "x".repeat(2000);
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let body = format!("sender {sender} message {i} {padding}");
                match send(&client, &thread_id(0), 1, &body).await {
                    Ok(seq) => acked.lock().unwrap().push((seq, body.into())),
                    Err(curbside_cli::ClientError::Api { status, .. }) => {
                        refused.lock().unwrap().push(status.as_u16());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(error) => panic!("a send failed without an answer: {error}"),
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Fill the volume.
    let filler = inside.join("filler");
    fill(&filler);
    if backend == Backend::Sqlite {
        // The database is on the volume: sends are refused, with 503.
        wait_for("a send to be refused", || {
            !refused.lock().unwrap().is_empty()
        })
        .await;
        let statuses = refused.lock().unwrap().clone();
        assert!(statuses.iter().all(|status| *status == 503), "{statuses:?}");
    } else {
        // The database is elsewhere: the full log volume does not stop sends.
        let before = acked.lock().unwrap().len();
        wait_for("sends to go on", || {
            acked.lock().unwrap().len() > before + 20
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(server.is_running(), "the server exited on a full disk");
    // Health answers and says what is wrong; work without a session waits.
    let client = server.client();
    client.health().await.unwrap();
    let ready = client.ready().await.unwrap();
    assert!(ready.warnings.contains(&Warning::DiskSpaceLow), "{ready:?}");
    // Its log is on the full volume too: lines are dropped and counted.
    assert!(ready.log_lines_lost > 0, "{ready:?}");
    match client.challenge(&ana.device_id).await {
        Err(curbside_cli::ClientError::Api { status, .. }) => assert_eq!(status, 503),
        other => panic!("a sign-in on a full disk got {other:?}"),
    }

    // Free the space: service resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let before = acked.lock().unwrap().len();
    wait_for("sends to succeed again", || {
        acked.lock().unwrap().len() > before + 20
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    wait_for_async("sign-in to work again", || async {
        match client.challenge(&ana.device_id).await {
            Ok(_) => true,
            Err(error) => {
                eprintln!("sign-in: {error}");
                false
            }
        }
    })
    .await;
    assert!(server.is_running());

    // Every acknowledged message is there, unchanged.
    let acked = acked.lock().unwrap().clone();
    let mut log = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let page = ana.client.entries(&thread_id(0), after, 500).await.unwrap();
        let Some(last) = page.entries.last() else {
            break;
        };
        after = last.seq;
        for entry in page.entries {
            log.insert(entry.seq, entry.body.0);
        }
    }
    let lost: Vec<u64> = acked
        .iter()
        .filter(|(seq, body)| log.get(seq) != Some(body))
        .map(|(seq, _)| *seq)
        .collect();
    assert!(lost.is_empty(), "acknowledged messages lost: {lost:?}");
    // And the audit chain verifies.
    let key = client.audit_key().await.unwrap().public_key;
    let export = admin
        .client
        .audit_export(&curbside_proto::audit_review::ExportQuery::whole_log(
            curbside_proto::audit_review::ExportFormat::Jsonl,
        ))
        .await
        .unwrap();
    curbside_cli::audit::verify_stream(
        &admin.client,
        export,
        curbside_proto::audit::Verifier::new(&key),
    )
    .await
    .unwrap();
    server.kill();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Writes `path` until the disk refuses.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_async<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
