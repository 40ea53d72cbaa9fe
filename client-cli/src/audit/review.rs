//! Reviewing the log: a page of search results as a table, times as the
//! table shows them, and an export saved to a new file as it streams in.

use std::io::Write;
use std::path::Path;

use curbside_proto::audit_review::{AuditPage, RecordedEntry};

use super::error::AuditError;
use crate::client::Client;
use crate::show::printable;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
