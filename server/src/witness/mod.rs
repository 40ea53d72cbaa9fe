//! `curbside-server witness`: an independent witness of audit logs, as
//! `c2sp.org/tlog-witness` defines one. It follows the logs whose keys it
//! is given, remembers the last tree it cosigned of each, and cosigns a
//! new checkpoint (`c2sp.org/tlog-cosignature`, Ed25519) only when a
//! consistency proof shows that tree is a prefix of the new one. A server
//! whose log was rewound or forked cannot get its new history cosigned.
//!
//! It is meant to run on another machine, under other administrators than
//! the server's: then rewriting the log needs both. This module is the
//! decision and the state; `serve` is its HTTPS front.

pub mod serve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curbside_proto::merkle::{self, Hash};
use curbside_proto::note::{self, NoteError, NoteKey, TreeHead};
use curbside_proto::witness::{self, AddCheckpoint, CosignerKey, Refusal, Seen};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::files::{self, FileError, KeyError};

/// The witness's cosigning key (PKCS#8), in its data directory.
pub const KEY_FILE: &str = "keys/witness-ed25519.pk8";
/// What the witness has cosigned, in its data directory.
pub const STATE_FILE: &str = "witness-state.json";

/// Why the witness cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The state could not be written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The key exists but the state is gone: this witness no longer knows
    /// what it cosigned.
    #[error(
        "the witness state {0} is missing but its key exists: a witness that forgot what it \
         cosigned could cosign a rewritten log; restore the state file from a backup, or \
         retire this witness (delete its key, and give the servers its new key)"
    )]
    StateMissing(String),
    /// The state cannot be read.
    #[error("cannot read the witness state {path}: {reason}; restore it from a backup")]
    StateUnreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A setting is wrong.
    #[error("{0}")]
    Setting(String),
}

/// The state file: per log origin, the last tree cosigned.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    logs: BTreeMap<String, SeenLog>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenLog {
    size: u64,
    /// The root, base64.
    root: String,
    /// The checkpoint as submitted, with this witness's cosignature.
    checkpoint: String,
}

impl SeenLog {
    fn seen(&self) -> Option<Seen> {
        let root = STANDARD.decode(&self.root).ok()?;
        Some(Seen {
            size: self.size,
            root: Hash::try_from(root).ok()?,
        })
    }
}

/// A witness: its key, the logs it follows and what it cosigned.
pub struct Witness {
    key: Ed25519KeyPair,
    cosigner: CosignerKey,
    /// The keys trusted for each log origin.
    logs: BTreeMap<String, Vec<NoteKey>>,
    state_path: PathBuf,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.cosigner.name)
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens the witness named `name` in `data_dir` (making its key and an
    /// empty state on first use), following the logs of `logs`.
    pub fn open(data_dir: &Path, name: &str, logs: &[NoteKey]) -> Result<Self, WitnessError> {
        if name.is_empty() || name.contains(['+', ' ']) || name.chars().any(char::is_control) {
            return Err(WitnessError::Setting(format!(
                "the witness name {name:?} must be non-empty, without spaces or `+` (e.g. \
                 witness.hospital.example/audit)"
            )));
        }
        if logs.is_empty() {
            return Err(WitnessError::Setting(
                "give at least one log to witness: --log with the audit key that \
                 `curbside-server serve` prints"
                    .to_owned(),
            ));
        }
        files::create_private_dir(data_dir)?;
        let key_path = data_dir.join(KEY_FILE);
        let state_path = data_dir.join(STATE_FILE);
        let new_key = !key_path.exists();
        let (key, _pkcs8) = files::ed25519_key(&key_path)?;
        let state = if state_path.exists() {
            read_state(&state_path)?
        } else if new_key {
            let state = State::default();
            write_state(&state_path, &state)?;
            state
        } else {
            return Err(WitnessError::StateMissing(state_path.display().to_string()));
        };
        let public_key = key
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Invalid(key_path.display().to_string()))?;
        let mut trusted: BTreeMap<String, Vec<NoteKey>> = BTreeMap::new();
        for log in logs {
            trusted
                .entry(log.name.clone())
                .or_default()
                .push(log.clone());
        }
        Ok(Self {
            key,
            cosigner: CosignerKey {
                name: name.to_owned(),
                public_key,
            },
            logs: trusted,
            state_path,
            state: tokio::sync::Mutex::new(state),
        })
    }

    /// The witness's cosigning key.
    pub fn key(&self) -> &CosignerKey {
        &self.cosigner
    }

    /// The origins of the logs it follows.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// Handles an `add-checkpoint` body at `now` (POSIX seconds): the
    /// cosignature line, or why not.
    pub async fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, Refusal> {
        let request =
            AddCheckpoint::parse(body).map_err(|error| Refusal::BadRequest(error.to_string()))?;
        let head = TreeHead::from_note(&request.checkpoint).map_err(|_| {
            Refusal::BadRequest("the checkpoint is not a well-formed signed note".to_owned())
        })?;
        let keys = self
            .logs
            .get(&head.origin)
            .ok_or_else(|| Refusal::UnknownLog(head.origin.clone()))?;
        // A signature by a trusted key must be there, and every one of them
        // must verify; others are ignored.
        let mut text = None;
        for key in keys {
            match note::open(&request.checkpoint, key) {
                Ok(opened) => text = Some(opened),
                Err(NoteError::Unsigned(_)) => {}
                Err(_) => return Err(Refusal::Forbidden),
            }
        }
        let text = text.ok_or(Refusal::Forbidden)?;

        // Checking and remembering are one step: two requests cannot both
        // move the tree on from the same size.
        let mut state = self.state.lock().await;
        let seen = match state.logs.get(&head.origin) {
            Some(log) => log.seen().ok_or_else(|| {
                Refusal::Inconsistent("this witness's state for the log is damaged".to_owned())
            })?,
            None => Seen {
                size: 0,
                root: merkle::empty_root(),
            },
        };
        let next = witness::check(&request, &head, &seen).inspect_err(|refusal| {
            if matches!(refusal, Refusal::Inconsistent(_)) {
                // The signed request is evidence of the log's misbehaviour.
                tracing::error!(
                    origin = %head.origin,
                    cosigned_size = seen.size,
                    size = head.size,
                    %refusal,
                    checkpoint = %request.checkpoint,
                    "refused to cosign a checkpoint inconsistent with the one cosigned before: \
                     the log was rewound or forked"
                );
            }
        })?;
        let timestamp = now.max(1);
        let message = CosignerKey::signed_message(timestamp, text);
        let line = self
            .cosigner
            .cosignature_line(timestamp, self.key.sign(message.as_bytes()).as_ref());
        let mut updated = state.clone();
        updated.logs.insert(
            head.origin.clone(),
            SeenLog {
                size: next.size,
                root: STANDARD.encode(next.root),
                checkpoint: format!("{}{line}", request.checkpoint),
            },
        );
        // Remembered on disk before the cosignature is given.
        let path = self.state_path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_state(&path, &updated).map(|()| updated))
                .await;
        match written {
            Ok(Ok(updated)) => *state = updated,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot write the witness state; not cosigning");
                return Err(Refusal::Unavailable);
            }
            Err(_) => return Err(Refusal::Unavailable),
        }
        tracing::info!(origin = %head.origin, size = next.size, "cosigned");
        Ok(line)
    }

    /// The last checkpoint cosigned for the log whose origin hashes
    /// (SHA-256, lowercase hex) to `origin_hash`, with the cosignature.
    pub async fn checkpoint(&self, origin_hash: &str) -> Option<String> {
        let state = self.state.lock().await;
        state
            .logs
            .iter()
            .find(|(origin, _)| {
                hex::encode(ring::digest::digest(
                    &ring::digest::SHA256,
                    origin.as_bytes(),
                )) == origin_hash
            })
            .map(|(_, log)| log.checkpoint.clone())
    }
}

fn read_state(path: &Path) -> Result<State, WitnessError> {
    let unreadable = |reason: String| WitnessError::StateUnreadable {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|error| unreadable(error.to_string()))?;
    let state: State =
        serde_json::from_slice(&bytes).map_err(|error| unreadable(error.to_string()))?;
    if state.logs.values().any(|log| log.seen().is_none()) {
        return Err(unreadable("a root is not a base64 SHA-256 hash".to_owned()));
    }
    Ok(state)
}

fn write_state(path: &Path, state: &State) -> Result<(), WitnessError> {
    let bytes =
        serde_json::to_vec_pretty(state).map_err(|error| WitnessError::StateUnreadable {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
    Ok(files::write_new_file(path, &bytes, 0o600)?)
}
