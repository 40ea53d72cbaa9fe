//! The audit log's API: its published key, searches, and exports streamed
//! as they arrive.

use std::time::Duration;

use curbside_proto::audit_review::{
    AuditFilter, AuditKey, AuditPage, ConsistencyProof, ENTRIES_PATH, EXPORT_PATH, ExportFormat,
    ExportQuery, InclusionProof, KEY_PATH, SearchQuery, TREE_CHECKPOINT_PATH,
    TREE_CONSISTENCY_PATH, TREE_INCLUSION_PATH, TreeCheckpoint,
};
use reqwest::StatusCode;

use super::connection::{Client, encode_query};
use super::error::ClientError;

/// How long an audit export (a whole log, perhaps) may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

impl Client {
    /// The audit log's published checkpoint key (no session needed).
    pub async fn audit_key(&self) -> Result<AuditKey, ClientError> {
        self.get(KEY_PATH).await
    }

    /// The audit tree's latest signed checkpoint.
    pub async fn audit_checkpoint(&self) -> Result<TreeCheckpoint, ClientError> {
        self.get(TREE_CHECKPOINT_PATH).await
    }

    /// The proof that the audit tree of `from` entries is a prefix of the
    /// one of `to`.
    pub async fn audit_consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, ClientError> {
        let pairs = [("from", from.to_string()), ("to", to.to_string())];
        self.get(&with_query(TREE_CONSISTENCY_PATH, &pairs)).await
    }

    /// The proof that entry `seq` is in the audit tree of `size` entries.
    pub async fn audit_inclusion(
        &self,
        seq: u64,
        size: u64,
    ) -> Result<InclusionProof, ClientError> {
        let pairs = [("seq", seq.to_string()), ("size", size.to_string())];
        self.get(&with_query(TREE_INCLUSION_PATH, &pairs)).await
    }

    /// One page of audit search results.
    pub async fn audit_search(&self, query: &SearchQuery) -> Result<AuditPage, ClientError> {
        let mut pairs = filter_pairs(&query.filter());
        if let Some(after) = query.after {
            pairs.push(("after", after.to_string()));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit", limit.to_string()));
        }
        self.get(&with_query(ENTRIES_PATH, &pairs)).await
    }

    /// Starts an audit export; the caller reads the body as it arrives.
    pub async fn audit_export(
        &self,
        query: &ExportQuery,
    ) -> Result<reqwest::Response, ClientError> {
        let mut pairs = vec![(
            "format",
            match query.format {
                ExportFormat::Jsonl => "jsonl",
                ExportFormat::Csv => "csv",
            }
            .to_owned(),
        )];
        pairs.extend(filter_pairs(&query.filter()));
        let url = self
            .base
            .join(&with_query(EXPORT_PATH, &pairs))
            .map_err(|_| ClientError::InvalidServerUrl(self.base.to_string()))?;
        let mut request = self.http.get(url).timeout(EXPORT_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self
            .decode::<serde_json::Value>(response)
            .await
            .err()
            .unwrap_or(ClientError::UnexpectedResponse {
                status: StatusCode::OK,
                detail: "an export failed without an error body".to_owned(),
            }))
    }

    /// The next piece of a streamed body.
    pub async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, ClientError> {
        response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))
    }
}

/// The query pairs of an audit filter.
fn filter_pairs(filter: &AuditFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    let texts = [
        ("actor", &filter.actor),
        ("resource", &filter.resource),
        ("action", &filter.action),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            pairs.push((name, value.clone()));
        }
    }
    if let Some(outcome) = filter.outcome {
        pairs.push(("outcome", outcome.as_str().to_owned()));
    }
    if let Some(since) = filter.since_ms {
        pairs.push(("since_ms", since.to_string()));
    }
    if let Some(until) = filter.until_ms {
        pairs.push(("until_ms", until.to_string()));
    }
    pairs
}

/// `path?name=value&...`, percent-encoded.
fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query(value)))
        .collect();
    format!("{path}?{}", query.join("&"))
}
