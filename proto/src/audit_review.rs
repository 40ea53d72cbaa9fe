//! Wire types of the audit review API, its exports and the published audit
//! key. The entry and checkpoint formats themselves are [`crate::audit`]'s.

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, Checkpoint, Outcome};
use crate::threads::Blob;

/// Where the server publishes its audit public key (no sign-in needed).
pub const KEY_PATH: &str = "/.well-known/curbside/audit-key";
/// `GET`: search the log, a page at a time.
pub const ENTRIES_PATH: &str = "/v1/audit/entries";
/// `GET`: the log (or the entries matching a filter) as one streamed file.
pub const EXPORT_PATH: &str = "/v1/audit/export";
/// `GET`: the Merkle tree's latest signed checkpoint.
pub const TREE_CHECKPOINT_PATH: &str = "/v1/audit/tree/checkpoint";
/// `GET`: that an entry is in the tree of a given size.
pub const TREE_INCLUSION_PATH: &str = "/v1/audit/tree/inclusion";
/// `GET`: that the tree of one size is a prefix of the tree of another.
pub const TREE_CONSISTENCY_PATH: &str = "/v1/audit/tree/consistency";
/// The most entries one search page returns.
pub const MAX_PAGE: u32 = 1000;
/// The export format's name, in its header line.
pub const EXPORT_FORMAT: &str = "curbside-audit-export";
/// The export format's version: 3 adds entries' `evidence` (the CSV's
/// last column), 2 the tree checkpoint.
pub const EXPORT_VERSION: u32 = 3;

/// The key that verifies the log's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditKey {
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub public_key: Vec<u8>,
    /// The installation whose log it signs.
    pub server_id: String,
}

/// The Merkle tree's latest checkpoint: a C2SP signed note
/// (`c2sp.org/tlog-checkpoint`) whose text is the log's origin, its size
/// and its root, signed by the audit key (see docs/audit-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TreeCheckpoint {
    /// The signed note, exactly as signed.
    pub note: String,
    /// Each configured witness's latest cosigned checkpoint: a signed note
    /// carrying the audit key's signature and the witness's cosignature
    /// (`c2sp.org/tlog-cosignature`), possibly of a smaller tree than
    /// `note`'s. Absent from exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnessed: Vec<WitnessedCheckpoint>,
}

/// A checkpoint a witness cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WitnessedCheckpoint {
    /// The witness's key (`name+id+base64(0x04 || public key)`).
    pub witness: String,
    /// The checkpoint with its cosignature.
    pub note: String,
}

/// Which entry to prove, in which tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct InclusionQuery {
    /// The entry's sequence number (its leaf is `seq - 1`).
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub seq: u64,
    /// The tree's size (at least `seq`); the latest checkpoint's if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub size: Option<u64>,
}

/// An entry's inclusion proof (RFC 9162 §2.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The entry's sequence number.
    pub seq: u64,
    /// The tree's size.
    pub size: u64,
    /// The entry's leaf hash, `SHA-256(0x00 || canonical_bytes)`.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub leaf_hash: Vec<u8>,
    /// The proof's hashes, in order.
    pub proof: Vec<Blob>,
}

/// Which two trees to prove consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ConsistencyQuery {
    /// The smaller tree's size (at least 1).
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub from: u64,
    /// The larger tree's size; the latest checkpoint's if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub to: Option<u64>,
}

/// A consistency proof (RFC 9162 §2.1.4) between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The smaller tree's size.
    pub from: u64,
    /// The larger tree's size.
    pub to: u64,
    /// The proof's hashes, in order (none when the sizes are equal).
    pub proof: Vec<Blob>,
}

impl AuditKey {
    /// The key as the log's signed notes name it.
    pub fn note_key(&self) -> Option<crate::note::NoteKey> {
        crate::note::NoteKey::for_audit_log(&self.server_id, &self.public_key)
    }
}

/// What to look for. Every filter given must match; none given matches
/// every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// The acting user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The resource's id (a user, device, session or thread id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The action, e.g. `auth.login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Allowed or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// At or after this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Before this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

impl AuditFilter {
    /// Whether no filter is set (the whole log is wanted).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The query of `GET /v1/audit/entries`: a filter (as in [`AuditFilter`])
/// and a page. Flat, because query strings carry no nesting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct SearchQuery {
    /// The acting user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The resource's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Allowed or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// At or after this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Before this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Entries after this sequence number (the previous page's
    /// `next_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many entries (1 to [`MAX_PAGE`]; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The export file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// JSON Lines: a header line, then one line per entry and checkpoint.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// The query of `GET /v1/audit/export`: a format and a filter; no filter
/// exports the whole log, which `verify` can check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ExportQuery {
    /// The file format.
    pub format: ExportFormat,
    /// The acting user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The resource's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Allowed or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// At or after this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Before this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

impl ExportQuery {
    /// The whole log in `format`, unfiltered: what `verify` checks.
    pub fn whole_log(format: ExportFormat) -> Self {
        Self {
            format,
            actor: None,
            resource: None,
            action: None,
            outcome: None,
            since_ms: None,
            until_ms: None,
        }
    }
}

macro_rules! filter_of {
    ($query:ty) => {
        impl $query {
            /// The filter part of the query.
            pub fn filter(&self) -> AuditFilter {
                AuditFilter {
                    actor: self.actor.clone(),
                    resource: self.resource.clone(),
                    action: self.action.clone(),
                    outcome: self.outcome,
                    since_ms: self.since_ms,
                    until_ms: self.until_ms,
                }
            }
        }
    };
}
filter_of!(SearchQuery);
filter_of!(ExportQuery);

/// An entry with the hash the log recorded for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordedEntry {
    /// The entry.
    pub entry: AuditEntry,
    /// Its chain hash as stored.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub entry_hash: Vec<u8>,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    /// Matching entries, oldest first.
    pub entries: Vec<RecordedEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// The first line of a JSON Lines export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// The installation whose log this is.
    pub server_id: String,
    /// When the export began (Unix ms).
    pub exported_at_ms: i64,
    /// The log's last entry when the export began; the export ends there.
    pub head_seq: u64,
    /// The filter applied; a filtered export has gaps, so only an
    /// unfiltered one can be verified.
    pub filter: AuditFilter,
}

/// One line of a JSON Lines export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    /// The first line.
    Header(ExportHeader),
    /// An entry.
    Entry(RecordedEntry),
    /// A checkpoint, right after the entry it covers.
    Checkpoint(Checkpoint),
    /// The Merkle tree's signed checkpoint as the export began, right
    /// after the last entry it covers.
    TreeCheckpoint(TreeCheckpoint),
}

/// The CSV export's columns, in order. Entry rows fill the entry columns
/// and `hash` (the entry hash); checkpoint rows fill `seq`, `time_ms`,
/// `hash` (the head hash), `prev_checkpoint_hash` and `signature`. Hashes
/// and signatures are lower-case hex.
pub const CSV_COLUMNS: [&str; 17] = [
    "kind",
    "seq",
    "time_ms",
    "time_utc",
    "actor_user",
    "actor_device",
    "client_addr",
    "request_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "hash",
    "prev_checkpoint_hash",
    "signature",
    "evidence",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_are_tagged_and_strict() {
        let line = ExportLine::Checkpoint(Checkpoint {
            seq: 3,
            head_hash: vec![1; 32],
            time_ms: 5,
            prev_checkpoint_hash: vec![0; 32],
            signature: vec![2; 64],
        });
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with(r#"{"kind":"checkpoint","#), "{text}");
        assert_eq!(
            crate::json::decode::<ExportLine>(text.as_bytes()).unwrap(),
            line
        );
        let extra = text.replacen('{', r#"{"extra":1,"#, 1);
        assert!(crate::json::decode::<ExportLine>(extra.as_bytes()).is_err());
    }

    #[test]
    fn an_empty_filter_is_the_whole_log() {
        assert!(AuditFilter::default().is_empty());
        let filter = AuditFilter {
            outcome: Some(Outcome::Denied),
            ..AuditFilter::default()
        };
        assert!(!filter.is_empty());
    }
}
