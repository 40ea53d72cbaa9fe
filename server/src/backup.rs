//! `curbside-server backup` and `restore`.
//!
//! A backup is one tar file: `MANIFEST.json` (what it is, the schema's
//! migrations and the audit log's head when it was made), the data
//! directory's keys and certificate (`keys/`, `tls/`), and on SQLite a
//! transaction-consistent copy of the database (`curbside.db`, made with
//! `VACUUM INTO` while the server runs). On PostgreSQL the database is
//! copied with `pg_dump` (docs/operations.md); the backup holds the rest.
//! The file holds the server's private keys and every ciphertext: it is
//! written 0600, and is to be kept as the database is.
//!
//! A restore goes into an empty data directory (and, on PostgreSQL, a
//! database `pg_restore` has filled) and checks the copy before the server
//! can use it: every migration it had must be one this build knows, with
//! the same checksum (a copy made by a newer Curbside is refused; an older
//! one is brought up to date when the server starts), and the audit log
//! must verify from its first entry, every checkpoint signed, against the
//! key the operator published (`--audit-key`) or, failing that, the
//! backup's own.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use curbside_proto::audit::{Broken, Verifier};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditSigner, KEY_FILE};
use crate::clock::now_ms;
use crate::config::Config;
use crate::db::Database;
use crate::db::audit as rows;
use curbside_proto::audit_review::AuditFilter;

/// What a backup file says it is.
const FORMAT: &str = "curbside-backup-1";
/// The manifest's name in the file.
const MANIFEST: &str = "MANIFEST.json";
/// The SQLite copy's name in the file.
const DATABASE: &str = "curbside.db";
/// The data directory's folders a backup holds.
const FOLDERS: [&str; 2] = ["keys", "tls"];
/// Audit entries read at a time while verifying.
const PAGE: i64 = 5_000;

/// Why a backup or restore failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The output exists.
    #[error("{0} exists; name a new file (a backup never overwrites one)")]
    Exists(PathBuf),
    /// The data directory is in use by a key rotation, or (restoring) by
    /// a server.
    #[error("{0}")]
    Busy(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("the database: {0}")]
    Database(String),
    /// The file is not a Curbside backup, or is damaged.
    #[error("{0} is not a readable Curbside backup: {1}")]
    NotABackup(PathBuf, String),
    /// The target is not empty.
    #[error(
        "{0} already holds a Curbside installation; restore into an empty data directory (move \
         this one aside first)"
    )]
    NotEmpty(PathBuf),
    /// A migration the build does not know, or whose checksum differs.
    #[error("{0}")]
    Migrations(String),
    /// The audit log does not verify.
    #[error(
        "the backup's audit log does not verify ({0}); it was altered or damaged: do not use it, \
         and keep it for investigation"
    )]
    Audit(Broken),
    /// The key given is not one.
    #[error(
        "--audit-key must be the audit key as the server printed it at start \
         (curbside-audit/ID+KEYID+BASE64)"
    )]
    BadKey,
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> BackupError + 'p {
    move |source| BackupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn database(error: impl std::fmt::Display) -> BackupError {
    BackupError::Database(error.to_string())
}

/// What a backup says of itself.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    /// The version of `curbside-server` that made it.
    made_by: String,
    /// When (Unix ms).
    made_at_ms: i64,
    /// `sqlite` or `postgres`.
    backend: String,
    /// The migrations the database had, by version.
    migrations: Vec<i64>,
    /// The audit log's last entry then (on PostgreSQL, when the keys were
    /// copied; the dump is made apart).
    audit_seq: i64,
    /// That entry's hash, hex.
    audit_hash: String,
}

/// Writes a backup of the server `config` describes to `out`, while it
/// runs; returns what to tell the operator.
pub async fn backup(config: &Config, out: &Path) -> Result<String, BackupError> {
    if out.exists() {
        return Err(BackupError::Exists(out.to_owned()));
    }
    // Shared, as a running server holds it: only a key rotation (which
    // holds it alone) is kept out while the keys are copied.
    let _lock = crate::files::lock_dir(&config.data_dir, crate::files::LockMode::Shared)
        .map_err(|error| BackupError::Busy(error.to_string()))?
        .ok_or_else(|| {
            BackupError::Busy(
                "an audit key rotation holds the data directory; back up once it is done"
                    .to_owned(),
            )
        })?;
    let parent = out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".curbside-backup-")
        .tempdir_in(parent)
        .map_err(io("cannot make a work folder in", parent))?;
    let live = Database::open_as_is(&config.database)
        .await
        .map_err(database)?;
    let postgres = live.is_postgres();
    // On SQLite the manifest describes the copy itself.
    let copy = work.path().join(DATABASE);
    let described = if postgres {
        live
    } else {
        live.copy_sqlite_to(&copy).await.map_err(database)?;
        live.close().await;
        let url = crate::config::DatabaseUrl::parse(&format!("sqlite://{}", copy.display()))
            .map_err(database)?;
        Database::open_as_is(&url).await.map_err(database)?
    };
    let migrations = described
        .applied_migrations()
        .await
        .map_err(database)?
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    let head = rows::head(described.pool()).await.map_err(database)?;
    described.close().await;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        made_by: env!("CARGO_PKG_VERSION").to_owned(),
        made_at_ms: now_ms(),
        backend: if postgres { "postgres" } else { "sqlite" }.to_owned(),
        migrations,
        audit_seq: head.seq,
        audit_hash: hex::encode(&head.entry_hash),
    };

    let mut file = tempfile::Builder::new()
        .prefix(".curbside-backup-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(parent)
        .map_err(io("cannot write in", parent))?;
    {
        let mut archive = tar::Builder::new(file.as_file_mut());
        archive.mode(tar::HeaderMode::Complete);
        let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(database)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(manifest_json.len()).unwrap_or(u64::MAX));
        header.set_mode(0o600);
        header.set_mtime(u64::try_from(manifest.made_at_ms / 1000).unwrap_or(0));
        header.set_cksum();
        archive
            .append_data(&mut header, MANIFEST, manifest_json.as_slice())
            .map_err(io("cannot write", out))?;
        if !postgres {
            archive
                .append_path_with_name(&copy, DATABASE)
                .map_err(io("cannot write", out))?;
        }
        for folder in FOLDERS {
            let path = config.data_dir.join(folder);
            if path.is_dir() {
                archive
                    .append_dir_all(folder, &path)
                    .map_err(io("cannot copy", &path))?;
            }
        }
        archive.finish().map_err(io("cannot write", out))?;
    }
    file.as_file().sync_all().map_err(io("cannot write", out))?;
    file.persist_noclobber(out)
        .map_err(|error| BackupError::Io {
            action: "cannot write",
            path: out.to_owned(),
            source: error.error,
        })?;
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    let size = std::fs::metadata(out).map(|meta| meta.len()).unwrap_or(0);
    let mut said = format!(
        "Backed up to {} ({size} bytes): audit log through entry {}, {} migrations, the keys \
         and the certificate.",
        out.display(),
        manifest.audit_seq,
        manifest.migrations.len(),
    );
    if postgres {
        said.push_str(
            "\nThe database is PostgreSQL: dump it too, with pg_dump (docs/operations.md), and \
             keep both together.",
        );
    }
    said.push_str(
        "\nThe file holds the server's private keys: keep it as safe as the server itself.",
    );
    Ok(said)
}

/// Whether `data_dir` holds nothing of an installation (a lock file, or
/// nothing at all, may be there).
fn is_empty(data_dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(data_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io("cannot read", data_dir))?;
                if entry.file_name() != "curbside.lock" {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(BackupError::Io {
            action: "cannot read",
            path: data_dir.to_owned(),
            source,
        }),
    }
}

/// Restores the backup `from` into the data directory (and database)
/// `config` describes, once it has checked it; returns what to tell the
/// operator. `audit_key` is the audit key as the server printed it.
pub async fn restore(
    config: &Config,
    from: &Path,
    audit_key: Option<&str>,
) -> Result<String, BackupError> {
    let published = audit_key
        .map(|text| {
            curbside_proto::note::NoteKey::from_verifier_string(text.trim())
                .ok_or(BackupError::BadKey)
        })
        .transpose()?;
    let data_dir = &config.data_dir;
    if !is_empty(data_dir)? {
        return Err(BackupError::NotEmpty(data_dir.clone()));
    }
    let sqlite_file = config.database.sqlite_file();
    if let Some(file) = &sqlite_file
        && file.exists()
    {
        return Err(BackupError::NotEmpty(file.clone()));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(io("cannot make", data_dir))?;
    // Alone: no server may start on it while it is filled.
    let _lock = crate::files::lock_dir(data_dir, crate::files::LockMode::Exclusive)
        .map_err(|error| BackupError::Busy(error.to_string()))?
        .ok_or_else(|| {
            BackupError::Busy(format!(
                "a server or another command is using {}; stop it first",
                data_dir.display()
            ))
        })?;
    let staging = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(data_dir)
        .map_err(io("cannot make a work folder in", data_dir))?;
    let manifest = unpack(from, staging.path())?;
    if manifest.format != FORMAT {
        return Err(BackupError::NotABackup(
            from.to_owned(),
            format!("its format is {:?}, not {FORMAT}", manifest.format),
        ));
    }
    let postgres = config.database.is_postgres();
    if postgres != (manifest.backend == "postgres") {
        return Err(BackupError::NotABackup(
            from.to_owned(),
            format!(
                "it is a backup of a {} installation; restore it with a database_url of that kind",
                manifest.backend
            ),
        ));
    }
    // The database: the backup's copy, put in place (and taken away again
    // if the checks fail), or the one pg_restore filled.
    let placed = match &sqlite_file {
        Some(file) => {
            let copy = staging.path().join(DATABASE);
            if !copy.is_file() {
                return Err(BackupError::NotABackup(
                    from.to_owned(),
                    "it holds no database".to_owned(),
                ));
            }
            std::fs::rename(&copy, file).map_err(io("cannot put the database at", file))?;
            Some(file.clone())
        }
        None => None,
    };
    let checked = check(config, staging.path(), &manifest, published.as_ref()).await;
    let report = match checked {
        Ok(report) => report,
        Err(error) => {
            if let Some(file) = placed {
                let _ = std::fs::remove_file(file);
            }
            return Err(error);
        }
    };
    for folder in FOLDERS {
        let from = staging.path().join(folder);
        if from.is_dir() {
            let to = data_dir.join(folder);
            std::fs::rename(&from, &to).map_err(io("cannot put in place", &to))?;
        }
    }
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(format!(
        "Restored {} into {}.\n{report}\nStart the server with the same settings; it brings the \
         schema up to date if the backup is older than this version.",
        from.display(),
        data_dir.display()
    ))
}

/// Unpacks the backup into `staging`, taking only what a backup holds, and
/// returns its manifest.
fn unpack(from: &Path, staging: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |why: String| BackupError::NotABackup(from.to_owned(), why);
    let file = std::fs::File::open(from).map_err(io("cannot open", from))?;
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(true);
    let mut manifest = None;
    for entry in archive
        .entries()
        .map_err(|error| not_a_backup(error.to_string()))?
    {
        let mut entry = entry.map_err(|error| not_a_backup(error.to_string()))?;
        let path = entry
            .path()
            .map_err(|error| not_a_backup(error.to_string()))?
            .into_owned();
        let first = path
            .components()
            .next()
            .and_then(|part| part.as_os_str().to_str())
            .unwrap_or("");
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(not_a_backup(format!(
                "{} is neither a file nor a folder",
                path.display()
            )));
        }
        if path == Path::new(MANIFEST) {
            let mut text = String::new();
            entry
                .by_ref()
                .take(64 * 1024)
                .read_to_string(&mut text)
                .map_err(|error| not_a_backup(error.to_string()))?;
            manifest = Some(
                serde_json::from_str::<Manifest>(&text)
                    .map_err(|error| not_a_backup(format!("its manifest: {error}")))?,
            );
            continue;
        }
        if !(path == Path::new(DATABASE) || FOLDERS.contains(&first)) {
            return Err(not_a_backup(format!(
                "it holds {}, which no backup does",
                path.display()
            )));
        }
        // `unpack_in` refuses paths that leave the folder.
        let inside = entry
            .unpack_in(staging)
            .map_err(|error| not_a_backup(error.to_string()))?;
        if !inside {
            return Err(not_a_backup(format!(
                "{} points outside the data directory",
                path.display()
            )));
        }
    }
    manifest.ok_or_else(|| not_a_backup("it has no MANIFEST.json".to_owned()))
}

/// Checks the restored database: its migrations, and its audit log from
/// the first entry against the published key (else the backup's own).
async fn check(
    config: &Config,
    staging: &Path,
    manifest: &Manifest,
    published: Option<&curbside_proto::note::NoteKey>,
) -> Result<String, BackupError> {
    let database = Database::open_as_is(&config.database)
        .await
        .map_err(database)?;
    let result = check_database(&database, staging, manifest, published).await;
    database.close().await;
    result
}

async fn check_database(
    database: &Database,
    staging: &Path,
    manifest: &Manifest,
    published: Option<&curbside_proto::note::NoteKey>,
) -> Result<String, BackupError> {
    // Migrations: each applied one known, with the same checksum.
    let known = database.known_migrations();
    let applied = database
        .applied_migrations()
        .await
        .map_err(database_error)?;
    if applied.is_empty() {
        return Err(BackupError::Migrations(
            "the database has no Curbside schema: on PostgreSQL, pg_restore the dump into it \
             first (docs/operations.md)"
                .to_owned(),
        ));
    }
    for (version, checksum) in &applied {
        match known.iter().find(|(known, _, _)| known == version) {
            None => {
                return Err(BackupError::Migrations(format!(
                    "the backup's database has migration {version}, which this version of \
                     curbside-server does not know: it was made by a newer Curbside; restore it \
                     with that version"
                )));
            }
            Some((_, description, known)) if known != checksum => {
                return Err(BackupError::Migrations(format!(
                    "the backup's migration {version} ({description}) is not this version's \
                     (its checksum differs): the schema was changed by hand; do not use it"
                )));
            }
            Some(_) => {}
        }
    }
    let pending = known.len().saturating_sub(applied.len());

    // The audit log, from its first entry.
    let server_id = database
        .installation_id_if_any()
        .await
        .map_err(database_error)?
        .ok_or_else(|| BackupError::Migrations("the database has no installation id".to_owned()))?;
    let own = AuditSigner::at(&staging.join(KEY_FILE), &server_id)
        .map_err(|error| BackupError::NotABackup(staging.to_owned(), error.to_string()))?;
    let (start_key, against) = match published {
        Some(key) => (key.clone(), "the audit key given (--audit-key)"),
        None => (
            first_key(staging).unwrap_or_else(|| own.note_key().clone()),
            "the backup's own audit key (give --audit-key to check against the key you \
             published)",
        ),
    };
    let mut verifier = Verifier::new(&start_key.public_key).for_origin(&start_key.name);
    let checkpoints = rows::checkpoints(database.pool(), i64::MIN, i64::MAX)
        .await
        .map_err(database_error)?
        .into_iter()
        .map(rows::CheckpointRow::into_checkpoint)
        .collect::<Vec<_>>();
    let mut checkpoints = checkpoints.iter().peekable();
    let mut after = 0;
    let mut count = 0u64;
    loop {
        let page = rows::entries(
            database.pool(),
            &AuditFilter::default(),
            after,
            i64::MAX,
            PAGE,
        )
        .await
        .map_err(database_error)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in page {
            let (entry, hash) = row.into_entry().ok_or_else(|| {
                BackupError::Audit(Broken {
                    seq: u64::try_from(after).unwrap_or(0),
                    reason: "an entry cannot be read".to_owned(),
                })
            })?;
            let seq = entry.seq;
            verifier.entry(&entry, &hash).map_err(BackupError::Audit)?;
            count += 1;
            while let Some(checkpoint) = checkpoints.next_if(|c| c.seq <= seq) {
                verifier
                    .checkpoint(checkpoint)
                    .map_err(BackupError::Audit)?;
            }
        }
    }
    for checkpoint in checkpoints {
        verifier
            .checkpoint(checkpoint)
            .map_err(BackupError::Audit)?;
    }
    let signed = verifier.signed_through();
    let last = verifier.finish().map_err(BackupError::Audit)?;
    if i64::try_from(last).unwrap_or(i64::MAX) < manifest.audit_seq {
        return Err(BackupError::Audit(Broken {
            seq: last + 1,
            reason: format!(
                "the backup's manifest names entry {}, but the log ends at {last}",
                manifest.audit_seq
            ),
        }));
    }
    Ok(format!(
        "Checked: {} migrations, all this version's{}; the audit log verifies, {count} entries \
         through {last} (signed through {signed}), against {against}: {}.",
        applied.len(),
        if pending > 0 {
            format!(" ({pending} newer ones are applied at start)")
        } else {
            String::new()
        },
        start_key.verifier_string()
    ))
}

fn database_error(error: sqlx::Error) -> BackupError {
    database(error)
}

/// The key a rotated log started with: the oldest retired key the backup
/// holds (`keys/audit-ed25519.ID.retired.pub`, by time).
fn first_key(staging: &Path) -> Option<curbside_proto::note::NoteKey> {
    let mut retired: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(staging.join("keys"))
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".retired.pub")
            })
            .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
            .collect();
    retired.sort();
    let (_, oldest) = retired.first()?;
    let text = std::fs::read_to_string(oldest).ok()?;
    curbside_proto::note::NoteKey::from_verifier_string(text.trim())
}
