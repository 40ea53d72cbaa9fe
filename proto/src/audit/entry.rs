//! An audit entry and its canonical encoding, and the chain hash over it.

use serde::{Deserialize, Serialize};

/// The first bytes of the canonical encoding of an entry without
/// evidence.
pub const ENTRY_TAG: &[u8] = b"curbside-audit-entry-v1\0";
/// The first bytes of the canonical encoding of an entry with evidence,
/// which follows the `reason` as one more text.
pub const ENTRY_TAG_WITH_EVIDENCE: &[u8] = b"curbside-audit-entry-v2\0";
/// The `prev_hash` of the first entry, and the `prev_checkpoint_hash` of
/// the first checkpoint: 32 zero bytes.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// The longest text a field may hold, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Whether the access was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The access happened.
    Allowed,
    /// The access was refused.
    Denied,
}

impl Outcome {
    /// The outcome as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Self::Allowed => 1,
            Self::Denied => 2,
        }
    }
}

/// One audit entry. It records who did what to which resource, from where,
/// when, and whether it was allowed; never content, tokens or keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When (Unix milliseconds, UTC).
    pub time_ms: i64,
    /// The acting user, if known.
    pub actor_user: Option<String>,
    /// The acting device, if known.
    pub actor_device: Option<String>,
    /// The client's address, if known.
    pub client_addr: Option<String>,
    /// The request's id.
    pub request_id: String,
    /// What was done, from a fixed vocabulary (e.g. `auth.login`).
    pub action: String,
    /// The kind of resource (e.g. `user`, `thread`).
    pub resource_type: String,
    /// Which resource, if one.
    pub resource_id: Option<String>,
    /// Allowed or denied.
    pub outcome: Outcome,
    /// Why, as a short code (e.g. `ok`, `not_admin`, `bad_signature`).
    pub reason: String,
    /// What the client proved, when it signed what it did: a delivered or
    /// read receipt's device signature (`receipt v1 through=N time_ms=T
    /// signature=S`, see docs/audit-format.md). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// Why bytes are not a canonical entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes do not start with [`ENTRY_TAG`].
    #[error("the bytes do not start with the entry tag")]
    BadTag,
    /// The bytes end inside a field.
    #[error("the bytes end inside a field")]
    Truncated,
    /// A presence or outcome byte has a value other than those defined.
    #[error("a presence or outcome byte is invalid")]
    BadByte,
    /// A text field is longer than [`MAX_FIELD_BYTES`] or not UTF-8.
    #[error("a text field is too long or not UTF-8")]
    BadText,
    /// Bytes follow the last field.
    #[error("bytes follow the last field")]
    TrailingBytes,
}

/// Why an entry cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a text field of the entry is longer than {MAX_FIELD_BYTES} bytes")]
pub struct FieldTooLong;

impl AuditEntry {
    /// The canonical bytes: [`ENTRY_TAG`], then `seq` (u64), `time_ms`
    /// (i64), `actor_user`, `actor_device`, `client_addr` (optional texts),
    /// `request_id`, `action`, `resource_type` (texts), `resource_id`
    /// (optional text), `outcome` (1 = allowed, 2 = denied) and `reason`
    /// (text). Integers are big-endian; a text is its UTF-8 length as a u32
    /// then the bytes; an optional text is 0x00 when absent or 0x01 and the
    /// text. An entry with evidence starts with [`ENTRY_TAG_WITH_EVIDENCE`]
    /// instead and ends with the evidence (text).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, FieldTooLong> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(if self.evidence.is_some() {
            ENTRY_TAG_WITH_EVIDENCE
        } else {
            ENTRY_TAG
        });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        put_optional(&mut out, self.actor_user.as_deref())?;
        put_optional(&mut out, self.actor_device.as_deref())?;
        put_optional(&mut out, self.client_addr.as_deref())?;
        put_text(&mut out, &self.request_id)?;
        put_text(&mut out, &self.action)?;
        put_text(&mut out, &self.resource_type)?;
        put_optional(&mut out, self.resource_id.as_deref())?;
        out.push(self.outcome.byte());
        put_text(&mut out, &self.reason)?;
        if let Some(evidence) = &self.evidence {
            put_text(&mut out, evidence)?;
        }
        Ok(out)
    }

    /// Decodes canonical bytes, refusing anything else.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut reader, with_evidence) = match bytes.strip_prefix(ENTRY_TAG) {
            Some(rest) => (Reader(rest), false),
            None => (
                Reader(
                    bytes
                        .strip_prefix(ENTRY_TAG_WITH_EVIDENCE)
                        .ok_or(DecodeError::BadTag)?,
                ),
                true,
            ),
        };
        let mut entry = Self {
            seq: u64::from_be_bytes(reader.array()?),
            time_ms: i64::from_be_bytes(reader.array()?),
            actor_user: reader.optional()?,
            actor_device: reader.optional()?,
            client_addr: reader.optional()?,
            request_id: reader.text()?,
            action: reader.text()?,
            resource_type: reader.text()?,
            resource_id: reader.optional()?,
            outcome: match reader.byte()? {
                1 => Outcome::Allowed,
                2 => Outcome::Denied,
                _ => return Err(DecodeError::BadByte),
            },
            reason: reader.text()?,
            evidence: None,
        };
        if with_evidence {
            entry.evidence = Some(reader.text()?);
        }
        if !reader.0.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(entry)
    }

    /// `SHA-256(prev_hash || canonical_bytes)`.
    pub fn hash(&self, prev_hash: &[u8; 32]) -> Result<[u8; 32], FieldTooLong> {
        Ok(Self::chain_hash(prev_hash, &self.canonical_bytes()?))
    }

    /// The chain hash of an entry whose canonical bytes are `bytes`.
    pub fn chain_hash(prev_hash: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(prev_hash);
        context.update(bytes);
        digest_array(context.finish())
    }

    /// The entry's leaf hash in the log's Merkle tree (RFC 9162):
    /// `SHA-256(0x00 || canonical_bytes)`.
    pub fn leaf_hash(&self) -> Result<[u8; 32], FieldTooLong> {
        Ok(crate::merkle::leaf_hash(&self.canonical_bytes()?))
    }
}

pub(super) fn digest_array(digest: ring::digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn put_text(out: &mut Vec<u8>, text: &str) -> Result<(), FieldTooLong> {
    if text.len() > MAX_FIELD_BYTES {
        return Err(FieldTooLong);
    }
    let length = u32::try_from(text.len()).map_err(|_| FieldTooLong)?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_optional(out: &mut Vec<u8>, text: Option<&str>) -> Result<(), FieldTooLong> {
    match text {
        None => {
            out.push(0);
            Ok(())
        }
        Some(text) => {
            out.push(1);
            put_text(out, text)
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let length =
            usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| DecodeError::BadText)?;
        if length > MAX_FIELD_BYTES {
            return Err(DecodeError::BadText);
        }
        String::from_utf8(self.take(length)?.to_vec()).map_err(|_| DecodeError::BadText)
    }

    fn optional(&mut self) -> Result<Option<String>, DecodeError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.text().map(Some),
            _ => Err(DecodeError::BadByte),
        }
    }
}
