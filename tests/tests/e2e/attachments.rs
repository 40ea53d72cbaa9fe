//! Encrypted attachments through the real server: a file the CLI sends
//! reaches the thread's members only, decrypted and checked; every upload
//! and download is audited; a recall deletes the file's ciphertext from
//! the database's files and rows; an upload over the limit is refused
//! before anything is stored, and one cut off half-way leaves nothing; and
//! 100 MiB up and down barely moves the server's memory.

use curbside_cli::ClientError;
use curbside_proto::audit::Outcome;
use curbside_proto::audit_review::SearchQuery;
use curbside_tests::{Backend, ServerProcess, TestEnv, backend_tests};
use sqlx::Connection;

use crate::conversation::{Clinician, created};
use crate::people::{Person, first_admin, person};
use crate::storage::count_rows;

backend_tests!(
    a_file_reaches_members_only_and_each_transfer_is_audited,
    uploads_over_the_limit_or_cut_off_leave_nothing,
    a_hundred_mib_round_trip_leaves_the_servers_memory_flat,
);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");

/// `size` bytes that no compressor or coincidence finds elsewhere.
fn file_bytes(size: usize, seed: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] = seed;
    bytes
}

/// The attachment id `read` lists for the file named `name`.
fn attachment_id(read: &str, name: &str) -> String {
    read.lines()
        .find_map(|line| {
            let rest = line.trim_start().strip_prefix("[attachment ")?;
            let (id, rest) = rest.split_once("] ")?;
            rest.starts_with(&format!("{name} ("))
                .then(|| id.to_owned())
        })
        .unwrap_or_else(|| panic!("no attachment {name} in:\n{read}"))
}

/// Short pieces of `bytes` from all over it: a large value is stored in
/// pages (4 KiB on SQLite, with a header each), so only pieces shorter
/// than a page can be looked for as they are.
pub fn pieces(bytes: &[u8]) -> Vec<Vec<u8>> {
    (0..8)
        .map(|n| {
            let at = (n * bytes.len() / 8).min(bytes.len().saturating_sub(32));
            bytes[at..(at + 32).min(bytes.len())].to_vec()
        })
        .collect()
}

/// How many of `pieces` are found in storage.
pub async fn pieces_stored(env: &TestEnv, backend: Backend, pieces: &[Vec<u8>]) -> usize {
    let mut found = 0;
    for piece in pieces {
        if crate::mls::bytes_in_storage(env, backend, piece).await > 0 {
            found += 1;
        }
    }
    found
}

/// The first `len` bytes of the first chunk of an attachment's ciphertext,
/// read behind the server's back.
async fn stored_sample(env: &TestEnv, attachment: &str, len: usize) -> Vec<u8> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let data: Vec<u8> = sqlx::query_scalar(
        "SELECT data FROM attachment_chunk WHERE attachment_id = $1 AND idx = 0",
    )
    .bind(attachment)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    data[..len].to_vec()
}

async fn audited(admin: &Person, action: &str, resource: &str) -> Vec<(Outcome, String)> {
    admin
        .client
        .audit_search(&SearchQuery {
            action: Some(action.to_owned()),
            resource: Some(resource.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|recorded| {
            (
                recorded.entry.outcome,
                recorded.entry.evidence.unwrap_or_default(),
            )
        })
        .collect()
}

async fn a_file_reaches_members_only_and_each_transfer_is_audited(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    let dan = person(
        &server,
        &admin,
        "Dr. Dan Dorsey",
        curbside_proto::identity::Role::Clinician,
    )
    .await;
    for clinician in [&ben, &cal] {
        clinician.ok(&["threads"]).await;
    }
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--with",
            "Dr. Cal Chen",
            "--subject",
            "Bed 7, ECG",
        ])
        .await,
    );

    // Ana sends a 5 MiB file with a line of text.
    let files = tempfile::tempdir().unwrap();
    let original = file_bytes(5 << 20, 7);
    let path = files.path().join("ecg-strip.bin");
    std::fs::write(&path, &original).unwrap();
    let sent = ana
        .ok(&[
            "send",
            &thread,
            "Strip attached",
            "--file",
            path.to_str().unwrap(),
        ])
        .await;
    assert!(sent.contains("with 1 file: ecg-strip.bin"), "{sent}");

    // What the server stores is not the file: no piece of it is there.
    assert_eq!(pieces_stored(&env, backend, &pieces(&original)).await, 0);

    // Ben sees it listed and downloads it: the same bytes.
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains("Strip attached"), "{read}");
    assert!(
        read.contains("ecg-strip.bin (application/octet-stream, 5.0 MiB)"),
        "{read}"
    );
    let id = attachment_id(&read, "ecg-strip.bin");
    let out = files.path().join("ben.bin");
    let saved = ben
        .ok(&["download", &thread, &id, "--out", out.to_str().unwrap()])
        .await;
    assert!(saved.contains("SHA-256 checked"), "{saved}");
    assert!(std::fs::read(&out).unwrap() == original, "the bytes differ");
    // By name too, and never over an existing file.
    let again = ben
        .run(&[
            "download",
            &thread,
            "ecg-strip.bin",
            "--out",
            out.to_str().unwrap(),
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("exists"), "{again}");

    // Ana removes Cal: he had read the message, but the server no longer
    // gives him the file.
    cal.ok(&["read", &thread]).await;
    ana.ok(&["thread", "remove", &thread, "Dr. Cal Chen"]).await;
    let cal_out = files.path().join("cal.bin");
    let refused = cal
        .run(&["download", &thread, &id, "--out", cal_out.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("nothing was found"), "{refused}");
    assert!(!cal_out.exists());

    // Dan, never a member, gets 404 too.
    let refused = dan.client.download_attachment(&thread, &id).await;
    assert!(
        matches!(&refused, Err(ClientError::Api { status, .. }) if status.as_u16() == 404),
        "{refused:?}"
    );

    // The audit log has the upload and each download, allowed or not.
    let uploads = audited(&admin, "thread.attachment.upload", &thread).await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(uploads[0].0, Outcome::Allowed);
    assert!(
        uploads[0].1.contains(&format!("attachment={id}")),
        "{uploads:?}"
    );
    let downloads = audited(&admin, "thread.attachment.download", &id).await;
    let allowed = downloads
        .iter()
        .filter(|(outcome, _)| *outcome == Outcome::Allowed)
        .count();
    assert_eq!((allowed, downloads.len()), (1, 3), "{downloads:?}");

    // A recall deletes the file with the message: its ciphertext is found
    // nowhere in the database's files or rows.
    let sample = pieces(&stored_sample(&env, &id, 1 << 20).await);
    assert!(pieces_stored(&env, backend, &sample).await > 4);
    ana.ok(&["recall", &thread]).await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains("recalled this message"), "{read}");
    assert!(!read.contains("[attachment"), "{read}");
    let started = std::time::Instant::now();
    while count_rows(&env, "attachment", "1 = 1").await
        + count_rows(&env, "attachment_chunk", "1 = 1").await
        > 0
        || pieces_stored(&env, backend, &sample).await > 0
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "the recalled attachment's ciphertext is still stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop().await;
}

/// Raw HTTP/1.1 over the server's TLS: sends the head and `body`, then
/// either closes the connection (`cut`) or reads the answer.
async fn raw_upload(
    server: &curbside_tests::TestServer,
    token: &str,
    thread: &str,
    length: usize,
    body: &[u8],
    cut: bool,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config =
        curbside_cli::trust::client_config(&curbside_cli::Trust::Pin(server.fingerprint)).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let head = format!(
        "POST /v1/threads/{thread}/attachments HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.flush().await.unwrap();
    if cut {
        // Long enough for the server to store what came.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        drop(stream);
        return String::new();
    }
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

async fn uploads_over_the_limit_or_cut_off_leave_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.max_attachment_bytes = 1 << 20;
    let server = env.start_with(config, axum::Router::new()).await;
    let (admin, ana, ben, cal, thread) = crate::threads::three(&server).await;

    // Over the limit: refused before the body, saying the limit.
    let answer = raw_upload(&server, ana.token(), &thread, 3 << 20, b"", false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("at most 1 MiB"), "{answer}");
    // The CLI's client says the same for a file over it.
    let too_big = ana
        .client
        .upload_attachment(&thread, 2 << 20, reqwest::Body::from(vec![0u8; 2 << 20]))
        .await;
    match too_big {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert_eq!(status.as_u16(), 413);
            assert!(message.contains("at most 1 MiB"), "{message}");
        }
        other => panic!("expected 413, got {other:?}"),
    }
    // Not a member: 404, whatever the size.
    let refused = cal
        .client
        .upload_attachment(&thread, 10, reqwest::Body::from(vec![0u8; 10]))
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Api { status, .. }) if status.as_u16() == 404),
        "{refused:?}"
    );

    // Cut off half-way, after more than a stored chunk: nothing is left.
    let half = file_bytes((1 << 20) + 4096, 9);
    raw_upload(&server, ana.token(), &thread, 1 << 21, &half, true).await;
    let started = std::time::Instant::now();
    while count_rows(&env, "attachment", "1 = 1").await
        + count_rows(&env, "attachment_chunk", "1 = 1").await
        > 0
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the cut-off upload left rows behind"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        pieces_stored(&env, backend, &pieces(&half)).await,
        0,
        "the cut-off upload's bytes are still in the database's files"
    );
    // A whole one is kept, and a message must name it to take it.
    let whole = ana
        .client
        .upload_attachment(&thread, 100, reqwest::Body::from(vec![1u8; 100]))
        .await
        .unwrap();
    assert_eq!(whole.size, 100);
    let message = |attachments: Vec<String>| curbside_proto::threads::MessageRequest {
        epoch: 1,
        ciphertext: crate::threads::blob("with a file"),
        attachments,
        urgent: false,
    };
    let unknown = ana
        .client
        .send_message(&thread, &message(vec!["0".repeat(32)]))
        .await;
    assert!(
        matches!(&unknown, Err(ClientError::Api { status, .. }) if status.as_u16() == 400),
        "{unknown:?}"
    );
    let sent = ana
        .client
        .send_message(&thread, &message(vec![whole.attachment_id.clone()]))
        .await
        .unwrap();
    // Once only.
    let twice = ana
        .client
        .send_message(&thread, &message(vec![whole.attachment_id.clone()]))
        .await;
    assert!(
        matches!(&twice, Err(ClientError::Api { status, .. }) if status.as_u16() == 400),
        "{twice:?}"
    );
    let download = |client: curbside_cli::Client| {
        let (thread, id) = (thread.clone(), whole.attachment_id.clone());
        async move {
            match client.download_attachment(&thread, &id).await {
                Ok(response) => response.bytes().await.unwrap().len() as u16,
                Err(ClientError::Api { status, .. }) => status.as_u16(),
                Err(other) => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(download(ben.client.clone()).await, 100);
    // Recalled under a legal hold: the file is kept, but served to no one.
    admin
        .client
        .place_hold(&curbside_proto::retention::NewHold {
            scope: curbside_proto::retention::HoldScope::Thread,
            target_id: thread.clone(),
            reason: "Matter 7".to_owned(),
        })
        .await
        .unwrap();
    ana.client.recall(&thread, sent.seq).await.unwrap();
    assert_eq!(download(ben.client.clone()).await, 404);
    assert_eq!(
        count_rows(&env, "attachment", "deleted_at_ms IS NULL").await,
        1
    );
    server.stop().await;
}

/// The server's resident memory, and its peak since the last reset, in
/// KiB (`/proc/PID/status`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn a_hundred_mib_round_trip_leaves_the_servers_memory_flat(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = ServerProcess::start(&env, SERVER, &[], true);
    let pin = server.fingerprint.to_string();
    let mut admin = crate::people::enroll_with(
        server.client(),
        server.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    admin.login().await;
    let role = curbside_proto::identity::Role::Clinician;
    let ana = Clinician::enroll_at(&server.url, &pin, &admin, "Dr. Ana Alvarez", role, "ED").await;
    let ben = Clinician::enroll_at(&server.url, &pin, &admin, "Dr. Ben Brown", role, "ED").await;
    ben.ok(&["threads"]).await;
    let thread = created(&ana.ok(&["thread", "new", "--with", "Dr. Ben Brown"]).await);
    let files = tempfile::tempdir().unwrap();
    let original = file_bytes(100 << 20, 3);
    let path = files.path().join("ct-series.bin");
    std::fs::write(&path, &original).unwrap();

    // The peak from here on: reset, then read after both transfers.
    let (before, _) = memory_kib(server.pid());
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").unwrap();
    let started = std::time::Instant::now();
    ana.ok(&["send", &thread, "--file", path.to_str().unwrap()])
        .await;
    let uploaded = started.elapsed();
    let read = ben.ok(&["read", &thread]).await;
    let id = attachment_id(&read, "ct-series.bin");
    let out = files.path().join("out.bin");
    let started = std::time::Instant::now();
    ben.ok(&["download", &thread, &id, "--out", out.to_str().unwrap()])
        .await;
    let downloaded = started.elapsed();
    let (_, peak) = memory_kib(server.pid());
    assert!(std::fs::read(&out).unwrap() == original, "the bytes differ");
    let raised_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "100 MiB on {backend:?}: resident {} MiB before, peak {} MiB during (raised {raised_mib:.1} \
         MiB); upload {uploaded:?}, download {downloaded:?}",
        before / 1024,
        peak / 1024
    );
    assert!(
        raised_mib < 64.0,
        "a 100 MiB upload and download raised the server's memory by {raised_mib:.1} MiB"
    );
    server.kill();
}
