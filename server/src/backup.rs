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
        "--audit-key must be the audit key the log started with, as the server printed it at \
         start (curbside-audit/ID+KEYID+BASE64), or its 32-byte public key in base64url (the \
         public_key of /.well-known/curbside/audit-key)"
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
    /// The installation the backup is of.
    installation_id: String,
    /// Every other file in the backup, by path, with its SHA-256 (hex).
    files: std::collections::BTreeMap<String, String>,
}

/// The manifest's signature's name in the file: the audit key's Ed25519
/// signature of `MANIFEST.json`'s bytes, hex. The audit key is the one the
/// log's last checkpoint proves, so the signature makes every file the
/// manifest lists (the token key, the TLS key) as trustworthy as the log.
const SIGNATURE: &str = "MANIFEST.sig";

/// The SHA-256 of a file, hex, read a piece at a time.
fn sha256_file(path: &Path) -> Result<String, BackupError> {
    let mut file = std::fs::File::open(path).map_err(io("cannot read", path))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(io("cannot read", path))?;
        if read == 0 {
            return Ok(hex::encode(context.finish()));
        }
        context.update(&buffer[..read]);
    }
}

/// Every file under `root`, by its path from `root` (`/`-separated).
fn files_under(root: &Path) -> Result<Vec<String>, BackupError> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io("cannot read", &folder))? {
            let entry = entry.map_err(io("cannot read", &folder))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io("cannot read", &path))?;
            if kind.is_dir() {
                folders.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Copies the folder `from` to `to` (files and folders only), private.
fn copy_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .map_err(io("cannot make", to))?;
    for relative in files_under(from)? {
        let source = from.join(&relative);
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io("cannot make", parent))?;
        }
        std::fs::copy(&source, &target).map_err(io("cannot copy", &source))?;
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io("cannot protect", &target))?;
    }
    Ok(())
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
        let url = crate::config::DatabaseUrl::sqlite_in(work.path());
        Database::open_as_is(&url).await.map_err(database)?
    };
    let installation_id = described
        .installation_id_if_any()
        .await
        .map_err(database)?
        .ok_or_else(|| BackupError::Database("it has no installation id".to_owned()))?;
    let migrations = described
        .applied_migrations()
        .await
        .map_err(database)?
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    let head = rows::head(described.pool()).await.map_err(database)?;
    described.close().await;
    // The folders as they are now, so that what is hashed is what is
    // written.
    for folder in FOLDERS {
        let path = config.data_dir.join(folder);
        if path.is_dir() {
            copy_private(&path, &work.path().join(folder))?;
        }
    }
    let mut files = std::collections::BTreeMap::new();
    for relative in files_under(work.path())? {
        let listed = relative == DATABASE
            || FOLDERS
                .iter()
                .any(|folder| relative.starts_with(&format!("{folder}/")));
        if listed {
            let hash = sha256_file(&work.path().join(&relative))?;
            files.insert(relative, hash);
        }
    }
    let key_path = config.data_dir.join(KEY_FILE);
    if !key_path.is_file() {
        return Err(BackupError::Busy(format!(
            "{} is missing: there is no audit key to sign the backup with",
            key_path.display()
        )));
    }
    let signer = AuditSigner::at(&key_path, &installation_id)
        .map_err(|error| BackupError::Busy(error.to_string()))?;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        made_by: env!("CARGO_PKG_VERSION").to_owned(),
        made_at_ms: now_ms(),
        backend: if postgres { "postgres" } else { "sqlite" }.to_owned(),
        migrations,
        audit_seq: head.seq,
        audit_hash: hex::encode(&head.entry_hash),
        installation_id,
        files,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(database)?;
    let signature = hex::encode(signer.sign_bytes(&manifest_json));

    let mut file = tempfile::Builder::new()
        .prefix(".curbside-backup-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(parent)
        .map_err(io("cannot write in", parent))?;
    {
        let mut archive = tar::Builder::new(file.as_file_mut());
        archive.mode(tar::HeaderMode::Complete);
        for (name, bytes) in [
            (MANIFEST, manifest_json.as_slice()),
            (SIGNATURE, signature.as_bytes()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
            header.set_mode(0o600);
            header.set_mtime(u64::try_from(manifest.made_at_ms / 1000).unwrap_or(0));
            header.set_cksum();
            archive
                .append_data(&mut header, name, bytes)
                .map_err(io("cannot write", out))?;
        }
        for relative in manifest.files.keys() {
            archive
                .append_path_with_name(work.path().join(relative), relative)
                .map_err(io("cannot write", out))?;
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

/// The audit key given: as the server printed it at start
/// (`curbside-audit/ID+KEYID+BASE64`, which also names the log), or the
/// 32-byte public key in base64url, as `/.well-known/curbside/audit-key`
/// publishes it in `public_key`.
fn published_key(text: &str) -> Result<Published, BackupError> {
    let text = text.trim();
    if let Some(key) = curbside_proto::note::NoteKey::from_verifier_string(text) {
        return Ok(Published::Named(key));
    }
    curbside_proto::b64::decode(text)
        .ok()
        .filter(|key| key.len() == 32)
        .map(Published::Bare)
        .ok_or(BackupError::BadKey)
}

/// An audit key the operator gave.
#[derive(Debug, Clone)]
enum Published {
    /// With the log's name.
    Named(curbside_proto::note::NoteKey),
    /// The public key alone.
    Bare(Vec<u8>),
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
    let published = audit_key.map(published_key).transpose()?;
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
    let unpacked = unpack(from, staging.path())?;
    let manifest = &unpacked.manifest;
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
    let checked = check(config, staging.path(), &unpacked, published.as_ref()).await;
    let report = match checked {
        Ok(report) => report,
        Err(error) => {
            if let Some(file) = placed {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = file.clone().into_os_string();
                    path.push(suffix);
                    let _ = std::fs::remove_file(path);
                }
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
fn unpack(from: &Path, staging: &Path) -> Result<Unpacked, BackupError> {
    let not_a_backup = |why: String| BackupError::NotABackup(from.to_owned(), why);
    let file = std::fs::File::open(from).map_err(io("cannot open", from))?;
    let mut archive = tar::Archive::new(file);
    // Modes are set here, not taken from the file.
    archive.set_preserve_permissions(false);
    let mut manifest = None;
    let mut signature = None;
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
        if path == Path::new(MANIFEST) || path == Path::new(SIGNATURE) {
            let mut bytes = Vec::new();
            entry
                .by_ref()
                .take(1024 * 1024)
                .read_to_end(&mut bytes)
                .map_err(|error| not_a_backup(error.to_string()))?;
            if path == Path::new(MANIFEST) {
                let parsed = serde_json::from_slice::<Manifest>(&bytes)
                    .map_err(|error| not_a_backup(format!("its manifest: {error}")))?;
                manifest = Some((parsed, bytes));
            } else {
                let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                signature = Some(
                    hex::decode(text)
                        .map_err(|_| not_a_backup("its manifest's signature".to_owned()))?,
                );
            }
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
    let (manifest, manifest_bytes) =
        manifest.ok_or_else(|| not_a_backup("it has no MANIFEST.json".to_owned()))?;
    let signature =
        signature.ok_or_else(|| not_a_backup("its manifest is not signed".to_owned()))?;
    // Everything unpacked is private, and is exactly what the manifest
    // lists, each file with its hash.
    let found = files_under(staging)?;
    for relative in &found {
        let path = staging.join(relative);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io("cannot protect", &path))?;
        match manifest.files.get(relative) {
            Some(hash) if *hash == sha256_file(&path)? => {}
            Some(_) => {
                return Err(not_a_backup(format!(
                    "{relative} is not the file its manifest lists (its SHA-256 differs)"
                )));
            }
            None => {
                return Err(not_a_backup(format!(
                    "it holds {relative}, which its manifest does not list"
                )));
            }
        }
    }
    if let Some(missing) = manifest.files.keys().find(|listed| !found.contains(listed)) {
        return Err(not_a_backup(format!(
            "{missing}, which its manifest lists, is missing"
        )));
    }
    let mut folders = vec![staging.to_owned()];
    while let Some(folder) = folders.pop() {
        std::fs::set_permissions(&folder, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io("cannot protect", &folder))?;
        for entry in std::fs::read_dir(&folder).map_err(io("cannot read", &folder))? {
            let entry = entry.map_err(io("cannot read", &folder))?;
            if entry
                .file_type()
                .map_err(io("cannot read", &folder))?
                .is_dir()
            {
                folders.push(entry.path());
            }
        }
    }
    Ok(Unpacked {
        manifest,
        manifest_bytes,
        signature,
    })
}

/// A backup unpacked and its files checked against its manifest (whose
/// signature is checked with the log).
struct Unpacked {
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signature: Vec<u8>,
}

/// Checks the restored database: its migrations, and its audit log from
/// the first entry against the published key (else the backup's own).
async fn check(
    config: &Config,
    staging: &Path,
    unpacked: &Unpacked,
    published: Option<&Published>,
) -> Result<String, BackupError> {
    let database = Database::open_as_is(&config.database)
        .await
        .map_err(database)?;
    let result = check_database(&database, staging, unpacked, published).await;
    database.close().await;
    result
}

async fn check_database(
    database: &Database,
    staging: &Path,
    unpacked: &Unpacked,
    published: Option<&Published>,
) -> Result<String, BackupError> {
    let manifest = &unpacked.manifest;
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

    // The audit log, from its first entry, of the installation the backup
    // is of.
    let server_id = database
        .installation_id_if_any()
        .await
        .map_err(database_error)?
        .ok_or_else(|| BackupError::Migrations("the database has no installation id".to_owned()))?;
    if server_id != manifest.installation_id {
        return Err(BackupError::Migrations(format!(
            "the database is installation {server_id}, but the backup is of installation {}: \
             restore the dump made with this backup",
            manifest.installation_id
        )));
    }
    let key_path = staging.join(KEY_FILE);
    if !key_path.is_file() {
        return Err(BackupError::NotABackup(
            staging.to_owned(),
            "it holds no audit key".to_owned(),
        ));
    }
    let own = AuditSigner::at(&key_path, &server_id)
        .map_err(|error| BackupError::NotABackup(staging.to_owned(), error.to_string()))?;
    // The manifest, and so every file it lists, is the one this audit key
    // signed; that the key is the log's is checked below, from the log.
    let public = own.public_key();
    if ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
        .verify(&unpacked.manifest_bytes, &unpacked.signature)
        .is_err()
    {
        return Err(BackupError::NotABackup(
            staging.to_owned(),
            "its manifest's signature does not verify with its audit key: the files were \
             changed"
                .to_owned(),
        ));
    }
    let (mut verifier, shown, against) = match published {
        Some(Published::Named(key)) => (
            Verifier::new(&key.public_key).for_origin(&key.name),
            key.verifier_string(),
            "the audit key given (--audit-key)",
        ),
        Some(Published::Bare(key)) => (
            Verifier::new(key),
            curbside_proto::b64::encode(key),
            "the audit key given (--audit-key)",
        ),
        None => {
            let key = first_key(staging).unwrap_or_else(|| own.note_key().clone());
            (
                Verifier::new(&key.public_key).for_origin(&key.name),
                key.verifier_string(),
                "the backup's own audit key (give --audit-key to check against the key you \
                 published)",
            )
        }
    };
    let checkpoints = rows::checkpoints(database.pool(), i64::MIN, i64::MAX)
        .await
        .map_err(database_error)?
        .into_iter()
        .map(rows::CheckpointRow::into_checkpoint)
        .collect::<Vec<_>>();
    let last_checkpoint = checkpoints.last().cloned();
    let mut checkpoints = checkpoints.iter().peekable();
    let mut after = 0;
    let mut count = 0u64;
    // The hash of the entry the manifest names, once read.
    let mut at_manifest = None;
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
            if i64::try_from(seq).ok() == Some(manifest.audit_seq) {
                at_manifest = Some(hex::encode(&hash));
            }
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
    if let Some(note) = rows::head(database.pool())
        .await
        .map_err(database_error)?
        .tree_note
    {
        verifier
            .tree_checkpoint(&note)
            .map_err(BackupError::Audit)?;
    }
    let signed = verifier.signed_through();
    let last = verifier.finish().map_err(BackupError::Audit)?;
    if count == 0 {
        return Err(BackupError::Audit(Broken {
            seq: 1,
            reason: "the log is empty: a server's log starts at its first start".to_owned(),
        }));
    }
    if i64::try_from(last).unwrap_or(i64::MAX) < manifest.audit_seq {
        return Err(BackupError::Audit(Broken {
            seq: last + 1,
            reason: format!(
                "the backup's manifest names entry {}, but the log ends at {last}",
                manifest.audit_seq
            ),
        }));
    }
    if at_manifest.as_deref() != Some(manifest.audit_hash.as_str()) {
        return Err(BackupError::Audit(Broken {
            seq: u64::try_from(manifest.audit_seq).unwrap_or(0),
            reason: "the entry the backup's manifest names is not in the log as it was".to_owned(),
        }));
    }
    // The backup's audit key (which signed the manifest) is the one the log
    // now signs with: its last checkpoint, reached through any hand-over
    // from the key given.
    if !last_checkpoint.is_some_and(|checkpoint| checkpoint.verify(&public)) {
        return Err(BackupError::NotABackup(
            staging.to_owned(),
            "its audit key is not the key that signs the log's last checkpoint".to_owned(),
        ));
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
        shown
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
