//! The audit log's Merkle tree, end to end: the server's signed checkpoint
//! and proofs checked by an implementation written here from RFC 9162 that
//! shares no code with the server's tree, altered proofs refused, and the
//! CLI as a witness that reports a log cut, rewound or rewritten behind
//! the server's back.

use curbside_proto::audit::AuditEntry;
use curbside_proto::note::{self, NoteKey};
use curbside_server::audit;
use curbside_server::db::audit as rows;
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::audit_access::{Cli, open};
use crate::people::{Person, first_admin};

backend_tests!(
    proofs_verify_with_a_second_implementation,
    the_cli_reports_a_cut_a_rewind_and_a_fork,
    a_missing_audit_key_stops_the_server,
    entries_forged_after_the_tree_checkpoint_are_refused,
);

/// RFC 9162 §2.1, written from the RFC for these tests alone.
pub(crate) mod rfc9162 {
    pub type Hash = [u8; 32];

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            context.update(part);
        }
        context.finish().as_ref().try_into().unwrap()
    }

    pub fn leaf(data: &[u8]) -> Hash {
        sha256(&[&[0], data])
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        sha256(&[&[1], left, right])
    }

    /// The largest power of two smaller than `n`.
    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH(D[n]).
    pub fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => sha256(&[]),
            1 => d[0],
            n => node(&mth(&d[..k(n)]), &mth(&d[k(n)..])),
        }
    }

    /// PATH(m, D[n]).
    pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = k(n);
        if m < k {
            let mut out = path(m, &d[..k]);
            out.push(mth(&d[k..]));
            out
        } else {
            let mut out = path(m - k, &d[k..]);
            out.push(mth(&d[..k]));
            out
        }
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    pub fn proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        subproof(m, d, true)
    }

    fn subproof(m: usize, d: &[Hash], whole: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if whole { Vec::new() } else { vec![mth(d)] };
        }
        let k = k(n);
        if m <= k {
            let mut out = subproof(m, &d[..k], whole);
            out.push(mth(&d[k..]));
            out
        } else {
            let mut out = subproof(m - k, &d[k..], false);
            out.push(mth(&d[..k]));
            out
        }
    }
}

/// Appends `n` entries through the API: each whoami is one audited access.
pub(crate) async fn accesses(person: &Person, n: usize) {
    for _ in 0..n {
        person.client.whoami().await.unwrap();
    }
}

/// The audit key as signed notes name it, from the published key.
async fn note_key(person: &Person) -> NoteKey {
    person.client.audit_key().await.unwrap().note_key().unwrap()
}

/// Every entry's leaf hash, read behind the server's back.
async fn leaves(env: &TestEnv) -> Vec<rfc9162::Hash> {
    let database = open(env).await;
    let (entries, _) = audit::read_all(&database).await.unwrap();
    database.close().await;
    entries
        .iter()
        .map(|(entry, _): &(AuditEntry, Vec<u8>)| rfc9162::leaf(&entry.canonical_bytes().unwrap()))
        .collect()
}

fn hashes(blobs: &[curbside_proto::threads::Blob]) -> Vec<rfc9162::Hash> {
    blobs
        .iter()
        .map(|blob| blob.0.as_slice().try_into().unwrap())
        .collect()
}

async fn proofs_verify_with_a_second_implementation(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    // Past 512 entries, so stored subtrees (256 leaves and up) are used.
    accesses(&admin, 600).await;
    let key = note_key(&admin).await;
    let checkpoint =
        note::open_checkpoint(&admin.client.audit_checkpoint().await.unwrap().note, &key)
            .expect("the checkpoint is signed by the published key");
    let head = checkpoint.head;
    let all = leaves(&env).await;
    // The checkpoint covers every entry committed when it was read.
    assert!(
        head.size >= 600 && head.size as usize <= all.len(),
        "{}",
        head.size
    );
    let size = head.size as usize;
    assert_eq!(head.root, rfc9162::mth(&all[..size]), "the signed root");

    for (seq, size) in [
        (1, 1),
        (1, 2),
        (3, 3),
        (256, 256),
        (257, 600),
        (600, 600),
        (7, 513),
        (1, size),
        (size, size),
    ] {
        let proof = admin
            .client
            .audit_inclusion(seq as u64, size as u64)
            .await
            .unwrap();
        let index = seq - 1;
        assert_eq!(proof.leaf_hash, all[index], "leaf {seq}");
        let hashes = hashes(&proof.proof);
        assert_eq!(
            hashes,
            rfc9162::path(index, &all[..size]),
            "inclusion {seq} in {size}"
        );
        let root = rfc9162::mth(&all[..size]);
        curbside_proto::merkle::verify_inclusion(
            index as u64,
            size as u64,
            &all[index],
            &hashes,
            &root,
        )
        .unwrap();
        // An altered proof, or a proof for another tree, does not verify.
        if let Some(first) = hashes.first() {
            let mut altered = hashes.clone();
            altered[0][31] ^= 1;
            assert_ne!(altered[0], *first);
            assert!(
                curbside_proto::merkle::verify_inclusion(
                    index as u64,
                    size as u64,
                    &all[index],
                    &altered,
                    &root
                )
                .is_err()
            );
        }
        let other = rfc9162::mth(&all[..size - 1]);
        assert!(
            curbside_proto::merkle::verify_inclusion(
                index as u64,
                size as u64,
                &all[index],
                &hashes,
                &other
            )
            .is_err()
                || size == 1
        );
    }
    for (from, to) in [
        (1, 2),
        (2, 3),
        (255, 256),
        (256, 257),
        (300, 600),
        (511, 513),
        (7, size),
        (size, size),
    ] {
        let proof = admin
            .client
            .audit_consistency(from as u64, to as u64)
            .await
            .unwrap();
        let hashes = hashes(&proof.proof);
        assert_eq!(hashes, rfc9162::proof(from, &all[..to]), "{from} to {to}");
        let (old, new) = (rfc9162::mth(&all[..from]), rfc9162::mth(&all[..to]));
        curbside_proto::merkle::verify_consistency(from as u64, to as u64, &hashes, &old, &new)
            .unwrap();
        if from < to {
            let rewritten = rfc9162::mth(&all[1..=from]);
            assert!(
                curbside_proto::merkle::verify_consistency(
                    from as u64,
                    to as u64,
                    &hashes,
                    &rewritten,
                    &new
                )
                .is_err()
            );
        }
    }
    // Sizes past the log, and the empty tree, are refused.
    assert!(
        admin
            .client
            .audit_inclusion(1, size as u64 + 10_000)
            .await
            .is_err()
    );
    assert!(admin.client.audit_consistency(0, 5).await.is_err());
    server.stop().await;
}

/// The head row and the first `keep` entries' worth of subtrees as they
/// were, written back: what restoring an older copy of the database does.
pub(crate) async fn rewind_to(env: &TestEnv, backend: Backend, head: &rows::HeadRow) {
    assert!(head.seq < 256, "rewind_to keeps no stored subtree");
    let hex = |bytes: &[u8]| -> String {
        match backend {
            Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
            Backend::Postgres => format!("decode('{}', 'hex')", hex::encode(bytes)),
        }
    };
    let keep = head.seq;
    for statement in [
        format!("DELETE FROM audit_entry WHERE seq > {keep}"),
        format!("DELETE FROM audit_checkpoint WHERE seq > {keep}"),
        // Subtrees are stored from 256 leaves up, and the logs rewound
        // here are shorter: there are none to take back.
        "DELETE FROM audit_subtree".to_owned(),
        format!(
            "UPDATE audit_head SET seq = {keep}, entry_hash = {}, checkpoint_seq = {}, \
             checkpoint_hash = {}, checkpoint_time_ms = {}, tree_frontier = {}, tree_note = '{}' \
             WHERE head_row = 1",
            hex(&head.entry_hash),
            head.checkpoint_seq,
            hex(&head.checkpoint_hash),
            head.checkpoint_time_ms,
            hex(head.tree_frontier.as_deref().unwrap()),
            head.tree_note.as_deref().unwrap(),
        ),
    ] {
        crate::storage::execute(env, &statement).await;
    }
}

pub(crate) async fn head(env: &TestEnv) -> rows::HeadRow {
    let database = open(env).await;
    let head = rows::head(database.pool()).await.unwrap();
    database.close().await;
    head
}

async fn the_cli_reports_a_cut_a_rewind_and_a_fork(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let cli = Cli::for_admin(&server.url, &server.fingerprint.to_string(), &admin).await;
    let search = ["admin", "audit", "search", "--limit", "1"];
    accesses(&admin, 20).await;
    cli.run(&search)
        .await
        .expect("a first search pins and remembers");
    let earlier = head(&env).await;
    accesses(&admin, 30).await;
    cli.run(&search).await.expect("the log grew: consistent");
    let later = head(&env).await;
    assert!(later.seq > earlier.seq + 30);

    // The newest entries cut behind the server's back: the proof from what
    // the CLI saw cannot be made, and the command fails saying so.
    accesses(&admin, 5).await;
    let cut = later.seq - 3;
    crate::storage::execute(&env, &format!("DELETE FROM audit_entry WHERE seq > {cut}")).await;
    let error = cli.run(&search).await.unwrap_err().to_string();
    assert!(error.contains("do not match"), "{error}");

    // The whole database rewound to an earlier copy, and the server
    // restarted on it: the log is shorter than a checkpoint the CLI saw.
    let address = server.address;
    server.stop().await;
    rewind_to(&env, backend, &earlier).await;
    let server = env
        .start_on(env.config(), axum::Router::new(), address)
        .await;
    let error = cli.run(&search).await.unwrap_err().to_string();
    assert!(error.contains("AUDIT LOG REWOUND"), "{error}");

    // The rewound log grows past what the CLI saw: now it is a fork, and
    // the CLI keeps saying so.
    accesses(&admin, 60).await;
    assert!(head(&env).await.seq > later.seq);
    for _ in 0..2 {
        let error = cli.run(&search).await.unwrap_err().to_string();
        assert!(error.contains("AUDIT LOG FORK"), "{error}");
    }
    server.stop().await;
}

async fn a_missing_audit_key_stops_the_server(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    accesses(&admin, 3).await;
    server.stop().await;
    std::fs::remove_file(env.data_dir().join(audit::KEY_FILE)).unwrap();
    let Err(error) = curbside_server::server::Server::prepare(env.config()).await else {
        panic!("the server started without the key that signed its log");
    };
    let error = error.to_string();
    assert!(
        error.contains("audit signing key") && error.contains("restore the key file"),
        "{error}"
    );
    assert!(
        !env.data_dir().join(audit::KEY_FILE).exists(),
        "no new key was made"
    );
}

/// An entry that chains correctly after `prev` (as anyone can compute), and
/// its chain hash.
fn forged(seq: u64, prev: &[u8]) -> (AuditEntry, Vec<u8>) {
    let entry = AuditEntry {
        seq,
        time_ms: 1_795_392_000_000,
        actor_user: None,
        actor_device: None,
        client_addr: Some("192.0.2.66".into()),
        request_id: "forged".into(),
        action: "thread.read".into(),
        resource_type: "thread".into(),
        resource_id: Some("0123456789abcdef0123456789abcdef".into()),
        outcome: curbside_proto::audit::Outcome::Allowed,
        reason: "ok".into(),
        evidence: None,
    };
    let hash = entry.hash(prev.try_into().unwrap()).unwrap().to_vec();
    (entry, hash)
}

async fn entries_forged_after_the_tree_checkpoint_are_refused(backend: Backend) {
    use curbside_proto::audit_review::{ExportLine, RecordedEntry};
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let cli = Cli::for_admin(&server.url, &server.fingerprint.to_string(), &admin).await;
    accesses(&admin, 12).await;
    let jsonl = cli.home.path().join("log.jsonl");
    let csv = cli.home.path().join("log.csv");
    for (format, file) in [("jsonl", &jsonl), ("csv", &csv)] {
        let path = file.to_str().unwrap();
        cli.run(&[
            "admin", "audit", "export", "--format", format, "--out", path,
        ])
        .await
        .unwrap();
    }
    let cli = &cli;
    let verify = |file: &std::path::Path| {
        let path = file.to_str().unwrap().to_owned();
        async move { cli.verify(&["--file", &path]).await }
    };

    // JSON Lines: an entry chained after the last one, appended after the
    // tree's checkpoint.
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut last: Option<RecordedEntry> = None;
    for line in text.lines() {
        match serde_json::from_str::<ExportLine>(line).unwrap() {
            ExportLine::Entry(recorded) => last = Some(recorded),
            ExportLine::TreeCheckpoint(tree) => assert!(tree.note.contains("curbside-audit/")),
            _ => {}
        }
    }
    let last = last.unwrap();
    let valid = verify(&jsonl).await.expect("the export verifies");
    assert_eq!(valid, last.entry.seq);
    let (entry, entry_hash) = forged(last.entry.seq + 1, &last.entry_hash);
    let line =
        serde_json::to_string(&ExportLine::Entry(RecordedEntry { entry, entry_hash })).unwrap();
    let forged_jsonl = cli.home.path().join("forged.jsonl");
    std::fs::write(&forged_jsonl, format!("{text}{line}\n")).unwrap();
    assert_eq!(verify(&forged_jsonl).await, Err(last.entry.seq + 1));
    // Without the tree's checkpoint, every entry is suspect.
    let stripped: String = text
        .lines()
        .filter(|line| !line.contains("\"tree_checkpoint\""))
        .map(|line| format!("{line}\n"))
        .collect();
    let stripped_jsonl = cli.home.path().join("stripped.jsonl");
    std::fs::write(&stripped_jsonl, stripped).unwrap();
    let broken = verify(&stripped_jsonl).await.unwrap_err();
    assert!(broken <= last.entry.seq, "{broken}");

    // CSV (taken a little later): a forged entry as a row after its last
    // entry, its readable time right.
    let text = std::fs::read_to_string(&csv).unwrap();
    let (csv_last, csv_last_hash) = text
        .split("\r\n")
        .filter(|row| row.starts_with("entry,"))
        .last()
        .map(|row| {
            let fields: Vec<&str> = row.split(',').collect();
            (
                fields[1].parse::<u64>().unwrap(),
                // `hash`, then `prev_checkpoint_hash`, `signature` and
                // `evidence`.
                hex::decode(fields[fields.len() - 4]).unwrap(),
            )
        })
        .unwrap();
    let (entry, entry_hash) = forged(csv_last + 1, &csv_last_hash);
    let row = format!(
        "entry,{},{},{},,,{},{},{},{},{},{},{},{},,,\r\n",
        entry.seq,
        entry.time_ms,
        curbside_cli::audit::utc(entry.time_ms),
        entry.client_addr.as_deref().unwrap(),
        entry.request_id,
        entry.action,
        entry.resource_type,
        entry.resource_id.as_deref().unwrap(),
        entry.outcome.as_str(),
        entry.reason,
        hex::encode(&entry_hash),
    );
    assert_eq!(verify(&csv).await, Ok(csv_last));
    let forged_csv = cli.home.path().join("forged.csv");
    std::fs::write(&forged_csv, format!("{text}{row}")).unwrap();
    assert_eq!(verify(&forged_csv).await, Err(csv_last + 1));
    // A readable time that no longer says what time_ms says is refused.
    let mut rows: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    let mut fields: Vec<String> = rows[1].split(',').map(str::to_owned).collect();
    assert_eq!(fields[0], "entry");
    let seq: u64 = fields[1].parse().unwrap();
    fields[3] = curbside_cli::audit::utc(fields[2].parse::<i64>().unwrap() + 3_600_000);
    rows[1] = fields.join(",");
    let retimed_csv = cli.home.path().join("retimed.csv");
    std::fs::write(&retimed_csv, rows.join("\r\n")).unwrap();
    assert_eq!(verify(&retimed_csv).await, Err(seq));
    let key = note_key(&admin).await.verifier_string();
    server.stop().await;

    // An outside auditor: no profile, no server, the key as printed.
    let nobody = tempfile::tempdir().unwrap();
    for (file, last) in [(&jsonl, last.entry.seq), (&csv, csv_last)] {
        let report = verify_offline(nobody.path(), file, &key, &[])
            .await
            .unwrap();
        assert!(
            report.starts_with(&format!("The audit log is valid up to sequence {last}")),
            "{report}"
        );
    }
    let error = verify_offline(nobody.path(), &forged_csv, &key, &[])
        .await
        .unwrap_err()
        .to_string();
    let forged_seq = csv_last + 1;
    assert!(
        error.contains(&format!("entries {forged_seq} to {forged_seq} come after")),
        "{error}"
    );
    // Against a checkpoint kept from before: an export that does not
    // extend it is refused.
    let kept = cli.home.path().join("kept.note");
    let note = text_tree_note(&std::fs::read_to_string(&jsonl).unwrap());
    std::fs::write(&kept, &note).unwrap();
    let kept_arg = kept.display().to_string();
    verify_offline(nobody.path(), &jsonl, &key, &["--checkpoint", &kept_arg])
        .await
        .unwrap();
    // An export cut short: with --chain-only its chain checks out, but it
    // does not reach the checkpoint kept from before.
    let full = std::fs::read_to_string(&jsonl).unwrap();
    // (Its unsigned header is edited to match, as whoever cut it would.)
    let cut: String = full
        .lines()
        .take(6)
        .filter(|line| !line.contains("\"tree_checkpoint\""))
        .map(
            |line| match serde_json::from_str::<ExportLine>(line).unwrap() {
                ExportLine::Header(mut header) => {
                    header.head_seq = 1;
                    format!(
                        "{}\n",
                        serde_json::to_string(&ExportLine::Header(header)).unwrap()
                    )
                }
                _ => format!("{line}\n"),
            },
        )
        .collect();
    let cut_jsonl = cli.home.path().join("cut.jsonl");
    std::fs::write(&cut_jsonl, cut).unwrap();
    verify_offline(nobody.path(), &cut_jsonl, &key, &["--chain-only"])
        .await
        .unwrap();
    let error = verify_offline(
        nobody.path(),
        &cut_jsonl,
        &key,
        &["--chain-only", "--checkpoint", &kept_arg],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("entries were removed from its end"),
        "{error}"
    );
    // Without --chain-only, an export lacking the tree checkpoint is refused.
    let error = verify_offline(nobody.path(), &cut_jsonl, &key, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no signed tree checkpoint"), "{error}");
    assert!(
        std::fs::read_dir(nobody.path()).unwrap().next().is_none(),
        "no profile was made"
    );
}

/// `curbside audit verify --file FILE --public-key KEY EXTRA...` as an
/// outside auditor runs it: `home` holds no profile, and no server is
/// asked.
pub(crate) async fn verify_offline(
    home: &std::path::Path,
    file: &std::path::Path,
    key: &str,
    extra: &[&str],
) -> Result<String, curbside_cli::cli::CliError> {
    use clap::Parser;
    let mut argv = vec![
        "curbside".to_owned(),
        "--home".to_owned(),
        home.display().to_string(),
        "audit".to_owned(),
        "verify".to_owned(),
        "--file".to_owned(),
        file.display().to_string(),
        "--public-key".to_owned(),
        key.to_owned(),
    ];
    argv.extend(extra.iter().map(|arg| (*arg).to_owned()));
    curbside_cli::cli::run(curbside_cli::cli::Cli::parse_from(argv)).await
}

/// The tree checkpoint's note in a JSON Lines export.
fn text_tree_note(text: &str) -> String {
    use curbside_proto::audit_review::ExportLine;
    text.lines()
        .find_map(
            |line| match serde_json::from_str::<ExportLine>(line).ok()? {
                ExportLine::TreeCheckpoint(tree) => Some(tree.note),
                _ => None,
            },
        )
        .unwrap()
}
