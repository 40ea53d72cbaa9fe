//! The audit log's entry, its canonical encoding, the hash chain and the
//! signed checkpoints: everything an outside auditor needs to verify an
//! export with their own code. `docs/audit-format.md` specifies the same
//! thing byte for byte.
//!
//! An entry's canonical bytes are a fixed tag followed by its fields in a
//! fixed order, each self-delimiting (fixed width, or a 4-byte big-endian
//! length before the UTF-8 text), so two different entries never encode to
//! the same bytes, and no text inside a field can pass for a field boundary.

use serde::{Deserialize, Serialize};

/// The first bytes of every entry's canonical encoding.
pub const ENTRY_TAG: &[u8] = b"curbside-audit-entry-v1\0";
/// The first bytes of every checkpoint's signed message.
pub const CHECKPOINT_TAG: &[u8] = b"curbside-audit-checkpoint-v1\0";
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
    /// text.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, FieldTooLong> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(ENTRY_TAG);
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
        Ok(out)
    }

    /// Decodes canonical bytes, refusing anything else.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader(bytes.strip_prefix(ENTRY_TAG).ok_or(DecodeError::BadTag)?);
        let entry = Self {
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
        };
        if !reader.0.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(entry)
    }

    /// `SHA-256(prev_hash || canonical_bytes)`.
    pub fn hash(&self, prev_hash: &[u8; 32]) -> Result<[u8; 32], FieldTooLong> {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(prev_hash);
        context.update(&self.canonical_bytes()?);
        Ok(digest_array(context.finish()))
    }
}

fn digest_array(digest: ring::digest::Digest) -> [u8; 32] {
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

/// Where and why a log fails verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log breaks at sequence {seq}: {reason}")]
pub struct Broken {
    /// The first sequence number at which the log is not what it claims.
    pub seq: u64,
    /// What is wrong there.
    pub reason: String,
}

/// Checks a log: entries in order from sequence 1 without gaps, each
/// stored hash equal to the recomputed chain hash, every checkpoint signed
/// by `public_key`, naming the recomputed hash of its entry, and naming the
/// previous checkpoint's hash. Returns the last sequence number verified.
pub fn verify<I>(entries: I, checkpoints: &[Checkpoint], public_key: &[u8]) -> Result<u64, Broken>
where
    I: IntoIterator<Item = (AuditEntry, Vec<u8>)>,
{
    let mut verifier = Verifier::new(public_key);
    let mut checkpoints = checkpoints.iter().peekable();
    for (entry, stored_hash) in entries {
        let seq = entry.seq;
        verifier.entry(&entry, &stored_hash)?;
        while let Some(checkpoint) = checkpoints.next_if(|c| c.seq <= seq) {
            verifier.checkpoint(checkpoint)?;
        }
    }
    for checkpoint in checkpoints {
        verifier.checkpoint(checkpoint)?;
    }
    verifier.finish()
}

/// Verifies a log read one record at a time, as [`verify`] does, so that
/// an export of any size is checked in constant memory. Feed entries in
/// order, each checkpoint after the entry it covers, then call
/// [`Verifier::finish`].
#[derive(Debug, Clone)]
pub struct Verifier {
    public_key: Vec<u8>,
    prev_hash: [u8; 32],
    prev_checkpoint: [u8; 32],
    last: u64,
    /// Checkpoints that name entries not yet seen, by sequence.
    ahead: std::collections::BTreeMap<u64, Checkpoint>,
    checkpoints: u64,
    signed_through: u64,
}

/// The most checkpoints a verifier holds while waiting for their entries.
const MAX_AHEAD: usize = 10_000;

impl Verifier {
    /// A verifier trusting checkpoints signed by this Ed25519 public key.
    pub fn new(public_key: &[u8]) -> Self {
        Self {
            public_key: public_key.to_vec(),
            prev_hash: GENESIS_HASH,
            prev_checkpoint: GENESIS_HASH,
            last: 0,
            ahead: std::collections::BTreeMap::new(),
            checkpoints: 0,
            signed_through: 0,
        }
    }

    /// The next entry, with the hash the log recorded for it.
    pub fn entry(&mut self, entry: &AuditEntry, stored_hash: &[u8]) -> Result<(), Broken> {
        let expected = self.last + 1;
        if entry.seq != expected {
            return Err(Broken {
                seq: expected,
                reason: format!("expected entry {expected} next, found entry {}", entry.seq),
            });
        }
        let hash = entry.hash(&self.prev_hash).map_err(|error| Broken {
            seq: entry.seq,
            reason: error.to_string(),
        })?;
        if stored_hash != hash {
            return Err(Broken {
                seq: entry.seq,
                reason: "the entry's contents do not match its recorded hash (the entry was \
                         altered, or an entry before it was removed or reordered)"
                    .to_owned(),
            });
        }
        self.prev_hash = hash;
        self.last = entry.seq;
        if let Some(checkpoint) = self.ahead.remove(&entry.seq) {
            self.check(&checkpoint)?;
        }
        Ok(())
    }

    /// A checkpoint, after the entry it covers (or before, if the log
    /// lists it early).
    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), Broken> {
        if checkpoint.seq > self.last {
            if self.ahead.len() >= MAX_AHEAD || self.ahead.contains_key(&checkpoint.seq) {
                return Err(Broken {
                    seq: self.last + 1,
                    reason: format!(
                        "checkpoint {} is out of place: repeated, or far ahead of its entries",
                        checkpoint.seq
                    ),
                });
            }
            self.ahead.insert(checkpoint.seq, checkpoint.clone());
            return Ok(());
        }
        if checkpoint.seq < self.last {
            return Err(Broken {
                seq: checkpoint.seq,
                reason: format!(
                    "checkpoint {} names an entry the log does not have in that place",
                    checkpoint.seq
                ),
            });
        }
        self.check(checkpoint)
    }

    fn check(&mut self, checkpoint: &Checkpoint) -> Result<(), Broken> {
        let broken = |reason: String| Broken {
            seq: checkpoint.seq,
            reason,
        };
        check_checkpoint(
            checkpoint,
            self.last,
            &self.prev_hash,
            &self.prev_checkpoint,
            &self.public_key,
        )
        .map_err(broken)?;
        self.prev_checkpoint = checkpoint
            .hash()
            .ok_or_else(|| broken("malformed checkpoint".to_owned()))?;
        self.checkpoints += 1;
        self.signed_through = checkpoint.seq;
        Ok(())
    }

    /// The last sequence number verified so far.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// How many checkpoints verified so far.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// The last entry a verified checkpoint covers (0 if none): entries
    /// after it are chained but not yet signed.
    pub fn signed_through(&self) -> u64 {
        self.signed_through
    }

    /// Ends the log: fails if a checkpoint covers entries that never came
    /// (entries removed from the end), or if no checkpoint covers any entry
    /// (the server seals the first entry at once, so a log without one has
    /// had its checkpoints removed). Returns the last sequence verified.
    pub fn finish(self) -> Result<u64, Broken> {
        if self.last > 0 && self.checkpoints == 0 {
            return Err(Broken {
                seq: 1,
                reason: "no signed checkpoint covers the log (the server signs one for its \
                         first entry at once): its checkpoints were removed"
                    .to_owned(),
            });
        }
        if let Some(checkpoint) = self.ahead.values().next() {
            return Err(Broken {
                seq: self.last + 1,
                reason: format!(
                    "a signed checkpoint covers entries up to {}, but the log ends at {}: \
                     entries were removed from its end",
                    checkpoint.seq, self.last
                ),
            });
        }
        Ok(self.last)
    }
}

fn check_checkpoint(
    checkpoint: &Checkpoint,
    entry_seq: u64,
    entry_hash: &[u8; 32],
    prev_checkpoint: &[u8; 32],
    public_key: &[u8],
) -> Result<(), String> {
    if checkpoint.seq != entry_seq {
        return Err(format!(
            "checkpoint {} names an entry the log does not have",
            checkpoint.seq
        ));
    }
    if !checkpoint.verify(public_key) {
        return Err("the checkpoint's signature does not verify with the audit key".to_owned());
    }
    if checkpoint.head_hash.as_slice() != entry_hash {
        return Err("the signed checkpoint names a different hash for this entry".to_owned());
    }
    if checkpoint.prev_checkpoint_hash.as_slice() != prev_checkpoint {
        return Err("the checkpoint does not follow the previous checkpoint".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Short, and including the characters that break naive formats.
        proptest::string::string_regex("[a-z0-9 ,;\"'\\n\\r\\t\\\\|\u{0}é]{0,12}").unwrap()
    }

    prop_compose! {
        fn entry()(
            seq in any::<u64>(),
            time_ms in any::<i64>(),
            actor_user in proptest::option::of(text()),
            actor_device in proptest::option::of(text()),
            client_addr in proptest::option::of(text()),
            request_id in text(),
            action in text(),
            resource_type in text(),
            resource_id in proptest::option::of(text()),
            allowed in any::<bool>(),
            reason in text(),
        ) -> AuditEntry {
            AuditEntry {
                seq, time_ms, actor_user, actor_device, client_addr, request_id, action,
                resource_type, resource_id,
                outcome: if allowed { Outcome::Allowed } else { Outcome::Denied },
                reason,
            }
        }
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(entry in entry()) {
            let bytes = entry.canonical_bytes().unwrap();
            prop_assert_eq!(AuditEntry::from_canonical_bytes(&bytes).unwrap(), entry);
        }

        #[test]
        fn distinct_entries_encode_differently(a in entry(), b in entry()) {
            prop_assume!(a != b);
            prop_assert_ne!(a.canonical_bytes().unwrap(), b.canonical_bytes().unwrap());
        }

        #[test]
        fn moving_text_between_fields_changes_the_bytes(x in text(), y in text()) {
            let mut a = sample();
            a.action = format!("{x}{y}");
            a.resource_type = String::new();
            let mut b = sample();
            b.action = x.clone();
            b.resource_type = y.clone();
            prop_assume!(!y.is_empty());
            prop_assert_ne!(a.canonical_bytes().unwrap(), b.canonical_bytes().unwrap());
        }

        #[test]
        fn truncated_or_extended_bytes_are_refused(entry in entry(), cut in 1usize..8) {
            let bytes = entry.canonical_bytes().unwrap();
            let short = &bytes[..bytes.len().saturating_sub(cut)];
            prop_assert!(AuditEntry::from_canonical_bytes(short).is_err());
            let mut long = bytes.clone();
            long.push(0);
            prop_assert_eq!(
                AuditEntry::from_canonical_bytes(&long),
                Err(DecodeError::TrailingBytes)
            );
        }
    }

    fn sample() -> AuditEntry {
        AuditEntry {
            seq: 1,
            time_ms: 1_700_000_000_000,
            actor_user: Some("u1".into()),
            actor_device: None,
            client_addr: Some("127.0.0.1".into()),
            request_id: "r1".into(),
            action: "auth.login".into(),
            resource_type: "session".into(),
            resource_id: None,
            outcome: Outcome::Allowed,
            reason: "ok".into(),
        }
    }

    #[test]
    fn the_chain_links_each_entry_to_the_one_before() {
        let first = sample();
        let mut second = sample();
        second.seq = 2;
        let h1 = first.hash(&GENESIS_HASH).unwrap();
        let h2 = second.hash(&h1).unwrap();
        assert_ne!(h1, h2);
        assert_ne!(
            second.hash(&GENESIS_HASH).unwrap(),
            h2,
            "the previous hash matters"
        );
    }

    /// The worked example of `docs/audit-format.md`, whose bytes and hash
    /// were computed there by an independent implementation.
    #[test]
    fn worked_example_matches_the_documentation() {
        let entry = AuditEntry {
            seq: 1,
            time_ms: 1_795_392_000_000,
            actor_user: Some("2fbaa9c451714715e739968fdb16115d".into()),
            actor_device: Some("68b665bf3234076602540fa138a7c298".into()),
            client_addr: Some("192.0.2.10".into()),
            request_id: "d0dc35ad8d26d8a0bf6ef700f3fe3788".into(),
            action: "auth.login".into(),
            resource_type: "session".into(),
            resource_id: Some("ec7a8aa128d3ee6678fe981bf7f846c0".into()),
            outcome: Outcome::Allowed,
            reason: "ok".into(),
        };
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(
            hex(&entry.canonical_bytes().unwrap()),
            "63757262736964652d61756469742d656e7472792d763100\
             0000000000000001\
             000001a205b3d000\
             0100000020326662616139633435313731343731356537333939363866646231363131356401\
             000000203638623636356266333233343037363630323534306661313338613763323938\
             010000000a3139322e302e322e3130\
             0000002064306463333561643864323664386130626636656637303066336665333738380000000a\
             617574682e6c6f67696e\
             0000000773657373696f6e\
             0100000020656337613861613132386433656536363738666539383162663766383436633001\
             00000002\
             6f6b"
        );
        assert_eq!(
            hex(&entry.hash(&GENESIS_HASH).unwrap()),
            "63f1128ff5020d22904d2553b4c36ab3272a8a20eb95b52cfb10ea6f81192ffb"
        );
    }

    #[test]
    fn long_fields_are_refused() {
        let mut entry = sample();
        entry.reason = "x".repeat(MAX_FIELD_BYTES + 1);
        assert_eq!(entry.canonical_bytes(), Err(FieldTooLong));
    }

    #[test]
    fn checkpoints_verify_with_their_key_only() {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let key =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        let head = sample().hash(&GENESIS_HASH).unwrap();
        let message = Checkpoint::signed_bytes(1, &head, 5, &GENESIS_HASH);
        let checkpoint = Checkpoint {
            seq: 1,
            head_hash: head.to_vec(),
            time_ms: 5,
            prev_checkpoint_hash: GENESIS_HASH.to_vec(),
            signature: key.sign(&message).as_ref().to_vec(),
        };
        assert!(checkpoint.verify(key.public_key().as_ref()));
        let mut moved = checkpoint.clone();
        moved.seq = 2;
        assert!(!moved.verify(key.public_key().as_ref()));
        let other =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        assert!(!checkpoint.verify(other.public_key().as_ref()));
        assert!(checkpoint.hash().is_some());
    }

    /// A signed log of `n` entries with a checkpoint every `every`.
    /// Entries with their stored hashes, checkpoints, and the public key.
    type SignedLog = (Vec<(AuditEntry, Vec<u8>)>, Vec<Checkpoint>, Vec<u8>);

    fn signed_log(n: u64, every: u64) -> SignedLog {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let key =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        let mut entries = Vec::new();
        let mut checkpoints: Vec<Checkpoint> = Vec::new();
        let mut prev = GENESIS_HASH;
        let mut prev_checkpoint = GENESIS_HASH;
        for seq in 1..=n {
            let mut entry = sample();
            entry.seq = seq;
            entry.resource_id = Some(format!("r{seq}"));
            let hash = entry.hash(&prev).unwrap();
            entries.push((entry, hash.to_vec()));
            if seq % every == 0 {
                let message = Checkpoint::signed_bytes(seq, &hash, 7, &prev_checkpoint);
                let checkpoint = Checkpoint {
                    seq,
                    head_hash: hash.to_vec(),
                    time_ms: 7,
                    prev_checkpoint_hash: prev_checkpoint.to_vec(),
                    signature: key.sign(&message).as_ref().to_vec(),
                };
                prev_checkpoint = checkpoint.hash().unwrap();
                checkpoints.push(checkpoint);
            }
            prev = hash;
        }
        (entries, checkpoints, key.public_key().as_ref().to_vec())
    }

    #[test]
    fn an_untouched_log_verifies() {
        let (entries, checkpoints, key) = signed_log(10, 3);
        assert_eq!(verify(entries, &checkpoints, &key), Ok(10));
    }

    #[test]
    fn each_kind_of_tampering_names_its_sequence() {
        let (entries, checkpoints, key) = signed_log(10, 3);
        let seq_of = |entries: Vec<(AuditEntry, Vec<u8>)>, checkpoints: &[Checkpoint]| {
            verify(entries, checkpoints, &key).unwrap_err().seq
        };
        // A field changed.
        let mut altered = entries.clone();
        altered[4].0.outcome = Outcome::Denied;
        assert_eq!(seq_of(altered, &checkpoints), 5);
        // An entry removed from the middle.
        let mut removed = entries.clone();
        removed.remove(4);
        assert_eq!(seq_of(removed, &checkpoints), 5);
        // Two entries swapped.
        let mut swapped = entries.clone();
        swapped.swap(3, 4);
        assert_eq!(seq_of(swapped, &checkpoints), 4);
        // The newest entries removed, past the last checkpoint (9).
        let truncated = entries[..7].to_vec();
        assert_eq!(seq_of(truncated, &checkpoints), 8);
        // A checkpoint's signature replaced.
        let mut forged = checkpoints.clone();
        forged[1].signature[0] ^= 1;
        assert_eq!(seq_of(entries.clone(), &forged), 6);
        // Every checkpoint removed: nothing vouches for the chain.
        assert_eq!(seq_of(entries.clone(), &[]), 1);
        // A checkpoint repeated.
        let mut repeated = checkpoints.clone();
        repeated.insert(2, checkpoints[2].clone());
        assert!(verify(entries.clone(), &repeated, &key).is_err());
        // A whole entry rewritten with a consistent hash is caught by the
        // next checkpoint.
        let mut rewritten = entries.clone();
        rewritten[7].0.reason = "forged".into();
        let mut prev = rewritten[6].1.clone().try_into().unwrap();
        for item in rewritten.iter_mut().skip(7) {
            let hash = item.0.hash(&prev).unwrap();
            item.1 = hash.to_vec();
            prev = hash;
        }
        assert_eq!(seq_of(rewritten, &checkpoints), 9);
    }
}
