//! The audit log's review API: search a page at a time, export as a
//! stream, and the published key that verifies its checkpoints.
//!
//! Administrators and auditors may read the log; clinicians get 403. Each
//! read is itself an audited access (the `access` middleware records it
//! before the response leaves). Nothing here edits or deletes an entry.

use std::borrow::Cow;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use curbside_proto::audit::Checkpoint;
use curbside_proto::audit_review::{
    AuditFilter, AuditKey, AuditPage, CSV_COLUMNS, ENTRIES_PATH, EXPORT_FORMAT, EXPORT_PATH,
    EXPORT_VERSION, ExportFormat, ExportHeader, ExportLine, ExportQuery, KEY_PATH, MAX_PAGE,
    RecordedEntry, SearchQuery, TreeCheckpoint,
};
use curbside_proto::note::TreeHead;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{Error, Result};
use super::extract::Reviewer;
use super::state::AppState;
use crate::auth::rate_limit::Limit;
use crate::db::audit::{self as rows, CheckpointRow, EntryRow};

/// Entries a search page holds unless the query says otherwise.
const DEFAULT_PAGE: u32 = 100;
/// Entries read from the database per step of an export.
const EXPORT_STEP: i64 = 1000;

/// The review routes and the published key.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(key))
        .routes(routes!(search))
        .routes(routes!(export))
}

#[utoipa::path(
    get,
    path = KEY_PATH,
    operation_id = "audit.key",
    tag = "audit_log",
    responses((status = 200, description = "The public key that verifies the audit log's checkpoints", body = AuditKey)),
)]
async fn key(State(state): State<AppState>) -> Json<AuditKey> {
    Json(AuditKey {
        algorithm: "Ed25519".to_owned(),
        public_key: state.audit.public_key(),
        server_id: state.auth.server_id.clone(),
    })
}

/// Entries matching `filter` after `after` up to `through`, oldest first,
/// at most `limit`.
async fn entries(
    state: &AppState,
    filter: &AuditFilter,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<RecordedEntry>> {
    rows::entries(state.database.pool(), filter, after, through, limit)
        .await?
        .into_iter()
        .map(recorded)
        .collect()
}

fn recorded(row: EntryRow) -> Result<RecordedEntry> {
    let (entry, entry_hash) = row
        .into_entry()
        .ok_or_else(|| Error::Internal("the audit log's head row is damaged".to_owned()))?;
    Ok(RecordedEntry { entry, entry_hash })
}

async fn checkpoints(state: &AppState, after: i64, through: i64) -> Result<Vec<Checkpoint>> {
    Ok(rows::checkpoints(state.database.pool(), after, through)
        .await?
        .into_iter()
        .map(CheckpointRow::into_checkpoint)
        .collect())
}

fn check_filter(filter: &AuditFilter) -> Result<()> {
    for (name, value) in [
        ("actor", &filter.actor),
        ("resource", &filter.resource),
        ("action", &filter.action),
    ] {
        if value.as_ref().is_some_and(|text| text.len() > 256) {
            return Err(Error::InvalidRequest(format!(
                "`{name}` is longer than 256 characters; no entry has such a value"
            )));
        }
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = ENTRIES_PATH,
    operation_id = "audit.search",
    tag = "audit_log",
    params(SearchQuery),
    security(("session" = [])),
    responses((status = 200, description = "Entries matching the filter, a page at a time", body = AuditPage)),
)]
async fn search(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Query(query): Query<SearchQuery>,
) -> Result<Json<AuditPage>> {
    state
        .auth
        .limits
        .check(Limit::AuditSearchPerUser, &reviewer.user_id)?;
    let filter = query.filter();
    check_filter(&filter)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "`limit` must be from 1 to {MAX_PAGE}"
        )));
    }
    let after = i64::try_from(query.after.unwrap_or(0))
        .map_err(|_| Error::InvalidRequest("`after` is out of range".to_owned()))?;
    // One more than asked says whether there is a next page.
    let mut entries = entries(&state, &filter, after, i64::MAX, i64::from(limit) + 1).await?;
    let more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_after = if more {
        entries.last().map(|recorded| recorded.entry.seq)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}

/// Where an export is up to.
struct Cursor {
    state: AppState,
    filter: AuditFilter,
    format: ExportFormat,
    /// The last sequence written.
    after: i64,
    /// The export ends here: the log's end when it began.
    through: i64,
    /// Whether checkpoints are written (only in an unfiltered export).
    checkpoints: bool,
    /// The tree's checkpoint (its size and signed note), until written
    /// after the entry it ends at (only in an unfiltered export).
    tree: Option<(TreeHead, String)>,
    done: bool,
}

#[utoipa::path(
    get,
    path = EXPORT_PATH,
    operation_id = "audit.export",
    tag = "audit_log",
    params(ExportQuery),
    security(("session" = [])),
    responses((status = 200, description = "The log, or the entries matching the filter, as JSON lines or CSV", content((String = "application/x-ndjson"), (String = "text/csv")))),
)]
async fn export(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Query(query): Query<ExportQuery>,
) -> Result<Response> {
    state
        .auth
        .limits
        .check(Limit::AuditExportPerUser, &reviewer.user_id)?;
    let filter = query.filter();
    check_filter(&filter)?;
    // The end is fixed now, so the export is one consistent prefix of the
    // log. Rows past the head still count: a checkpoint naming entries that
    // are gone shows the log was cut short, and entries hidden by lowering
    // the head show as a break in the chain.
    // The tree's checkpoint comes from the same snapshot as the head, so it
    // covers every entry committed by then and none after.
    let extent = rows::extent(state.database.pool()).await?;
    let tree = extent
        .tree_note
        .clone()
        .and_then(|note| Some((TreeHead::from_note(&note).ok()?, note)));
    let head = extent.head;
    let through = head
        .max(extent.last_checkpoint.unwrap_or(0))
        .max(extent.last_entry.unwrap_or(0));
    let header = match query.format {
        ExportFormat::Jsonl => json_line(&ExportLine::Header(ExportHeader {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            server_id: state.auth.server_id.clone(),
            exported_at_ms: crate::clock::now_ms(),
            head_seq: u64::try_from(head).unwrap_or(0),
            filter: filter.clone(),
        }))?,
        ExportFormat::Csv => {
            let mut line = CSV_COLUMNS.join(",");
            line.push_str("\r\n");
            line.into_bytes()
        }
    };
    let cursor = Cursor {
        checkpoints: filter.is_empty(),
        tree: tree.filter(|_| filter.is_empty()),
        state,
        filter,
        format: query.format,
        after: 0,
        through,
        done: false,
    };
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(header))]);
    let rest = futures_util::stream::unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        match next_chunk(&mut cursor).await {
            Ok(Some(bytes)) => Some((Ok(Bytes::from(bytes)), cursor)),
            Ok(None) => None,
            Err(error) => {
                // The client sees the transfer fail rather than a file
                // that silently ends early.
                tracing::warn!(%error, "audit export failed part-way");
                cursor.done = true;
                Some((Err(std::io::Error::other("the export failed")), cursor))
            }
        }
    });
    let (content_type, file_name) = match query.format {
        ExportFormat::Jsonl => ("application/x-ndjson", "audit.jsonl"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "audit.csv"),
    };
    let mut response =
        Body::from_stream(futures_util::StreamExt::chain(first, rest)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The next step of an export, or `None` at its end.
async fn next_chunk(cursor: &mut Cursor) -> Result<Option<Vec<u8>>> {
    let entries = entries(
        &cursor.state,
        &cursor.filter,
        cursor.after,
        cursor.through,
        EXPORT_STEP,
    )
    .await?;
    let last = usize::try_from(EXPORT_STEP).unwrap_or(usize::MAX) > entries.len();
    let up_to = if last {
        cursor.through
    } else {
        entries
            .last()
            .and_then(|recorded| i64::try_from(recorded.entry.seq).ok())
            .unwrap_or(cursor.through)
    };
    let checkpoints = if cursor.checkpoints {
        checkpoints(&cursor.state, cursor.after, up_to).await?
    } else {
        Vec::new()
    };
    if last {
        cursor.done = true;
    }
    cursor.after = up_to;
    if entries.is_empty() && checkpoints.is_empty() && !(last && cursor.tree.is_some()) {
        return Ok(None);
    }
    let mut out = Chunk::new(cursor.format, entries.len());
    let mut checkpoints = checkpoints.into_iter().peekable();
    for recorded in entries {
        while let Some(checkpoint) = checkpoints.next_if(|c| c.seq < recorded.entry.seq) {
            out.checkpoint(checkpoint)?;
        }
        let seq = recorded.entry.seq;
        out.entry(recorded)?;
        while let Some(checkpoint) = checkpoints.next_if(|c| c.seq == seq) {
            out.checkpoint(checkpoint)?;
        }
        if let Some((head, note)) = cursor.tree.take_if(|(head, _)| head.size == seq) {
            out.tree_checkpoint(&head, note)?;
        }
    }
    for checkpoint in checkpoints {
        out.checkpoint(checkpoint)?;
    }
    // A tree checkpoint past the last entry: the entries it covers are gone,
    // which the verifier reports.
    if last && let Some((head, note)) = cursor.tree.take() {
        out.tree_checkpoint(&head, note)?;
    }
    out.finish().map(Some)
}

fn json_line(line: &ExportLine) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(line).map_err(|error| Error::Internal(error.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// One step of an export being written, in its format.
enum Chunk {
    Jsonl(Vec<u8>),
    /// RFC 4180 rows ending in CRLF. A field is quoted when it holds a
    /// comma, quote or line break, so no value can move a column or start a
    /// row; the formula guard ([`guarded`]) is applied to every field.
    Csv(Box<csv::Writer<Vec<u8>>>),
}

impl Chunk {
    fn new(format: ExportFormat, entries: usize) -> Self {
        let out = Vec::with_capacity(entries * 300);
        match format {
            ExportFormat::Jsonl => Self::Jsonl(out),
            ExportFormat::Csv => Self::Csv(Box::new(
                csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .quote_style(csv::QuoteStyle::Necessary)
                    .from_writer(out),
            )),
        }
    }

    fn entry(&mut self, recorded: RecordedEntry) -> Result<()> {
        match self {
            Self::Jsonl(out) => out.extend(json_line(&ExportLine::Entry(recorded))?),
            Self::Csv(out) => {
                let entry = &recorded.entry;
                csv_row(
                    out,
                    &[
                        "entry",
                        &entry.seq.to_string(),
                        &entry.time_ms.to_string(),
                        &utc(entry.time_ms),
                        entry.actor_user.as_deref().unwrap_or(""),
                        entry.actor_device.as_deref().unwrap_or(""),
                        entry.client_addr.as_deref().unwrap_or(""),
                        &entry.request_id,
                        &entry.action,
                        &entry.resource_type,
                        entry.resource_id.as_deref().unwrap_or(""),
                        entry.outcome.as_str(),
                        &entry.reason,
                        &hex::encode(&recorded.entry_hash),
                        "",
                        "",
                        entry.evidence.as_deref().unwrap_or(""),
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<()> {
        match self {
            Self::Jsonl(out) => out.extend(json_line(&ExportLine::Checkpoint(checkpoint))?),
            Self::Csv(out) => csv_row(
                out,
                &[
                    "checkpoint",
                    &checkpoint.seq.to_string(),
                    &checkpoint.time_ms.to_string(),
                    &utc(checkpoint.time_ms),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    &hex::encode(&checkpoint.head_hash),
                    &hex::encode(&checkpoint.prev_checkpoint_hash),
                    &hex::encode(&checkpoint.signature),
                    "",
                ],
            )?,
        }
        Ok(())
    }

    fn tree_checkpoint(&mut self, head: &TreeHead, note: String) -> Result<()> {
        match self {
            Self::Jsonl(out) => {
                out.extend(json_line(&ExportLine::TreeCheckpoint(TreeCheckpoint {
                    note,
                    witnessed: Vec::new(),
                }))?)
            }
            Self::Csv(out) => {
                csv_row(
                    out,
                    &[
                        "tree_checkpoint",
                        &head.size.to_string(),
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        &hex::encode(head.root),
                        "",
                        &note,
                        "",
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>> {
        match self {
            Self::Jsonl(out) => Ok(out),
            Self::Csv(out) => out
                .into_inner()
                .map_err(|error| Error::Internal(error.to_string())),
        }
    }
}

fn csv_row(out: &mut csv::Writer<Vec<u8>>, fields: &[&str]) -> Result<()> {
    guarded_row(out, fields).map_err(|error| Error::Internal(error.to_string()))
}

fn guarded_row(out: &mut csv::Writer<Vec<u8>>, fields: &[&str]) -> csv::Result<()> {
    for field in fields {
        match guarded(field) {
            Cow::Borrowed(field) => out.write_field(field)?,
            Cow::Owned(field) => out.write_field(field)?,
        }
    }
    out.write_record(None::<&[u8]>)
}

/// A field a spreadsheet would read as a formula (starting with `=`, `+`,
/// `-`, `@`, or a tab or carriage return before one, as OWASP lists them)
/// gets a leading `'`, as does one already starting with `'`, so the guard
/// can be undone exactly.
fn guarded(field: &str) -> Cow<'_, str> {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        Cow::Owned(format!("'{field}"))
    } else {
        Cow::Borrowed(field)
    }
}

/// `2026-11-22T21:54:58.123Z`: RFC 3339 in UTC, always with milliseconds.
const UTC_MILLIS: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// Unix milliseconds as RFC 3339 UTC, e.g. `2026-11-22T21:54:58.123Z`.
fn utc(time_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(UTC_MILLIS).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_cannot_move_columns_or_become_formulas() {
        let mut out = Chunk::new(ExportFormat::Csv, 1);
        let Chunk::Csv(writer) = &mut out else {
            unreachable!()
        };
        csv_row(
            writer,
            &["a,b", "say \"hi\"", "x\r\ny", "=1+1", "-A1", "'q", "plain"],
        )
        .unwrap();
        csv_row(
            writer,
            &["", "#x", " lead", "tab\there", "\t=1", "\r=1", ""],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out.finish().unwrap()).unwrap(),
            "\"a,b\",\"say \"\"hi\"\"\",\"x\r\ny\",'=1+1,'-A1,''q,plain\r\n\
             ,#x, lead,tab\there,'\t=1,\"'\r=1\",\r\n"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(utc(1_795_392_000_123), "2026-11-23T00:00:00.123Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
    }
}
