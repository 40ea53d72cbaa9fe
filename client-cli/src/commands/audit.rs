//! `curbside admin audit ...`: searching, exporting and verifying the
//! audit log (the reading and checking itself is in `crate::audit`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use curbside_proto::audit::Outcome;
use curbside_proto::audit_review::{AuditFilter, ExportFormat, ExportQuery, SearchQuery};

use crate::audit;
use crate::error::CliError;
use crate::session::Session;
use crate::show;

/// `curbside admin audit ...`.
#[derive(Debug, Subcommand)]
pub enum AdminAuditCommand {
    /// Search the log; prints a table, oldest first.
    Search {
        /// What to look for.
        #[command(flatten)]
        filter: FilterArgs,
        /// Start after this sequence number (from the previous page).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// The most entries to show (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Export the log (or what a filter matches) to a new file.
    Export {
        /// jsonl or csv.
        #[arg(long, value_parser = parse_format)]
        format: ExportFormat,
        /// The file to write; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// What to export (a filtered export cannot be verified).
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Recompute the hash chain and check every signed checkpoint, of the
    /// server's log or of an unfiltered export file.
    Verify {
        /// Verify this export file (JSON Lines or CSV) instead of the
        /// server's log.
        #[arg(long, value_name = "EXPORT")]
        file: Option<PathBuf>,
        /// The audit public key (base64url) to trust, e.g. recorded when
        /// the server was installed; by default the server's published key.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
    },
}

/// Audit search filters.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// The acting user's id.
    #[arg(long, value_name = "USER_ID")]
    pub actor: Option<String>,
    /// A resource's id (user, device, session or thread).
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// An action, e.g. auth.login.
    #[arg(long)]
    pub action: Option<String>,
    /// allowed or denied.
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
    /// From this time: a date (2026-11-22, from its start), a local time
    /// (2026-11-22T09:00), RFC 3339 (2026-11-22T09:00:00Z) or Unix ms;
    /// local times are in this computer's zone, or UTC with --utc.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time (as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl FilterArgs {
    fn filter(&self, times: &show::Times) -> Result<AuditFilter, CliError> {
        let time = |option: &'static str, text: &Option<String>| {
            text.as_deref()
                .map(|text| times.parse(text))
                .transpose()
                .map_err(|reason| CliError::BadTime { option, reason })
        };
        Ok(AuditFilter {
            actor: self.actor.clone(),
            resource: self.resource.clone(),
            action: self.action.clone(),
            outcome: self.outcome,
            since_ms: time("--since", &self.since)?,
            until_ms: time("--until", &self.until)?,
        })
    }
}

fn parse_format(text: &str) -> Result<ExportFormat, String> {
    match text {
        "jsonl" => Ok(ExportFormat::Jsonl),
        "csv" => Ok(ExportFormat::Csv),
        _ => Err("expected jsonl or csv".to_owned()),
    }
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    match text {
        "allowed" => Ok(Outcome::Allowed),
        "denied" => Ok(Outcome::Denied),
        _ => Err("expected allowed or denied".to_owned()),
    }
}

/// Runs a `curbside admin audit` command in `session`.
pub(crate) async fn run(
    session: &mut Session,
    command: &AdminAuditCommand,
) -> Result<String, CliError> {
    match command {
        AdminAuditCommand::Search {
            filter,
            after,
            limit,
        } => {
            let filter = filter.filter(&session.times)?;
            let query = SearchQuery {
                actor: filter.actor,
                resource: filter.resource,
                action: filter.action,
                outcome: filter.outcome,
                since_ms: filter.since_ms,
                until_ms: filter.until_ms,
                after: *after,
                limit: Some(*limit),
            };
            let page = session
                .call(async |client| client.audit_search(&query).await)
                .await?;
            Ok(audit::table(&page))
        }
        AdminAuditCommand::Export {
            format,
            out,
            filter,
        } => {
            let query = export_query(*format, &filter.filter(&session.times)?);
            let response = session
                .call(async |client| client.audit_export(&query).await)
                .await?;
            let bytes = audit::save_export(&session.client, response, out).await?;
            Ok(format!(
                "Exported the audit log to {} ({bytes} bytes).",
                out.display()
            ))
        }
        AdminAuditCommand::Verify { file, public_key } => {
            let key = match public_key {
                Some(text) => curbside_proto::b64::decode(text.trim())
                    .ok()
                    .filter(|key| key.len() == 32)
                    .ok_or(CliError::BadPublicKey)?,
                None => session.client.audit_key().await?.public_key,
            };
            let verified = match file {
                Some(path) => audit::verify_file(path, &key)?,
                None => {
                    let query = export_query(ExportFormat::Jsonl, &AuditFilter::default());
                    let response = session
                        .call(async |client| client.audit_export(&query).await)
                        .await?;
                    audit::verify_stream(&session.client, response, &key).await?
                }
            };
            Ok(verified.report())
        }
    }
}

fn export_query(format: ExportFormat, filter: &AuditFilter) -> ExportQuery {
    ExportQuery {
        format,
        actor: filter.actor.clone(),
        resource: filter.resource.clone(),
        action: filter.action.clone(),
        outcome: filter.outcome,
        since_ms: filter.since_ms,
        until_ms: filter.until_ms,
    }
}
