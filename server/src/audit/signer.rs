//! The server's audit key, which signs checkpoints: the chain's (every so
//! often) and the Merkle tree's (after every append), the latter as C2SP
//! signed notes under the log's origin.

use curbside_proto::audit::Checkpoint;
use curbside_proto::merkle::Hash;
use curbside_proto::note::{self, NoteKey, TreeHead};
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::files::{self, KeyError};

/// The file that holds the audit signing key (PKCS#8), separate from the
/// token key.
pub const KEY_FILE: &str = "keys/audit-ed25519.pk8";
/// A new key while a rotation is under way: promoted to [`KEY_FILE`] once
/// the hand-over is in the log (`super::rotate`).
pub const NEXT_KEY_FILE: &str = "keys/audit-ed25519.pk8.next";

/// Signs checkpoints with the server's audit key.
pub struct AuditSigner {
    key: Ed25519KeyPair,
    /// The key as signed notes name it: the log's origin and public key.
    note_key: NoteKey,
    /// The tree checkpoint this key last signed or checked, and what it
    /// says: an append that finds it in the head need not verify it again.
    last_note: std::sync::Mutex<Option<(String, (u64, Hash))>>,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner").finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Loads the audit key from the data directory, making it on first use,
    /// for the log of the installation `server_id`.
    pub fn load_or_generate(data_dir: &std::path::Path, server_id: &str) -> Result<Self, KeyError> {
        Self::at(&data_dir.join(KEY_FILE), server_id)
    }

    /// Loads the key at `path`, making it if there is none.
    pub fn at(path: &std::path::Path, server_id: &str) -> Result<Self, KeyError> {
        let (key, _pkcs8) = files::ed25519_key(path)?;
        let note_key = NoteKey::for_audit_log(server_id, key.public_key().as_ref())
            .ok_or_else(|| KeyError::Invalid(path.display().to_string()))?;
        Ok(Self {
            key,
            note_key,
            last_note: std::sync::Mutex::new(None),
        })
    }

    /// The key as signed notes name it.
    pub fn note_key(&self) -> &NoteKey {
        &self.note_key
    }

    /// The size and root of a tree checkpoint this key signed, if `note`
    /// is one.
    pub fn opens(&self, note: &str) -> Option<(u64, Hash)> {
        if let Some((known, says)) = self.last_note().as_ref()
            && known == note
        {
            return Some(*says);
        }
        let head = note::open_checkpoint(note, &self.note_key).ok()?.head;
        let says = (head.size, head.root);
        *self.last_note() = Some((note.to_owned(), says));
        Some(says)
    }

    fn last_note(&self) -> std::sync::MutexGuard<'_, Option<(String, (u64, Hash))>> {
        // A poisoned cache is only a cache: verify again.
        self.last_note
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A checkpoint of the tree of `size` entries with root `root`, as a
    /// signed note.
    pub fn sign_tree(&self, size: u64, root: &Hash) -> String {
        let text = TreeHead {
            origin: self.note_key.name.clone(),
            size,
            root: *root,
        }
        .text();
        let line = self
            .note_key
            .signature_line(self.key.sign(text.as_bytes()).as_ref());
        let signed = note::signed_note(&text, &[line]);
        *self.last_note() = Some((signed.clone(), (size, *root)));
        signed
    }

    /// This key's signature over `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).as_ref().to_vec()
    }

    /// `note`, a tree checkpoint, with this key's signature added.
    pub fn add_signature(&self, note: &str) -> Option<String> {
        let text = TreeHead::from_note(note).ok()?.text();
        let line = self
            .note_key
            .signature_line(self.key.sign(text.as_bytes()).as_ref());
        Some(format!("{note}{line}"))
    }

    /// The public key that verifies checkpoints.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// A checkpoint of the chain at `seq`, whose entry hashes to
    /// `head_hash`, signed now (`time_ms`) after the checkpoint that hashes
    /// to `prev_checkpoint_hash`.
    pub fn sign(
        &self,
        seq: u64,
        head_hash: &[u8; 32],
        time_ms: i64,
        prev_checkpoint_hash: &[u8; 32],
    ) -> Checkpoint {
        let message = Checkpoint::signed_bytes(seq, head_hash, time_ms, prev_checkpoint_hash);
        Checkpoint {
            seq,
            head_hash: head_hash.to_vec(),
            time_ms,
            prev_checkpoint_hash: prev_checkpoint_hash.to_vec(),
            signature: self.key.sign(&message).as_ref().to_vec(),
        }
    }
}
