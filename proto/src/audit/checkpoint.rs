//! A checkpoint: the audit key's signature over the chain's head.

use serde::{Deserialize, Serialize};

/// The first bytes of every checkpoint's signed message.
pub const CHECKPOINT_TAG: &[u8] = b"curbside-audit-checkpoint-v1\0";
use super::entry::digest_array;

/// A signed statement that the log's entry `seq` has hash `head_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The sequence number of the last entry covered.
    pub seq: u64,
    /// That entry's hash.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub head_hash: Vec<u8>,
    /// When it was signed (Unix ms).
    pub time_ms: i64,
    /// The hash of the previous checkpoint ([`GENESIS_HASH`] for the first).
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub prev_checkpoint_hash: Vec<u8>,
    /// Ed25519 signature of [`Checkpoint::signed_bytes`].
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// What is signed: [`CHECKPOINT_TAG`], `seq` (u64), `head_hash` (32
    /// bytes), `time_ms` (i64), `prev_checkpoint_hash` (32 bytes).
    pub fn signed_bytes(
        seq: u64,
        head_hash: &[u8; 32],
        time_ms: i64,
        prev_checkpoint_hash: &[u8; 32],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_TAG.len() + 80);
        out.extend_from_slice(CHECKPOINT_TAG);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(head_hash);
        out.extend_from_slice(&time_ms.to_be_bytes());
        out.extend_from_slice(prev_checkpoint_hash);
        out
    }

    /// This checkpoint's hash, which the next one names:
    /// `SHA-256(signed_bytes || signature)`.
    pub fn hash(&self) -> Option<[u8; 32]> {
        let head: [u8; 32] = self.head_hash.as_slice().try_into().ok()?;
        let prev: [u8; 32] = self.prev_checkpoint_hash.as_slice().try_into().ok()?;
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&Self::signed_bytes(self.seq, &head, self.time_ms, &prev));
        context.update(&self.signature);
        Some(digest_array(context.finish()))
    }

    /// Whether the signature verifies with this Ed25519 public key.
    pub fn verify(&self, public_key: &[u8]) -> bool {
        let (Ok(head), Ok(prev)) = (
            <[u8; 32]>::try_from(self.head_hash.as_slice()),
            <[u8; 32]>::try_from(self.prev_checkpoint_hash.as_slice()),
        ) else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
            .verify(
                &Self::signed_bytes(self.seq, &head, self.time_ms, &prev),
                &self.signature,
            )
            .is_ok()
    }
}
