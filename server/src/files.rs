//! Private files in the data directory: a directory only the server's user
//! may read, and key files written whole (synced, then renamed into place)
//! with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file or directory problem, naming the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system refused.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A directory or key file is readable by other users.
    #[error("{path} is accessible to other users (mode {mode:o}); restrict it with: {fix}")]
    TooOpen {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The command that fixes it.
        fix: String,
    },
}

/// Creates `dir` (mode 0700) if it does not exist, and refuses one that
/// other users can enter or read: it holds the database and private keys.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |source| FileError::Io {
        action: "cannot create the directory",
        path: dir.to_owned(),
        source,
    };
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mode = fs::metadata(dir).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::TooOpen {
            path: dir.to_owned(),
            mode,
            fix: format!("chmod 700 {}", dir.display()),
        });
    }
    Ok(())
}

/// Refuses a key file with permission bits beyond `allowed`.
pub fn check_key_permissions(path: &Path, allowed: u32) -> Result<(), FileError> {
    let mode = fs::metadata(path)
        .map_err(|source| FileError::Io {
            action: "cannot read",
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & !allowed != 0 {
        return Err(FileError::TooOpen {
            path: path.to_owned(),
            mode,
            fix: format!("chmod {allowed:o} {}", path.display()),
        });
    }
    Ok(())
}

/// Writes `contents` to `path` through a temporary file with `mode`, synced
/// and renamed into place, so a crash leaves either no file or a whole one.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    let io = |action, source| FileError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".curbside-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| io("cannot create", e))?;
    file.write_all(contents)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| io("cannot write", e))?;
    file.persist(path)
        .map_err(|e| io("cannot rename into place", e.error))?;
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io("cannot sync the directory of", e))?;
    Ok(())
}

/// Why a signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be written or is too open.
    #[error(transparent)]
    File(#[from] FileError),
    /// The key file could not be read.
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold an Ed25519 PKCS#8 key.
    #[error("the signing key {0} is not an Ed25519 PKCS#8 key; restore it from a backup")]
    Invalid(String),
    /// No randomness.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Loads the Ed25519 key (PKCS#8) at `path`, generating it (mode 0600, in a
/// private directory) if it does not exist. Returns the PKCS#8 bytes too.
pub fn ed25519_key(
    path: &Path,
) -> Result<(ring::signature::Ed25519KeyPair, zeroize::Zeroizing<Vec<u8>>), KeyError> {
    use ring::signature::Ed25519KeyPair;
    if !path.exists() {
        if let Some(parent) = path.parent() {
            create_private_dir(parent)?;
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| KeyError::Random)?;
        write_new_file(path, pkcs8.as_ref(), 0o600)?;
    }
    check_key_permissions(path, 0o600)?;
    let pkcs8 = fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|_| KeyError::Invalid(path.display().to_string()))?;
    Ok((pair, zeroize::Zeroizing::new(pkcs8)))
}

/// A lock on a data directory (`curbside.lock`, `flock`): every server
/// process holds it shared while it runs, and an audit key rotation holds
/// it exclusively, so a rotation cannot run beside a server that would go
/// on signing with the old key. Released when dropped. (Servers on other
/// machines sharing one PostgreSQL database have data directories of their
/// own: stop them too.)
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code, reason = "held for its lock")] fs::File);

/// Which lock to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// A server: many may share it.
    Shared,
    /// A rotation: nothing else may hold it.
    Exclusive,
}

/// Takes `data_dir`'s lock without waiting; `Ok(None)` if it is held in a
/// way that excludes `mode`.
pub fn lock_dir(data_dir: &Path, mode: LockMode) -> Result<Option<DirLock>, FileError> {
    use rustix::fs::FlockOperation;
    let path = data_dir.join("curbside.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| FileError::Io {
            action: "cannot open the lock file",
            path: path.clone(),
            source,
        })?;
    let operation = match mode {
        LockMode::Shared => FlockOperation::NonBlockingLockShared,
        LockMode::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    match rustix::fs::flock(&file, operation) {
        Ok(()) => Ok(Some(DirLock(file))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(error) => Err(FileError::Io {
            action: "cannot lock",
            path,
            source: error.into(),
        }),
    }
}
