//! The server's audit key, which signs checkpoints.

use curbside_proto::audit::Checkpoint;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::files::{self, KeyError};

/// The file that holds the audit signing key (PKCS#8), separate from the
/// token key.
pub const KEY_FILE: &str = "keys/audit-ed25519.pk8";

/// Signs checkpoints with the server's audit key.
pub struct AuditSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner").finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Loads the audit key from the data directory, making it on first use.
    pub fn load_or_generate(data_dir: &std::path::Path) -> Result<Self, KeyError> {
        let (key, _pkcs8) = files::ed25519_key(&data_dir.join(KEY_FILE))?;
        Ok(Self { key })
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
