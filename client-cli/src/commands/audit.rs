//! `curbside admin audit ...`: searching, exporting and verifying the
//! audit log; and `curbside audit verify`, which checks an export file
//! with no profile and no server, as an outside auditor does (the reading
//! and checking itself is in `crate::audit`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use curbside_proto::audit::{Outcome, Verifier};
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
        /// The audit key to trust, as the server printed it at start or
        /// in base64url; by default the key this profile pinned at
        /// enrollment.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// Accept an export file made before the audit log's tree (format
        /// version 1), checking its chain and checkpoints only.
        #[arg(long)]
        chain_only: bool,
    },
}

/// `curbside audit ...`: what an outside auditor can do with an export.
#[derive(Debug, Subcommand)]
pub enum OfflineAuditCommand {
    /// Verify an export file (JSON Lines or CSV) with the audit key you
    /// recorded: no profile and no server needed.
    Verify {
        /// The export file.
        #[arg(long, value_name = "EXPORT")]
        file: PathBuf,
        /// The audit key as the server printed it at start
        /// (`curbside-audit/ID+KEYID+BASE64`), or its 32-byte public key in
        /// base64url.
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// A tree checkpoint you kept (a signed note file, from an earlier
        /// export or `curbside admin audit` command): the export must
        /// extend it.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Accept an export made before the audit log's tree (format
        /// version 1): its chain and checkpoints are checked, but entries
        /// added after its last checkpoint cannot be told from real ones.
        #[arg(long)]
        chain_only: bool,
    },
}

/// Runs a `curbside audit` command: nothing but the files it names.
pub(crate) fn run_offline(command: &OfflineAuditCommand) -> Result<String, CliError> {
    match command {
        OfflineAuditCommand::Verify {
            file,
            public_key,
            checkpoint,
            chain_only,
        } => {
            let verifier = verifier_for(public_key)?;
            let trusted = checkpoint
                .as_deref()
                .map(|path| {
                    std::fs::read_to_string(path).map_err(|error| audit::AuditError::File {
                        path: path.display().to_string(),
                        error,
                    })
                })
                .transpose()?;
            Ok(
                audit::verify_file_against(file, verifier, trusted.as_deref(), *chain_only)?
                    .report(),
            )
        }
    }
}

/// A verifier for the audit key given as the server prints it (which also
/// names the log: its tree checkpoints must be that log's) or as the
/// 32-byte public key in base64url.
fn verifier_for(text: &str) -> Result<Verifier, CliError> {
    let text = text.trim();
    if let Some(key) = curbside_proto::note::NoteKey::from_verifier_string(text) {
        return Ok(Verifier::new(&key.public_key).for_origin(&key.name));
    }
    curbside_proto::b64::decode(text)
        .ok()
        .filter(|key| key.len() == 32)
        .map(|key| Verifier::new(&key))
        .ok_or(CliError::BadPublicKey)
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

/// Runs a `curbside admin audit` command in `session`, once this device
/// has checked that the log extends the last checkpoint it verified.
pub(crate) async fn run(
    session: &mut Session,
    command: &AdminAuditCommand,
) -> Result<String, CliError> {
    // Verifying the server's log checks it first, so that a damaged log is
    // reported at the entry where it breaks; the witness follows.
    if !matches!(command, AdminAuditCommand::Verify { .. }) {
        witness(session).await?;
    }
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
        AdminAuditCommand::Verify {
            file,
            public_key,
            chain_only,
        } => {
            let verifier = match (public_key, &session.contents.audit_key) {
                (Some(text), _) => verifier_for(text)?,
                // The pinned key is the one signing now; the log began with
                // the key its hand-overs lead back to.
                (None, Some(text)) => {
                    match curbside_proto::note::NoteKey::from_verifier_string(text) {
                        Some(pinned) if file.is_none() => {
                            let query = audit::handover_query();
                            let page = session
                                .call(async |client| client.audit_search(&query).await)
                                .await?;
                            let first = audit::first_key(&pinned, &audit::handovers_in(page));
                            Verifier::new(&first.public_key).for_origin(&first.name)
                        }
                        _ => verifier_for(text)?,
                    }
                }
                (None, None) => {
                    let key = session.client.audit_key().await?;
                    match key.note_key() {
                        Some(key) => Verifier::new(&key.public_key).for_origin(&key.name),
                        None => Verifier::new(&key.public_key),
                    }
                }
            };
            let verified = match file {
                Some(path) => audit::verify_file_against(path, verifier, None, *chain_only)?,
                None => {
                    // The log must also extend the checkpoint this device
                    // saw last.
                    let verifier = match &session.contents.audit_checkpoint {
                        Some(note) => verifier.extending(note).map_err(|error| {
                            audit::AuditError::Witness(format!(
                                "the audit checkpoint this profile remembers no longer \
                                 verifies ({error}); the profile's store was altered"
                            ))
                        })?,
                        None => verifier,
                    };
                    let query = export_query(ExportFormat::Jsonl, &AuditFilter::default());
                    let response = session
                        .call(async |client| client.audit_export(&query).await)
                        .await?;
                    let verified =
                        audit::verify_stream(&session.client, response, verifier).await?;
                    witness(session).await?;
                    verified
                }
            };
            Ok(verified.report())
        }
    }
}

/// Checks the server's latest audit checkpoint against what this profile
/// pinned and saw (`crate::audit::witness`), and remembers it.
async fn witness(session: &mut Session) -> Result<(), CliError> {
    let pinned = session.contents.audit_key.clone();
    let remembered = session.contents.audit_checkpoint.clone();
    let latest = session
        .call(async |client| client.audit_checkpoint().await)
        .await?;
    let witnessed = audit::witness(
        &session.client,
        &latest.note,
        pinned.as_deref(),
        remembered.as_deref(),
    )
    .await?;
    session.contents.audit_key = Some(witnessed.key);
    session.contents.audit_checkpoint = Some(witnessed.checkpoint);
    session.save()
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
