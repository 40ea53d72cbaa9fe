//! A profile's directory: its store file, sealed under the passphrase and
//! replaced whole at every save; the lock that makes commands on the
//! profile take turns; and the note on its server kept in the clear.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::contents::StoreContents;

const FORMAT: &str = "curbside-store-v1";
const FILE_NAME: &str = "store.json";
const LOCK_NAME: &str = "store.lock";
const SERVER_NAME: &str = "server.json";
const SALT_LEN: usize = 16;
/// argon2id cost: memory in KiB, passes, lanes.
const ARGON2_COST: (u32, u32, u32) = (19 * 1024, 2, 1);
/// The largest argon2id costs a store file may ask for.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;
/// The shortest passphrase accepted for a new store.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    kdf: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    #[serde(with = "curbside_proto::b64")]
    salt: Vec<u8>,
    #[serde(with = "curbside_proto::b64")]
    nonce: Vec<u8>,
    #[serde(with = "curbside_proto::b64")]
    ciphertext: Vec<u8>,
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No store in this profile.
    #[error(
        "profile {0:?} has no enrolled device yet; run `curbside --profile {0} enroll --code CODE` first"
    )]
    Missing(String),
    /// A store already exists.
    #[error("profile {0:?} already holds an enrolled device; choose another with --profile NAME")]
    Exists(String),
    /// The passphrase does not open the store.
    #[error("the passphrase for profile {0:?} is wrong (or its store file is damaged)")]
    WrongPassphrase(String),
    /// A new passphrase is too short.
    #[error("choose a passphrase of at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// The file is not a store.
    #[error("{0} is not a Curbside store file")]
    Malformed(PathBuf),
    /// The file system refused.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Key derivation or randomness failed.
    #[error("the store's encryption failed: {0}")]
    Crypto(String),
}

/// A named profile's directory.
#[derive(Debug, Clone)]
pub struct Profile {
    name: String,
    dir: PathBuf,
}

impl Profile {
    /// The profile `name` under `home` (`home/profiles/name`).
    pub fn new(home: &Path, name: &str) -> Result<Self, StoreError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.starts_with('.');
        if !valid {
            return Err(StoreError::Io {
                action: "use the profile name",
                path: PathBuf::from(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "use letters, digits, '-', '_' or '.'",
                ),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            dir: home.join("profiles").join(name),
        })
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The profile's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store file's path.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Whether a store exists.
    pub fn exists(&self) -> bool {
        self.store_path().exists()
    }

    /// Opens the store with `passphrase`.
    pub fn load(&self, passphrase: &str) -> Result<StoreContents, StoreError> {
        let path = self.store_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(self.name.clone()));
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let envelope: Envelope = curbside_proto::json::decode(&bytes)
            .ok()
            .filter(|envelope: &Envelope| envelope.format == FORMAT && envelope.kdf == "argon2id")
            .ok_or_else(|| StoreError::Malformed(path.clone()))?;
        // The costs come from the file: bound them, so a tampered file
        // cannot make opening it exhaust memory or time.
        let costs = (envelope.m_cost_kib, envelope.t_cost, envelope.p_cost);
        if costs.0 > MAX_M_COST_KIB || costs.1 > MAX_T_COST || costs.2 > MAX_P_COST {
            return Err(StoreError::Malformed(path));
        }
        let key = derive_key(passphrase, &envelope.salt, costs)?;
        let nonce = Nonce::try_assume_unique_for_key(&envelope.nonce)
            .map_err(|_| StoreError::Malformed(path.clone()))?;
        let mut buffer = Zeroizing::new(envelope.ciphertext);
        let plaintext = key
            .open_in_place(nonce, Aad::from(FORMAT.as_bytes()), &mut buffer)
            .map_err(|_| StoreError::WrongPassphrase(self.name.clone()))?;
        curbside_proto::json::decode(plaintext).map_err(|_| StoreError::Malformed(path))
    }

    /// The exclusive lock on this profile, if no other command holds it
    /// now (creating the profile's directory if needed).
    pub fn try_lock(&self) -> Result<Option<ProfileLock>, StoreError> {
        self.make_dir()?;
        let path = self.dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io {
                action: "open",
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ProfileLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(source)) => Err(StoreError::Io {
                action: "lock",
                path,
                source,
            }),
        }
    }

    /// Creates the profile's directory (0700) if needed, and refuses one
    /// that others can read.
    fn make_dir(&self) -> Result<(), StoreError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(io("create", &self.dir))?;
        }
        let mode = fs::metadata(&self.dir)
            .map_err(io("inspect", &self.dir))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::Io {
                action: "use the profile directory (others can read it; run chmod 700 on it)",
                path: self.dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            });
        }
        Ok(())
    }
    /// Saves `contents` under `passphrase`, creating the profile if needed.
    /// The caller holds the profile's lock.
    pub fn save(&self, contents: &StoreContents, passphrase: &str) -> Result<(), StoreError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        self.make_dir()?;
        let random = SystemRandom::new();
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        random
            .fill(&mut salt)
            .and_then(|()| random.fill(&mut nonce))
            .map_err(|_| StoreError::Crypto("no randomness".to_owned()))?;
        let key = derive_key(passphrase, &salt, ARGON2_COST)?;
        let mut buffer = Zeroizing::new(
            serde_json::to_vec(contents).map_err(|error| StoreError::Crypto(error.to_string()))?,
        );
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(FORMAT.as_bytes()),
            &mut *buffer,
        )
        .map_err(|_| StoreError::Crypto("sealing failed".to_owned()))?;
        let envelope = Envelope {
            format: FORMAT.to_owned(),
            kdf: "argon2id".to_owned(),
            m_cost_kib: ARGON2_COST.0,
            t_cost: ARGON2_COST.1,
            p_cost: ARGON2_COST.2,
            salt: salt.to_vec(),
            nonce: nonce.to_vec(),
            ciphertext: buffer.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&envelope)
            .map_err(|error| StoreError::Crypto(error.to_string()))?;
        let path = self.store_path();
        replace_file(&self.dir, &path, &bytes, true)?;
        // In case the file existed with looser permissions.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(io("protect", &path))?;
        self.write_server_note(contents)
    }
}

/// What a profile says of its server, kept in the clear beside the store
/// (`server.json`: none of it is secret) so that `curbside health` needs no
/// passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerNote {
    /// The server's base URL.
    pub server: String,
    /// The pinned certificate fingerprint, if trusted by pin.
    pub pin_sha256: Option<String>,
    /// The CA file, if trusted by CA.
    pub ca_cert: Option<PathBuf>,
}

impl Profile {
    /// What the profile says of its server, if it says anything.
    pub fn server_note(&self) -> Option<ServerNote> {
        let bytes = fs::read(self.dir.join(SERVER_NAME)).ok()?;
        curbside_proto::json::decode(&bytes).ok()
    }

    fn write_server_note(&self, contents: &StoreContents) -> Result<(), StoreError> {
        let note = ServerNote {
            server: contents.server.clone(),
            pin_sha256: contents.pin_sha256.clone(),
            ca_cert: contents.ca_cert.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&note)
            .map_err(|error| StoreError::Crypto(error.to_string()))?;
        let path = self.dir.join(SERVER_NAME);
        replace_file(&self.dir, &path, &bytes, false)
    }
}

/// An exclusive lock on a profile's store, released when dropped (the OS
/// releases it too if the process dies).
#[derive(Debug)]
pub struct ProfileLock {
    _file: fs::File,
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    (m_cost, t_cost, p_cost): (u32, u32, u32),
) -> Result<LessSafeKey, StoreError> {
    let params = argon2::Params::new(m_cost, t_cost, p_cost, Some(32))
        .map_err(|error| StoreError::Crypto(error.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut *key)
        .map_err(|error| StoreError::Crypto(error.to_string()))?;
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &*key)
        .map_err(|_| StoreError::Crypto("bad key length".to_owned()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Replaces `path`, in `dir`, with a file holding `bytes`: written to a
/// new file beside it (its owner's only) and renamed over it, so that a
/// reader finds the old contents or the new, never part of either.
/// `durable` puts the bytes on disk before the rename and the rename on
/// disk after it, so a crash cannot bring back the state the MLS keys of
/// the new one replaced. Errors name `path`.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    let io = |action| {
        move |source| StoreError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let mut file = tempfile::Builder::new()
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io("create"))?;
    file.as_file_mut().write_all(bytes).map_err(io("write"))?;
    if durable {
        file.as_file().sync_all().map_err(io("write"))?;
    }
    // A file not put in place is removed when dropped.
    file.persist(path)
        .map_err(|error| io("replace")(error.error))?;
    if durable {
        fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io("sync the folder of"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> StoreContents {
        StoreContents {
            server: "https://127.0.0.1:8443".into(),
            pin_sha256: None,
            pin_key_sha256: None,
            ca_cert: None,
            server_id: "s".into(),
            user_id: "u".into(),
            device_id: "d".into(),
            device_key_pkcs8: vec![42; 83],
            session: None,
            mls_state: Vec::new(),
            threads: Default::default(),
            audit_key: None,
            audit_checkpoint: None,
        }
    }

    #[test]
    fn saves_opens_and_refuses_a_wrong_passphrase() {
        let home = tempfile::tempdir().unwrap();
        let profile = Profile::new(home.path(), "alice").unwrap();
        profile.save(&contents(), "correct horse").unwrap();
        let mode = fs::metadata(profile.store_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = profile.load("correct horse").unwrap();
        assert_eq!(loaded.device_key_pkcs8, vec![42; 83]);
        assert!(matches!(
            profile.load("wrong horse"),
            Err(StoreError::WrongPassphrase(_))
        ));
        assert!(Profile::new(home.path(), "../etc").is_err());
    }

    #[test]
    fn one_command_at_a_time_holds_a_profile() {
        let home = tempfile::tempdir().unwrap();
        let profile = Profile::new(home.path(), "alice").unwrap();
        let held = profile.try_lock().unwrap().expect("the lock is free");
        // Another opening of the lock file (as another process would) waits.
        let other = Profile::new(home.path(), "alice").unwrap();
        assert!(other.try_lock().unwrap().is_none());
        // Other profiles are not affected.
        let bob = Profile::new(home.path(), "bob").unwrap();
        assert!(bob.try_lock().unwrap().is_some());
        drop(held);
        assert!(other.try_lock().unwrap().is_some());
        let mode = fs::metadata(home.path().join("profiles/alice/store.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
