//! `curbside admin audit ...`: read, export and verify the audit log.
//!
//! Verification recomputes the whole hash chain and checks every
//! checkpoint's signature, one record at a time, so a log of any size is
//! checked in constant memory, whether it streams from the server or comes
//! from an export file (JSON Lines or CSV).

use std::io::{BufRead, Read, Write};
use std::path::Path;

use curbside_proto::audit::{AuditEntry, Broken, Checkpoint, Outcome, Verifier};
use curbside_proto::audit_review::{
    AuditPage, CSV_COLUMNS, EXPORT_FORMAT, ExportLine, RecordedEntry,
};

use crate::client::{Client, ClientError};
use crate::show::printable;

/// The longest line accepted in an export (entries are a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// Why an audit command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log does not verify.
    #[error("{0}")]
    Broken(Broken),
    /// The export cannot be read as one.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file (or "the server's export").
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A filtered export has gaps by design.
    #[error(
        "this export is filtered, so its entries do not form the whole chain; verify an export \
         made without filters"
    )]
    Filtered,
    /// The output file already exists.
    #[error("{0} already exists; choose another file name or remove it first")]
    Exists(String),
    /// A local file could not be read or written.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The search page as a table, with how to get the next page.
pub fn table(page: &AuditPage) -> String {
    if page.entries.is_empty() {
        return "No audit entries match.".to_owned();
    }
    let mut lines = vec![format!(
        "{:>8}  {:<24}  {:<32}  {:<28}  {:<44}  {:<7}  {:<20}  {}",
        "SEQ", "TIME (UTC)", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "REASON", "CLIENT"
    )];
    for RecordedEntry { entry, .. } in &page.entries {
        let resource = match &entry.resource_id {
            Some(id) => format!("{}:{}", entry.resource_type, id),
            None => entry.resource_type.clone(),
        };
        lines.push(printable(&format!(
            "{:>8}  {:<24}  {:<32}  {:<28}  {:<44}  {:<7}  {:<20}  {}",
            entry.seq,
            utc(entry.time_ms),
            entry.actor_user.as_deref().unwrap_or("-"),
            entry.action,
            resource,
            entry.outcome.as_str(),
            entry.reason,
            entry.client_addr.as_deref().unwrap_or("-"),
        )));
    }
    if let Some(after) = page.next_after {
        lines.push(format!("More entries match: repeat with --after {after}"));
    }
    lines.join("\n")
}

/// Unix milliseconds as RFC 3339 UTC, always with milliseconds (so table
/// columns line up), e.g. `2026-11-22T21:54:58.120Z`.
pub fn utc(time_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(time_ms) {
        Ok(at) => at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => time_ms.to_string(),
    }
}

/// Parses a time given as RFC 3339 (`2026-11-22T09:00:00Z`), a date or a
/// date and time in UTC, or Unix ms.
pub fn parse_time(text: &str) -> Result<i64, String> {
    crate::show::Times::new(true).parse(text)
}

/// Streams an export into `out`, which must not exist yet; returns the
/// bytes written. A cut-off export leaves no file behind.
pub async fn save_export(
    client: &Client,
    mut response: reqwest::Response,
    out: &Path,
) -> Result<u64, AuditError> {
    let path = out.display().to_string();
    let file_error = |error: std::io::Error| AuditError::File {
        path: path.clone(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(out).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            AuditError::Exists(path.clone())
        } else {
            file_error(error)
        }
    })?;
    let mut writer = std::io::BufWriter::new(file);
    let mut written = 0u64;
    let result = async {
        while let Some(chunk) = client.chunk(&mut response).await? {
            writer.write_all(&chunk).map_err(file_error)?;
            written += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        }
        writer.flush().map_err(file_error)?;
        writer.get_ref().sync_all().map_err(file_error)?;
        Ok::<_, AuditError>(())
    }
    .await;
    if let Err(error) = result {
        drop(writer);
        let _ = std::fs::remove_file(out);
        return Err(error);
    }
    Ok(written)
}

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

/// Verifies a JSON Lines export as it streams from the server.
pub async fn verify_stream(
    client: &Client,
    mut response: reqwest::Response,
    public_key: &[u8],
) -> Result<Verified, AuditError> {
    let mut lines = JsonLines::new("the server's export", public_key);
    while let Some(chunk) = client.chunk(&mut response).await? {
        lines.feed(&chunk)?;
    }
    lines.finish()
}

/// Verifies an export file, JSON Lines or CSV (told apart by the first
/// byte).
pub fn verify_file(path: &Path, public_key: &[u8]) -> Result<Verified, AuditError> {
    let name = path.display().to_string();
    let file_error = |error| AuditError::File {
        path: name.clone(),
        error,
    };
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(file_error)?);
    let first = reader.fill_buf().map_err(file_error)?.first().copied();
    if first == Some(b'{') {
        let mut lines = JsonLines::new(&name, public_key);
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
    verify_csv(reader, &name, public_key)
}

/// Splits a byte stream into export lines and verifies them.
struct JsonLines {
    source: String,
    verifier: Verifier,
    pending: Vec<u8>,
    line: u64,
    /// The log's last entry when the export began, from its header.
    head_seq: u64,
}

impl JsonLines {
    fn new(source: &str, public_key: &[u8]) -> Self {
        Self {
            source: source.to_owned(),
            verifier: Verifier::new(public_key),
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

fn verify_csv(
    mut reader: impl BufRead,
    name: &str,
    public_key: &[u8],
) -> Result<Verified, AuditError> {
    let unreadable = |row: u64, reason: &str| AuditError::Unreadable {
        path: name.to_owned(),
        reason: format!("row {row}: {reason}"),
    };
    let mut verifier = Verifier::new(public_key);
    let mut row = 0u64;
    while let Some(fields) = csv_record(&mut reader).map_err(|error| AuditError::File {
        path: name.to_owned(),
        error,
    })? {
        row += 1;
        if row == 1 {
            if fields != CSV_COLUMNS {
                return Err(unreadable(
                    row,
                    "not the header of a Curbside audit CSV export",
                ));
            }
            continue;
        }
        if fields.len() != CSV_COLUMNS.len() {
            return Err(unreadable(row, "wrong number of columns"));
        }
        let field = |name: &str| -> String {
            CSV_COLUMNS
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
                };
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
            _ => return Err(unreadable(row, "`kind` is neither entry nor checkpoint")),
        }
    }
    if row == 0 {
        return Err(unreadable(0, "the export is empty"));
    }
    Verified::of(verifier)
}

/// Reads one RFC 4180 record, undoing the export's formula guard (a
/// leading `'`); `None` at the end of the input.
fn csv_record(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut text = String::new();
    loop {
        // Bounded, so a file without line breaks cannot fill memory.
        let room = MAX_LINE.saturating_sub(text.len()) + 1;
        let read = (&mut *reader)
            .take(u64::try_from(room).unwrap_or(u64::MAX))
            .read_line(&mut text)?;
        if text.len() > MAX_LINE {
            return Err(std::io::Error::other("a record is too long"));
        }
        // An odd number of quotes so far: the line break is inside a field.
        if read == 0 || text.matches('"').count().is_multiple_of(2) {
            break;
        }
    }
    if text.is_empty() {
        return Ok(None);
    }
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    Ok(Some(
        fields
            .into_iter()
            .map(|field| match field.strip_prefix('\'') {
                Some(rest) => rest.to_owned(),
                None => field,
            })
            .collect(),
    ))
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

    #[test]
    fn csv_records_undo_quoting_and_the_formula_guard() {
        let input = "\"a,b\",\"say \"\"hi\"\"\",\"x\r\ny\",'=1+1,''q,plain\r\nnext\r\n";
        let mut reader = std::io::Cursor::new(input.as_bytes());
        assert_eq!(
            csv_record(&mut reader).unwrap().unwrap(),
            vec!["a,b", "say \"hi\"", "x\r\ny", "=1+1", "'q", "plain"]
        );
        assert_eq!(csv_record(&mut reader).unwrap().unwrap(), vec!["next"]);
        assert_eq!(csv_record(&mut reader).unwrap(), None);
    }

    #[test]
    fn times_print_with_milliseconds() {
        assert_eq!(utc(1_795_392_000_120), "2026-11-23T00:00:00.120Z");
    }

    #[test]
    fn times_parse_from_rfc3339_or_milliseconds() {
        assert_eq!(parse_time("1795392000000"), Ok(1_795_392_000_000));
        assert_eq!(parse_time("2026-11-23T00:00:00Z"), Ok(1_795_392_000_000));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
