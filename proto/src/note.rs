//! Signed tree heads as C2SP checkpoints (`c2sp.org/tlog-checkpoint`):
//! a signed note (`c2sp.org/signed-note`) whose text is the log's origin,
//! its tree size and its RFC 9162 root hash, signed with Ed25519 under a
//! key name and a 4-byte key id.
//!
//! ```text
//! curbside-audit/8f14e45fceea167a5a36dedd4bea2543
//! 1042
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — curbside-audit/8f14e45fceea167a5a36dedd4bea2543 Az3grlgt…
//! ```
//!
//! Parsing is strict: a note is UTF-8 with no control character but
//! newline, the text ends in a newline and is followed by one blank line
//! and one or more signature lines; a checkpoint's size has no leading
//! zero and its root is 32 bytes. Signatures by keys the verifier does not
//! know are ignored, as the spec says; one by the known key must verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, UnparsedPublicKey};

use crate::merkle::Hash;

/// The signature type byte of an Ed25519 signed-note key.
const ED25519_TYPE: u8 = 0x01;
/// The em dash (U+2014) and space that open a signature line.
pub(crate) const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// The most signature lines a note may carry (the spec asks for at least
/// 16 to be accepted).
const MAX_SIGNATURES: usize = 64;

/// The origin line (and key name) of a server's audit log.
pub fn audit_origin(server_id: &str) -> String {
    format!("curbside-audit/{server_id}")
}

/// A tree head: what a checkpoint's text says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// Which log.
    pub origin: String,
    /// How many leaves.
    pub size: u64,
    /// The RFC 9162 root of those leaves.
    pub root: Hash,
}

impl TreeHead {
    /// The checkpoint's note text, ending in a newline.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// What a signed checkpoint says, without checking any signature: for
    /// placing a checkpoint the caller already holds (a verifier uses
    /// [`open_checkpoint`]).
    pub fn from_note(note: &str) -> Result<Self, NoteError> {
        Self::parse(split(note)?.0)
    }

    fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text.strip_suffix('\n').ok_or(NoteError::Malformed)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Malformed);
        };
        // Extension lines are allowed but must be non-empty.
        if origin.is_empty() || lines.any(str::is_empty) {
            return Err(NoteError::Malformed);
        }
        let leading_zero = size.len() > 1 && size.starts_with('0');
        if leading_zero || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NoteError::Malformed);
        }
        let size = size.parse().map_err(|_| NoteError::Malformed)?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| Hash::try_from(bytes).ok())
            .ok_or(NoteError::Malformed)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// An Ed25519 key as signed notes name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteKey {
    /// The key name (for the audit log, its origin).
    pub name: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

impl NoteKey {
    /// The key of the audit log of installation `server_id`: named by the
    /// log's origin, with the audit key's 32-byte Ed25519 public key.
    pub fn for_audit_log(server_id: &str, public_key: &[u8]) -> Option<Self> {
        Some(Self {
            name: audit_origin(server_id),
            public_key: public_key.try_into().ok()?,
        })
    }

    /// The key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 ||
    /// public key).
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, ED25519_TYPE, &self.public_key)
    }

    /// The verifier key in the form Go's `note` package and the C2SP
    /// tools read: `name+hex(id)+base64(0x01 || public key)`.
    pub fn verifier_string(&self) -> String {
        verifier_string(&self.name, ED25519_TYPE, &self.public_key)
    }

    /// Reads [`NoteKey::verifier_string`]'s form, checking its key id.
    pub fn from_verifier_string(text: &str) -> Option<Self> {
        let (name, public_key) = parse_verifier_string(text, ED25519_TYPE)?;
        Some(Self { name, public_key })
    }

    /// The signature line for `signature` (64 bytes) by this key.
    pub fn signature_line(&self, signature: &[u8]) -> String {
        let mut bytes = self.id().to_vec();
        bytes.extend(signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(bytes)
        )
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key id: the first 4 bytes of SHA-256(name || 0x0A || type || public
/// key), for an Ed25519 note key (type 0x01) or cosigner key (0x04).
pub(crate) fn key_id(name: &str, kind: u8, public_key: &[u8; 32]) -> [u8; 4] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(name.as_bytes());
    context.update(b"\n");
    context.update(&[kind]);
    context.update(public_key);
    let digest = context.finish();
    let mut id = [0; 4];
    id.copy_from_slice(&digest.as_ref()[..4]);
    id
}

/// A verifier key as text: `name+hex(id)+base64(type || public key)`.
pub(crate) fn verifier_string(name: &str, kind: u8, public_key: &[u8; 32]) -> String {
    let mut key = vec![kind];
    key.extend(public_key);
    format!(
        "{name}+{}+{}",
        hex_lower(&key_id(name, kind, public_key)),
        STANDARD.encode(key)
    )
}

/// Reads [`verifier_string`]'s form for a key of type `kind`, checking its
/// key id: the name and the public key.
pub(crate) fn parse_verifier_string(text: &str, kind: u8) -> Option<(String, [u8; 32])> {
    // The name and the id hold no `+`; the base64 key may.
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let key = STANDARD.decode(key).ok()?;
    let (&found, public_key) = key.split_first()?;
    let public_key: [u8; 32] = public_key.try_into().ok()?;
    (found == kind && !name.is_empty() && hex_lower(&key_id(name, kind, &public_key)) == id)
        .then(|| (name.to_owned(), public_key))
}

/// A signed note: the text `signature_lines` sign, then a blank line and
/// the lines.
pub fn signed_note(text: &str, signature_lines: &[String]) -> String {
    let mut note = String::with_capacity(text.len() + 1 + 160 * signature_lines.len());
    note.push_str(text);
    note.push('\n');
    for line in signature_lines {
        note.push_str(line);
    }
    note
}

/// Why a note was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// It is not a signed note, or its text is not a checkpoint.
    #[error("the checkpoint is not a well-formed signed note")]
    Malformed,
    /// It carries no signature by the expected key.
    #[error("the checkpoint is not signed by the audit key {0}")]
    Unsigned(String),
    /// A signature by the expected key does not verify.
    #[error("the checkpoint's signature by {0} does not verify")]
    BadSignature(String),
    /// It is a checkpoint of another log.
    #[error("the checkpoint is for the log {found:?}, not {expected:?}")]
    WrongOrigin {
        /// The origin expected.
        expected: String,
        /// The origin found.
        found: String,
    },
}

/// Splits a note into its text (ending in a newline) and its signature
/// lines as (key name, key id, signature).
#[allow(clippy::type_complexity)]
pub(crate) fn split(note: &str) -> Result<(&str, Vec<(&str, [u8; 4], Vec<u8>)>), NoteError> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed);
    }
    let at = note.rfind("\n\n").ok_or(NoteError::Malformed)?;
    let (text, signatures) = (&note[..=at], &note[at + 2..]);
    let signatures = signatures.strip_suffix('\n').ok_or(NoteError::Malformed)?;
    let mut out = Vec::new();
    for line in signatures.split('\n') {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::Malformed)?;
        let (name, encoded) = rest.split_once(' ').ok_or(NoteError::Malformed)?;
        if name.is_empty() || name.contains('+') || encoded.contains(' ') {
            return Err(NoteError::Malformed);
        }
        let bytes = STANDARD.decode(encoded).map_err(|_| NoteError::Malformed)?;
        if bytes.len() < 5 {
            return Err(NoteError::Malformed);
        }
        let (id, signature) = bytes.split_at(4);
        let mut key_id = [0; 4];
        key_id.copy_from_slice(id);
        out.push((name, key_id, signature.to_vec()));
    }
    if out.is_empty() || out.len() > MAX_SIGNATURES {
        return Err(NoteError::Malformed);
    }
    Ok((text, out))
}

/// A checkpoint accepted: its tree head and the note as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// What it says.
    pub head: TreeHead,
    /// The signed note.
    pub note: String,
}

/// Opens a note signed by `key`: its text, if a signature by `key` (name
/// and id) is there and every one of them verifies. Signatures by other
/// keys (witnesses' cosignatures) are ignored.
pub fn open<'n>(note: &'n str, key: &NoteKey) -> Result<&'n str, NoteError> {
    let (text, signatures) = split(note)?;
    let id = key.id();
    let mut signed = false;
    for (name, key_id, signature) in &signatures {
        if *name != key.name || *key_id != id {
            continue;
        }
        UnparsedPublicKey::new(&ED25519, key.public_key)
            .verify(text.as_bytes(), signature)
            .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
        signed = true;
    }
    if signed {
        Ok(text)
    } else {
        Err(NoteError::Unsigned(key.name.clone()))
    }
}

/// Opens a checkpoint signed by `key`, whose origin must be `key`'s name.
pub fn open_checkpoint(note: &str, key: &NoteKey) -> Result<Checkpoint, NoteError> {
    let head = TreeHead::parse(open(note, key)?)?;
    if head.origin != key.name {
        return Err(NoteError::WrongOrigin {
            expected: key.name.clone(),
            found: head.origin,
        });
    }
    Ok(Checkpoint {
        head,
        note: note.to_owned(),
    })
}

/// The signature lines of `note` other than those by `name` (for keeping
/// witnesses' cosignatures).
pub fn other_signatures(note: &str, name: &str) -> Vec<String> {
    split(note).map_or_else(
        |_| Vec::new(),
        |(_, signatures)| {
            signatures
                .into_iter()
                .filter(|(signer, _, _)| *signer != name)
                .map(|(signer, id, signature)| {
                    let mut bytes = id.to_vec();
                    bytes.extend(signature);
                    format!("{SIGNATURE_PREFIX}{signer} {}\n", STANDARD.encode(bytes))
                })
                .collect()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn key_pair() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap()
    }

    fn note_key(pair: &Ed25519KeyPair, name: &str) -> NoteKey {
        NoteKey {
            name: name.to_owned(),
            public_key: pair.public_key().as_ref().try_into().unwrap(),
        }
    }

    fn sign(pair: &Ed25519KeyPair, key: &NoteKey, head: &TreeHead) -> String {
        let text = head.text();
        let line = key.signature_line(pair.sign(text.as_bytes()).as_ref());
        signed_note(&text, &[line])
    }

    /// The example of Go's `golang.org/x/mod/sumdb/note` (its tests and
    /// documentation): another implementation's key and signed note.
    #[test]
    fn gos_example_note_verifies_with_its_key() {
        let verifier = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let key = NoteKey::from_verifier_string(verifier).unwrap();
        assert_eq!(key.verifier_string(), verifier);
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let note = format!(
            "{text}\n\u{2014} PeterNeumann \
             x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert_eq!(open(&note, &key), Ok(text));
        // It is a note but not a checkpoint.
        assert_eq!(open_checkpoint(&note, &key), Err(NoteError::Malformed));
        let altered = note.replace("problem,", "problem;");
        assert_eq!(
            open(&altered, &key),
            Err(NoteError::BadSignature("PeterNeumann".to_owned()))
        );
        assert!(NoteKey::from_verifier_string(&verifier.replace("c74f20a3", "c74f20a4")).is_none());
        // A key whose base64 holds a `+` (transparency-dev/formats' test key).
        let plus = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6";
        assert_eq!(
            NoteKey::from_verifier_string(plus).map(|key| key.verifier_string()),
            Some(plus.to_owned())
        );
    }

    #[test]
    fn a_checkpoint_round_trips_and_any_change_is_refused() {
        let pair = key_pair();
        let key = note_key(&pair, "curbside-audit/s1");
        let head = TreeHead {
            origin: key.name.clone(),
            size: 1042,
            root: [9; 32],
        };
        let note = sign(&pair, &key, &head);
        assert_eq!(open_checkpoint(&note, &key).unwrap().head, head);

        let changed = note.replacen("1042", "1043", 1);
        assert_eq!(
            open_checkpoint(&changed, &key),
            Err(NoteError::BadSignature(key.name.clone()))
        );
        let other = note_key(&Ed25519KeyPair::from_seed_unchecked(&[8; 32]).unwrap(), "x");
        assert!(matches!(
            open_checkpoint(&note, &other),
            Err(NoteError::Unsigned(_))
        ));
        for bad in [
            note.replace("\n\n", "\n"),
            note.replacen('\n', "\r\n", 1),
            format!("{}\n", note),
            note.replace('\u{2014}', "-"),
        ] {
            assert!(open_checkpoint(&bad, &key).is_err(), "{bad:?}");
        }
        // A cosignature by an unknown key is ignored, and kept apart.
        let witness = note_key(&Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap(), "w");
        let cosigned = format!("{note}{}", witness.signature_line(&[1; 64]));
        assert_eq!(open_checkpoint(&cosigned, &key).unwrap().head, head);
        assert_eq!(other_signatures(&cosigned, &key.name).len(), 1);
    }

    #[test]
    fn sizes_with_leading_zeros_and_short_roots_are_refused() {
        let pair = key_pair();
        let key = note_key(&pair, "o");
        for text in [
            "o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAA\n",
            "o\n1\n",
            "o\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
        ] {
            let line = key.signature_line(pair.sign(text.as_bytes()).as_ref());
            let note = signed_note(text, &[line]);
            assert!(open_checkpoint(&note, &key).is_err(), "{text:?}");
        }
    }
}
