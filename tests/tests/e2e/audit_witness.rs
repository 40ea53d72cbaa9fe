//! A witness of the audit log, end to end: the real `curbside-server
//! witness` process cosigns the server's checkpoints as the server sends
//! them (its cosignatures checked here from `c2sp.org/tlog-cosignature`
//! with code that shares nothing with the witness's), and once the
//! server's database is rewound and the log grows again, the witness
//! refuses to cosign the inconsistent checkpoints, whoever submits them.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curbside_cli::trust::{Trust, client_config};
use curbside_proto::CertificateFingerprint;
use curbside_proto::audit_review::TreeCheckpoint;
use curbside_server::config::WitnessTarget;
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::audit_tree::accesses;
use crate::people::{Person, first_admin};

backend_tests!(a_witness_cosigns_the_log_and_refuses_a_rewound_one);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");

/// A `curbside-server witness` process, killed when dropped.
struct WitnessProcess {
    child: std::process::Child,
    /// The line a server is configured with: URL, fingerprint and key.
    target: String,
    url: String,
    fingerprint: CertificateFingerprint,
    /// The witness's key, `name+id+base64(0x04 || key)`.
    key: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn witness_command(dir: &Path, log_key: &str) -> std::process::Command {
    let mut command = std::process::Command::new(SERVER);
    command
        .args(["witness", "--listen", "127.0.0.1:0", "--name"])
        .arg("witness.test/w1")
        .arg("--data-dir")
        .arg(dir)
        .arg("--log")
        .arg(log_key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

fn start_witness(dir: &Path, log_key: &str) -> WitnessProcess {
    let mut child = witness_command(dir, log_key).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut url, mut fingerprint, mut key, mut target) = (None, None, None, None);
    while target.is_none() {
        let line = lines
            .next()
            .expect("the witness prints its banner")
            .unwrap();
        if let Some(rest) = line.strip_prefix("Curbside witness serving HTTPS on ") {
            url = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("TLS certificate SHA-256 fingerprint: ") {
            fingerprint = Some(rest.trim().parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("Witness key: ") {
            key = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("Configure a server with: --audit-witness ") {
            target = Some(rest.trim().trim_matches('"').to_owned());
        }
    }
    WitnessProcess {
        child,
        target: target.unwrap(),
        url: url.unwrap(),
        fingerprint: fingerprint.unwrap(),
        key: key.unwrap(),
    }
}

/// An HTTPS client pinned to the witness.
fn http(witness: &WitnessProcess) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&Trust::Pin(witness.fingerprint)).unwrap())
        .build()
        .unwrap()
}

/// The size a checkpoint note states.
fn size_of(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// Checks the witness's cosignature on `note`, from the spec alone: the
/// line `— <name> base64(key id || u64 timestamp || Ed25519 signature)`
/// signs "cosignature/v1\ntime <timestamp>\n" and the note's text.
fn cosignature_verifies(note: &str, witness_key: &str) {
    let mut parts = witness_key.splitn(3, '+');
    let name = parts.next().unwrap();
    let id = hex::decode(parts.next().unwrap()).unwrap();
    let typed = STANDARD.decode(parts.next().unwrap()).unwrap();
    assert_eq!(typed[0], 0x04, "an Ed25519 cosignature key");
    let public_key = &typed[1..];
    let mut hashed = name.as_bytes().to_vec();
    hashed.push(b'\n');
    hashed.extend(&typed);
    assert_eq!(
        &ring::digest::digest(&ring::digest::SHA256, &hashed).as_ref()[..4],
        id.as_slice(),
        "the key id"
    );
    let (text, signatures) = note.split_at(note.find("\n\n").unwrap() + 1);
    let line = signatures
        .lines()
        .find_map(|line| line.strip_prefix(&format!("\u{2014} {name} ")))
        .expect("a cosignature line by the witness");
    let bytes = STANDARD.decode(line).unwrap();
    assert_eq!(bytes.len(), 4 + 8 + 64);
    assert_eq!(&bytes[..4], id.as_slice());
    let timestamp = u64::from_be_bytes(bytes[4..12].try_into().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(timestamp <= now && timestamp + 600 > now, "{timestamp}");
    let message = format!("cosignature/v1\ntime {timestamp}\n{text}");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message.as_bytes(), &bytes[12..])
        .expect("the cosignature verifies");
}

/// The witness's cosigned checkpoint as the server keeps it, once it
/// covers at least `size` entries.
async fn witnessed(admin: &Person, size: u64) -> TreeCheckpoint {
    for _ in 0..100 {
        let checkpoint = admin.client.audit_checkpoint().await.unwrap();
        if checkpoint
            .witnessed
            .first()
            .is_some_and(|witnessed| size_of(&witnessed.note) >= size)
        {
            return checkpoint;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the witness did not cosign a tree of {size} entries in time");
}

async fn a_witness_cosigns_the_log_and_refuses_a_rewound_one(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let log_key = admin
        .client
        .audit_key()
        .await
        .unwrap()
        .note_key()
        .unwrap()
        .verifier_string();
    let witness_dir = tempfile::tempdir().unwrap();
    let witness = start_witness(&witness_dir.path().join("w"), &log_key);

    // The server sends its checkpoints to the witness, which cosigns them.
    let mut config = env.config();
    config.audit_witnesses = vec![WitnessTarget::parse(&witness.target).unwrap()];
    let address = server.address;
    server.stop().await;
    let server = env
        .start_on(config.clone(), axum::Router::new(), address)
        .await;
    accesses(&admin, 10).await;
    let earlier = crate::audit_tree::head(&env).await;
    let first = witnessed(&admin, 1).await;
    assert_eq!(first.witnessed[0].witness, witness.key);
    cosignature_verifies(&first.witnessed[0].note, &witness.key);
    accesses(&admin, 20).await;
    let later = crate::audit_tree::head(&env).await;
    let cosigned = witnessed(&admin, u64::try_from(later.seq).unwrap()).await;
    let cosigned_note = cosigned.witnessed[0].note.clone();
    cosignature_verifies(&cosigned_note, &witness.key);
    let cosigned_size = size_of(&cosigned_note);
    assert!(cosigned_size > u64::try_from(earlier.seq).unwrap());

    // The witness serves what it cosigned, by the hash of the log's origin
    // (read once the server stopped sending).
    server.stop().await;
    let origin = cosigned_note.lines().next().unwrap();
    let origin_hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        origin.as_bytes(),
    ));
    let served = http(&witness)
        .get(format!("{}/{origin_hash}/checkpoint", witness.url))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let served = served.text().await.unwrap();
    cosignature_verifies(&served, &witness.key);
    let cosigned_size = size_of(&served);
    assert!(cosigned_size >= size_of(&cosigned_note));

    // The database rewound to an earlier copy behind the server's back,
    // and the log grows past what the witness cosigned: a fork.
    crate::audit_tree::rewind_to(&env, backend, &earlier).await;
    let server = env.start_on(config, axum::Router::new(), address).await;
    accesses(&admin, 60).await;
    let forked = admin.client.audit_checkpoint().await.unwrap();
    let forked_size = size_of(&forked.note);
    assert!(forked_size > cosigned_size);

    // Submitted by hand, with the server's own consistency proof from the
    // size the witness cosigned: refused as inconsistent.
    let proof = admin
        .client
        .audit_consistency(cosigned_size, forked_size)
        .await
        .unwrap();
    let mut body = format!("old {cosigned_size}\n");
    for hash in &proof.proof {
        body.push_str(&STANDARD.encode(&hash.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&forked.note);
    let refused = http(&witness)
        .post(format!("{}/add-checkpoint", witness.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let why = refused.text().await.unwrap();
    assert!(why.contains("not consistent"), "{why}");

    // From the empty tree, it is told the size it cosigned (409).
    let conflict = http(&witness)
        .post(format!("{}/add-checkpoint", witness.url))
        .body(format!("old 0\n\n{}", forked.note))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.headers()["content-type"].to_str().unwrap(),
        "text/x.tlog.size"
    );
    assert_eq!(conflict.text().await.unwrap(), format!("{cosigned_size}\n"));

    // The server's own submissions were refused too: after several rounds
    // the witness still holds the tree it cosigned before the rewind.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = http(&witness)
        .get(format!("{}/{origin_hash}/checkpoint", witness.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(still, served);
    let kept = admin.client.audit_checkpoint().await.unwrap();
    assert!(size_of(&kept.witnessed[0].note) <= cosigned_size);
    server.stop().await;

    // A witness that lost its state refuses to start rather than cosign
    // anew.
    drop(witness);
    std::fs::remove_file(
        witness_dir
            .path()
            .join("w")
            .join(curbside_server::witness::STATE_FILE),
    )
    .unwrap();
    let output = witness_command(&witness_dir.path().join("w"), &log_key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("witness state") && error.contains("missing"),
        "{error}"
    );
}
