//! Verifying the log: the whole hash chain recomputed and every
//! checkpoint's signature checked, one record at a time, from the server's
//! export as it streams in or from an export file (JSON Lines or CSV).

use std::io::{BufRead, Read};
use std::path::Path;

use curbside_proto::audit::{AuditEntry, Broken, Checkpoint, Outcome, Verifier};
use curbside_proto::audit_review::{CSV_COLUMNS, EXPORT_FORMAT, EXPORT_VERSION, ExportLine};

use super::csv_records::CsvRecords;
use super::error::AuditError;
use crate::client::Client;

/// The longest line accepted in an export (entries are a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// What a successful verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The last entry verified.
    pub last: u64,
    /// How many checkpoints verified.
    pub checkpoints: u64,
    /// The last entry a verified checkpoint covers.
    pub signed_through: u64,
}

impl Verified {
    fn of(verifier: Verifier) -> Result<Self, AuditError> {
        let (checkpoints, signed_through) = (verifier.checkpoints(), verifier.signed_through());
        let last = verifier.finish().map_err(AuditError::Broken)?;
        Ok(Self {
            last,
            checkpoints,
            signed_through,
        })
    }

    /// The report printed on success.
    pub fn report(&self) -> String {
        let mut report = format!(
            "The audit log is valid up to sequence {} ({} signed checkpoint{} verified).",
            self.last,
            self.checkpoints,
            if self.checkpoints == 1 { "" } else { "s" }
        );
        if self.signed_through < self.last {
            report.push_str(&format!(
                "\nEntries {} to {} are chained but not yet covered by a signed checkpoint; the \
                 server signs one within its checkpoint interval.",
                self.signed_through + 1,
                self.last
            ));
        }
        report
    }
}

/// Verifies a JSON Lines export as it streams from the server, with
/// `verifier` (which may carry a checkpoint the log must extend).
pub async fn verify_stream(
    client: &Client,
    mut response: reqwest::Response,
    verifier: Verifier,
) -> Result<Verified, AuditError> {
    let mut lines = JsonLines::new("the server's export", verifier, false);
    while let Some(chunk) = client.chunk(&mut response).await? {
        lines.feed(&chunk)?;
    }
    lines.finish()
}

/// Verifies an export file, JSON Lines or CSV (told apart by the first
/// byte).
pub fn verify_file(path: &Path, public_key: &[u8]) -> Result<Verified, AuditError> {
    verify_file_against(path, Verifier::new(public_key), None, false)
}

/// Verifies an export file with `verifier`, and that it extends `trusted`,
/// a tree checkpoint kept from before, if one is given. `chain_only`
/// accepts an export made before the audit log's tree (format version 1),
/// checking its chain and checkpoints alone.
pub fn verify_file_against(
    path: &Path,
    mut verifier: Verifier,
    trusted: Option<&str>,
    chain_only: bool,
) -> Result<Verified, AuditError> {
    if let Some(trusted) = trusted {
        verifier = verifier
            .extending(trusted)
            .map_err(|error| AuditError::Unreadable {
                path: "the checkpoint given with --checkpoint".to_owned(),
                reason: error.to_string(),
            })?;
    }
    let name = path.display().to_string();
    let file_error = |error| AuditError::File {
        path: name.clone(),
        error,
    };
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(file_error)?);
    let first = reader.fill_buf().map_err(file_error)?.first().copied();
    if first == Some(b'{') {
        let mut lines = JsonLines::new(&name, verifier, chain_only);
        loop {
            let buffer = reader.fill_buf().map_err(file_error)?;
            if buffer.is_empty() {
                break;
            }
            let length = buffer.len();
            lines.feed(buffer)?;
            reader.consume(length);
        }
        return lines.finish();
    }
    verify_csv(reader, &name, verifier, chain_only)
}

/// Splits a byte stream into export lines and verifies them.
struct JsonLines {
    source: String,
    verifier: Verifier,
    pending: Vec<u8>,
    line: u64,
    /// The log's last entry when the export began, from its header.
    head_seq: u64,
    /// Whether an export without the tree's checkpoint is accepted.
    chain_only: bool,
}

impl JsonLines {
    fn new(source: &str, verifier: Verifier, chain_only: bool) -> Self {
        Self {
            source: source.to_owned(),
            chain_only,
            verifier,
            pending: Vec::new(),
            line: 0,
            head_seq: 0,
        }
    }

    fn unreadable(&self, reason: String) -> AuditError {
        AuditError::Unreadable {
            path: self.source.clone(),
            reason: format!("line {}: {reason}", self.line),
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), AuditError> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&bytes[..end]);
            self.line(&line)?;
            bytes = &bytes[end + 1..];
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > MAX_LINE {
            self.line += 1;
            return Err(self.unreadable("the line is too long to be an audit record".to_owned()));
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<(), AuditError> {
        self.line += 1;
        let parsed: ExportLine = curbside_proto::json::decode(line)
            .map_err(|error| self.unreadable(format!("not an export record ({error})")))?;
        match parsed {
            ExportLine::Header(header) if self.line == 1 => {
                if header.format != EXPORT_FORMAT {
                    return Err(self.unreadable("not a Curbside audit export".to_owned()));
                }
                if !header.filter.is_empty() {
                    return Err(AuditError::Filtered);
                }
                self.head_seq = header.head_seq;
                if header.version > EXPORT_VERSION {
                    return Err(self.unreadable(format!(
                        "the export's format version {} is newer than this curbside knows ({}); \
                         update curbside",
                        header.version, EXPORT_VERSION
                    )));
                }
                // Every export carries the tree's signed checkpoint since
                // version 2; the header is not signed, so an older version
                // is accepted only when asked for.
                if !self.chain_only {
                    if header.version < 2 {
                        return Err(self.unreadable(CHAIN_ONLY.to_owned()));
                    }
                    self.verifier = std::mem::replace(&mut self.verifier, Verifier::new(&[]))
                        .requiring_tree_checkpoint();
                }
                Ok(())
            }
            _ if self.line == 1 => Err(self.unreadable(
                "the first line must be the export's header; is this a whole export?".to_owned(),
            )),
            ExportLine::Header(_) => Err(self.unreadable("a second header".to_owned())),
            ExportLine::Entry(recorded) => self
                .verifier
                .entry(&recorded.entry, &recorded.entry_hash)
                .map_err(AuditError::Broken),
            ExportLine::Checkpoint(checkpoint) => self
                .verifier
                .checkpoint(&checkpoint)
                .map_err(AuditError::Broken),
            ExportLine::TreeCheckpoint(tree) => self
                .verifier
                .tree_checkpoint(&tree.note)
                .map_err(AuditError::Broken),
        }
    }

    fn finish(mut self) -> Result<Verified, AuditError> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line)?;
        }
        if self.line == 0 {
            return Err(self.unreadable("the export is empty".to_owned()));
        }
        let last = self.verifier.last();
        if last < self.head_seq {
            return Err(AuditError::Broken(Broken {
                seq: last + 1,
                reason: format!(
                    "the log's head records entries up to {}, but the log ends at {last}: \
                     entries were removed from its end",
                    self.head_seq
                ),
            }));
        }
        Verified::of(self.verifier)
    }
}

/// Verifies a CSV export file (`name` in errors).
/// Why an export without the tree's checkpoint is refused by default.
const CHAIN_ONLY: &str = "this export was made before the audit log's Merkle tree (format \
     version 1), so it has no tree checkpoint: verify it with --chain-only, which checks its \
     chain and checkpoints but cannot tell entries added after its last checkpoint from real ones";

fn verify_csv(
    reader: impl Read,
    name: &str,
    verifier: Verifier,
    chain_only: bool,
) -> Result<Verified, AuditError> {
    let unreadable = |row: u64, reason: &str| AuditError::Unreadable {
        path: name.to_owned(),
        reason: format!("row {row}: {reason}"),
    };
    // CSV exports carry the tree's signed checkpoint after their entries.
    let mut verifier = if chain_only {
        verifier
    } else {
        verifier.requiring_tree_checkpoint()
    };
    let mut row = 0u64;
    // Exports before format version 3 have every column but the last,
    // `evidence`.
    let mut header: &[&str] = &CSV_COLUMNS;
    for fields in CsvRecords::new(reader, MAX_LINE) {
        let fields = fields.map_err(|error| AuditError::File {
            path: name.to_owned(),
            error,
        })?;
        row += 1;
        if row == 1 {
            let without_evidence = &CSV_COLUMNS[..CSV_COLUMNS.len() - 1];
            if fields == without_evidence {
                header = without_evidence;
            } else if fields != CSV_COLUMNS {
                return Err(unreadable(
                    row,
                    "not the header of a Curbside audit CSV export",
                ));
            }
            continue;
        }
        if fields.len() != header.len() {
            return Err(unreadable(row, "wrong number of columns"));
        }
        let field = |name: &str| -> String {
            header
                .iter()
                .position(|column| *column == name)
                .map(|index| fields[index].clone())
                .unwrap_or_default()
        };
        let optional = |name: &str| Some(field(name)).filter(|text| !text.is_empty());
        let number = |name: &str| {
            field(name)
                .parse::<i64>()
                .map_err(|_| unreadable(row, &format!("`{name}` is not a number")))
        };
        let bytes = |name: &str| {
            unhex(&field(name)).ok_or_else(|| unreadable(row, &format!("`{name}` is not hex")))
        };
        let seq = u64::try_from(number("seq")?).map_err(|_| unreadable(row, "negative `seq`"))?;
        match field("kind").as_str() {
            "entry" => {
                let outcome = match field("outcome").as_str() {
                    "allowed" => Outcome::Allowed,
                    // Anything else fails the hash check at this entry.
                    _ => Outcome::Denied,
                };
                let entry = AuditEntry {
                    seq,
                    time_ms: number("time_ms")?,
                    actor_user: optional("actor_user"),
                    actor_device: optional("actor_device"),
                    client_addr: optional("client_addr"),
                    request_id: field("request_id"),
                    action: field("action"),
                    resource_type: field("resource_type"),
                    resource_id: optional("resource_id"),
                    outcome,
                    reason: field("reason"),
                    evidence: optional("evidence"),
                };
                // `time_utc` is not hashed: it must say what `time_ms` says.
                if field("time_utc") != super::utc(entry.time_ms) {
                    return Err(AuditError::Broken(Broken {
                        seq,
                        reason: format!(
                            "the row's time_utc {:?} is not its time_ms {} (the readable time \
                             was altered)",
                            field("time_utc"),
                            entry.time_ms
                        ),
                    }));
                }
                verifier
                    .entry(&entry, &bytes("hash")?)
                    .map_err(AuditError::Broken)?;
            }
            "checkpoint" => {
                let checkpoint = Checkpoint {
                    seq,
                    head_hash: bytes("hash")?,
                    time_ms: number("time_ms")?,
                    prev_checkpoint_hash: bytes("prev_checkpoint_hash")?,
                    signature: bytes("signature")?,
                };
                verifier
                    .checkpoint(&checkpoint)
                    .map_err(AuditError::Broken)?;
            }
            "tree_checkpoint" => verifier
                .tree_checkpoint(&field("signature"))
                .map_err(AuditError::Broken)?,
            _ => {
                return Err(unreadable(
                    row,
                    "`kind` is not entry, checkpoint or tree_checkpoint",
                ));
            }
        }
    }
    if row == 0 {
        return Err(unreadable(0, "the export is empty"));
    }
    Verified::of(verifier)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The web console's verifier (`web/src/audit/`) is tested on these
    /// exports, made from the worked examples of docs/audit-format.md; this
    /// verifier must reach the same verdicts at the same entries, so that
    /// the browser reports what the CLI does.
    #[test]
    fn the_consoles_test_exports_break_where_the_browser_says() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/src/audit/testdata");
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("expected.json")).unwrap()).unwrap();
        // The worked example's first audit key (RFC 8032's first test key).
        let key =
            curbside_proto::b64::decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        let cases = expected.as_object().unwrap();
        assert!(cases.len() >= 10, "{cases:?}");
        for (file, verdict) in cases {
            let result = verify_file(&folder.join(file), &key);
            if verdict["ok"] == true {
                let verified = result.unwrap_or_else(|error| panic!("{file}: {error}"));
                assert_eq!(Some(verified.last), verdict["lastSeq"].as_u64(), "{file}");
            } else {
                match result {
                    Err(AuditError::Broken(broken)) => {
                        assert_eq!(Some(broken.seq), verdict["brokenSeq"].as_u64(), "{file}");
                    }
                    other => panic!("{file}: expected a broken log, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
