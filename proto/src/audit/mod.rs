//! The audit log's entry, its canonical encoding, the hash chain and the
//! signed checkpoints: everything an outside auditor needs to verify an
//! export with their own code. `docs/audit-format.md` specifies the same
//! thing byte for byte.
//!
//! An entry's canonical bytes are a fixed tag followed by its fields in a
//! fixed order, each self-delimiting (fixed width, or a 4-byte big-endian
//! length before the UTF-8 text), so two different entries never encode to
//! the same bytes, and no text inside a field can pass for a field boundary.

//!
//! [`entry`] is the entry and its encoding, [`checkpoint`] the signed
//! statement about the chain's head, and [`verify`] checks a whole log.

mod checkpoint;
mod entry;
mod verify;

pub use checkpoint::{CHECKPOINT_TAG, Checkpoint};
pub use entry::{
    AuditEntry, DecodeError, ENTRY_TAG, FieldTooLong, GENESIS_HASH, MAX_FIELD_BYTES, Outcome,
};
pub use verify::{Broken, Verifier, verify};

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
