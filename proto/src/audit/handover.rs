//! Rotating the audit key: the hand-over entry.
//!
//! `curbside-server audit-rotate-key` appends one entry (action
//! [`HANDOVER_ACTION`]) whose evidence carries a statement signed by both
//! the old and the new key: "from the tree of `size` entries with this
//! root on, the log is signed by the new key". The old key authorises the
//! change; the new key's signature shows it is really held. Checkpoints
//! after the hand-over entry (the chain's and the tree's) are the new
//! key's; the tree checkpoint that covers the hand-over entry carries both
//! signatures. A verifier that trusts the old key follows the hand-over to
//! the new one; a key change without one is refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, UnparsedPublicKey};

use crate::merkle::Hash;

/// The hand-over entry's action.
pub const HANDOVER_ACTION: &str = "audit.key.rotate";
/// The hand-over entry's resource type (its resource id is the new key).
pub const HANDOVER_RESOURCE: &str = "audit_key";

/// A hand-over as its entry's evidence says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The size of the tree before the hand-over entry.
    pub size: u64,
    /// That tree's root.
    pub root: Hash,
    /// The Ed25519 public key handed over from.
    pub old_key: [u8; 32],
    /// The new Ed25519 public key.
    pub new_key: [u8; 32],
    /// The old key's signature over [`statement`].
    pub old_signature: Vec<u8>,
    /// The new key's signature over [`statement`].
    pub new_signature: Vec<u8>,
}

/// What both keys sign: `curbside audit key handover v1`, then `old=`,
/// `new=` (the public keys, standard base64), `size=` and `root=` (the
/// tree before the hand-over entry, its root in standard base64) lines,
/// each ending in a newline.
pub fn statement(old_key: &[u8; 32], new_key: &[u8; 32], size: u64, root: &Hash) -> Vec<u8> {
    format!(
        "curbside audit key handover v1\nold={}\nnew={}\nsize={size}\nroot={}\n",
        STANDARD.encode(old_key),
        STANDARD.encode(new_key),
        STANDARD.encode(root)
    )
    .into_bytes()
}

impl Handover {
    /// The entry's evidence: `key-handover v1 size=N root=R old=K1 new=K2
    /// old_signature=S1 new_signature=S2` (R, K1, K2 standard base64; S1,
    /// S2 unpadded base64url).
    pub fn evidence(&self) -> String {
        format!(
            "key-handover v1 size={} root={} old={} new={} old_signature={} new_signature={}",
            self.size,
            STANDARD.encode(self.root),
            STANDARD.encode(self.old_key),
            STANDARD.encode(self.new_key),
            crate::b64::encode(&self.old_signature),
            crate::b64::encode(&self.new_signature)
        )
    }

    /// Reads [`Handover::evidence`]'s form.
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        if (words.next(), words.next()) != (Some("key-handover"), Some("v1")) {
            return None;
        }
        let mut value = |name: &str| words.next()?.strip_prefix(name)?.strip_prefix('=');
        let size = value("size")?.parse().ok()?;
        let root = Hash::try_from(STANDARD.decode(value("root")?).ok()?).ok()?;
        let old_key = <[u8; 32]>::try_from(STANDARD.decode(value("old")?).ok()?).ok()?;
        let new_key = <[u8; 32]>::try_from(STANDARD.decode(value("new")?).ok()?).ok()?;
        let old_signature = crate::b64::decode(value("old_signature")?).ok()?;
        let new_signature = crate::b64::decode(value("new_signature")?).ok()?;
        if words.next().is_some() {
            return None;
        }
        Some(Self {
            size,
            root,
            old_key,
            new_key,
            old_signature,
            new_signature,
        })
    }

    /// Checks both signatures over [`statement`]: the old key must be
    /// `trusted` (the key in force where the hand-over is), and the new
    /// key, returned, signed too.
    pub fn verify(&self, trusted: &[u8; 32]) -> Result<[u8; 32], &'static str> {
        if self.old_key != *trusted {
            return Err("the key hand-over is from another key than the log's audit key");
        }
        self.signatures_verify()?;
        Ok(self.new_key)
    }

    /// Checks both signatures over [`statement`], by the keys the
    /// hand-over names (a verifier that trusts the new key learns from it
    /// which key signed before).
    pub fn signatures_verify(&self) -> Result<(), &'static str> {
        let signed = statement(&self.old_key, &self.new_key, self.size, &self.root);
        UnparsedPublicKey::new(&ED25519, self.old_key)
            .verify(&signed, &self.old_signature)
            .map_err(|_| "the key hand-over is not signed by the audit key it hands over from")?;
        UnparsedPublicKey::new(&ED25519, self.new_key)
            .verify(&signed, &self.new_signature)
            .map_err(|_| "the key hand-over is not signed by the key it hands over to")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    #[test]
    fn a_handover_needs_both_signatures_over_its_exact_statement() {
        let old = Ed25519KeyPair::from_seed_unchecked(&[1; 32]).unwrap();
        let new = Ed25519KeyPair::from_seed_unchecked(&[2; 32]).unwrap();
        let old_key: [u8; 32] = old.public_key().as_ref().try_into().unwrap();
        let new_key: [u8; 32] = new.public_key().as_ref().try_into().unwrap();
        let signed = statement(&old_key, &new_key, 41, &[7; 32]);
        let handover = Handover {
            size: 41,
            root: [7; 32],
            old_key,
            new_key,
            old_signature: old.sign(&signed).as_ref().to_vec(),
            new_signature: new.sign(&signed).as_ref().to_vec(),
        };
        assert_eq!(
            Handover::parse(&handover.evidence()),
            Some(handover.clone())
        );
        assert_eq!(handover.verify(&old_key), Ok(new_key));
        // Another old key, another size, or a signature missing: refused.
        assert!(handover.verify(&new_key).is_err());
        let moved = Handover {
            size: 42,
            ..handover.clone()
        };
        assert!(moved.verify(&old_key).is_err());
        let self_signed = Handover {
            old_signature: new.sign(&signed).as_ref().to_vec(),
            ..handover.clone()
        };
        assert!(self_signed.verify(&old_key).is_err());
        let other_old = Handover {
            old_key: new_key,
            ..handover.clone()
        };
        assert!(other_old.signatures_verify().is_err());
        assert!(Handover::parse(&format!("{} extra", handover.evidence())).is_none());
    }
}
