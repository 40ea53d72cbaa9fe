//! Encrypted attachments: what the server stores (ciphertext it cannot
//! read, bound to a thread) and what a message carries to open it.
//!
//! The sending client encrypts each file with a fresh random AES-256-GCM
//! key in the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár,
//! "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
//! 2015), as RustCrypto's `aead::stream` instantiates it with a 32-bit
//! big-endian counter: the plaintext is cut in [`PLAIN_CHUNK`]-byte chunks,
//! the last one shorter (or empty, for an empty file), and chunk `i` is
//! sealed under the nonce `0⁷ ‖ i (4 bytes, big-endian) ‖ last` where
//! `last` is 1 for the final chunk and 0 before it. A stream cut short or
//! reordered does not decrypt. With a key never used twice the fixed
//! prefix is safe. The ciphertext is the chunks' outputs one after
//! another, [`TAG`] bytes longer each; the server stores and serves it
//! as opaque bytes.

use serde::{Deserialize, Serialize};

/// Plaintext bytes per STREAM chunk.
pub const PLAIN_CHUNK: usize = 65536;
/// The AES-GCM tag each chunk adds.
pub const TAG: usize = 16;
/// Ciphertext bytes per full chunk.
pub const SEALED_CHUNK: usize = PLAIN_CHUNK + TAG;
/// The bytes of the key that opens one attachment.
pub const KEY_BYTES: usize = 32;
/// The most attachments one message may carry.
pub const MAX_PER_MESSAGE: usize = 20;
/// The longest file name a message may give, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The ciphertext's size for a file of `plain` bytes.
pub fn ciphertext_len(plain: u64) -> u64 {
    let chunk = PLAIN_CHUNK as u64;
    let chunks = plain.div_ceil(chunk).max(1);
    plain.saturating_add(chunks.saturating_mul(TAG as u64))
}

/// Whether `text` is an attachment's id: 32 lower-case hex digits.
pub fn is_attachment_id(text: &str) -> bool {
    crate::threads::is_thread_id(text)
}

/// The answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachmentUploaded {
    /// Its id, to name in the message that carries it (and in the
    /// message request's `attachments`).
    pub attachment_id: String,
    /// The ciphertext's size in bytes, as stored.
    pub size: u64,
}

/// An attachment as a message carries it (inside the MLS ciphertext:
/// only members ever see this).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachmentRef {
    /// The id the server gave the upload.
    pub id: String,
    /// The key that opens it (32 bytes, unpadded base64url).
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub key: Vec<u8>,
    /// SHA-256 of the file, 64 lower-case hex digits, checked after
    /// decryption.
    pub sha256: String,
    /// The file's name (no directories).
    pub name: String,
    /// Its media type, e.g. `image/png`.
    pub media_type: String,
    /// The file's size in bytes.
    pub size: u64,
}

impl std::fmt::Debug for AttachmentRef {
    /// Everything but the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentRef")
            .field("id", &self.id)
            .field("sha256", &self.sha256)
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Drop for AttachmentRef {
    /// The key goes with it.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl AttachmentRef {
    /// Whether it is well formed: an attachment id, a 32-byte key, a
    /// SHA-256 in hex, a name that is no path.
    pub fn is_well_formed(&self) -> bool {
        is_attachment_id(&self.id)
            && self.key.len() == KEY_BYTES
            && self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && !self.name.is_empty()
            && self.name.len() <= MAX_NAME_BYTES
            && !self.name.contains(['/', '\\', '\0'])
            && self.name != "."
            && self.name != ".."
    }
}

/// `PUT /v1/threads/{id}/lifespan`: how long the thread's messages live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LifespanRequest {
    /// Seconds, from [`MIN_LIFESPAN_S`] to [`MAX_LIFESPAN_S`]; `null`
    /// turns disappearing messages off.
    pub lifespan_s: Option<u64>,
}

/// The shortest lifespan a thread may have.
pub const MIN_LIFESPAN_S: u64 = 1;
/// The longest (ten years).
pub const MAX_LIFESPAN_S: u64 = 10 * 365 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_adds_a_tag_per_chunk_and_one_for_an_empty_file() {
        assert_eq!(ciphertext_len(0), 16);
        assert_eq!(ciphertext_len(1), 17);
        assert_eq!(ciphertext_len(65536), 65536 + 16);
        assert_eq!(ciphertext_len(65537), 65537 + 32);
        assert_eq!(ciphertext_len(100 << 20), (100 << 20) + 1600 * 16);
    }

    #[test]
    fn references_hide_their_key_and_refuse_paths() {
        let reference = AttachmentRef {
            id: "0".repeat(32),
            key: vec![7; 32],
            sha256: "a".repeat(64),
            name: "ecg.png".into(),
            media_type: "image/png".into(),
            size: 3,
        };
        assert!(reference.is_well_formed());
        assert!(!format!("{reference:?}").contains("key"));
        for name in ["../x", "a/b", "", ".."] {
            let mut bad = reference.clone();
            bad.name = name.into();
            assert!(!bad.is_well_formed(), "{name}");
        }
        let mut short_key = reference.clone();
        short_key.key = vec![7; 31];
        assert!(!short_key.is_well_formed());
    }
}
