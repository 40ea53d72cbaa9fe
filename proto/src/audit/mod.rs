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
//! statement about the chain's head, [`handover`] the entry that rotates
//! the audit key, and [`verify`] checks a whole log.

mod checkpoint;
mod entry;
pub mod handover;
mod verify;

pub use checkpoint::{CHECKPOINT_TAG, Checkpoint};
pub use entry::{
    AuditEntry, DecodeError, ENTRY_TAG, ENTRY_TAG_WITH_EVIDENCE, FieldTooLong, GENESIS_HASH,
    MAX_FIELD_BYTES, Outcome,
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
            evidence in proptest::option::of(text()),
        ) -> AuditEntry {
            AuditEntry {
                seq, time_ms, actor_user, actor_device, client_addr, request_id, action,
                resource_type, resource_id,
                outcome: if allowed { Outcome::Allowed } else { Outcome::Denied },
                reason, evidence,
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
            evidence: None,
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

    /// The entry of `docs/audit-format.md`'s worked example.
    fn worked_entry() -> AuditEntry {
        AuditEntry {
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
            evidence: None,
        }
    }

    /// The worked example of `docs/audit-format.md`, whose bytes and hash
    /// were computed there by an independent implementation.
    #[test]
    fn worked_example_matches_the_documentation() {
        let entry = worked_entry();
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

    /// docs/audit-format.md's tree example, computed there in Python: three
    /// entries, their leaf hashes, the root, a proof of each kind, and the
    /// checkpoint signed with RFC 8032's first test key.
    #[test]
    fn worked_tree_example_matches_the_documentation() {
        use crate::merkle::{self, Frontier};
        use crate::note::{self, NoteKey, TreeHead};
        let first = worked_entry();
        let second = AuditEntry {
            seq: 2,
            time_ms: 1_795_392_000_500,
            request_id: "5a1d0e7f3c2b4a6d8e9f0a1b2c3d4e5f".into(),
            action: "thread.list".into(),
            resource_type: "thread".into(),
            resource_id: None,
            ..first.clone()
        };
        let third = AuditEntry {
            seq: 3,
            time_ms: 1_795_392_001_000,
            actor_user: None,
            actor_device: None,
            request_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
            action: "auth.challenge".into(),
            resource_type: "device".into(),
            resource_id: Some("68b665bf3234076602540fa138a7c298".into()),
            outcome: Outcome::Denied,
            reason: "device_not_allowed".into(),
            evidence: None,
            ..first.clone()
        };
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let leaves: Vec<[u8; 32]> = [&first, &second, &third]
            .iter()
            .map(|entry| entry.leaf_hash().unwrap())
            .collect();
        assert_eq!(
            leaves.iter().map(|leaf| hex(leaf)).collect::<Vec<_>>(),
            [
                "a0c38b9c9d7071e4c9eb23dbd0e398d844a39f649bf9892881c66ddf71562479",
                "d1c203ebb1264e88904680936ee34ad5c5a3c7599b67b79662b9ead0d808661f",
                "a4ce64df9247bad6b6a3c5994fbb31d5d70a0f04877e781544acd5469ead1e8a",
            ]
        );
        let mut tree = Frontier::default();
        for leaf in &leaves {
            tree.append(*leaf);
        }
        let root = tree.root();
        assert_eq!(
            hex(&root),
            "30203181575a3d34be56bf788aa8526a97487cd8d236663d073eecf5d77bb25a"
        );
        let root2 = merkle::node_hash(&leaves[0], &leaves[1]);
        assert_eq!(
            hex(&root2),
            "745171ab6bc9931ddd2b2c54253c75aef707633230b02000ed3d9f46350d378a"
        );
        merkle::verify_inclusion(2, 3, &leaves[2], &[root2], &root).unwrap();
        merkle::verify_consistency(2, 3, &[leaves[2]], &root2, &root).unwrap();

        let seed = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let key = NoteKey::from_verifier_string(
            "curbside-audit/0123456789abcdef0123456789abcdef+9eb1c1a6+\
             AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea",
        )
        .unwrap();
        let text = TreeHead {
            origin: note::audit_origin("0123456789abcdef0123456789abcdef"),
            size: 3,
            root,
        }
        .text();
        let signed = note::signed_note(
            &text,
            &[key.signature_line(pair.sign(text.as_bytes()).as_ref())],
        );
        assert_eq!(
            signed,
            "curbside-audit/0123456789abcdef0123456789abcdef\n3\n\
             MCAxgVdaPTS+Vr94iqhSapdIfNjSNmY9Bz7s9dd7slo=\n\n\
             \u{2014} curbside-audit/0123456789abcdef0123456789abcdef \
             nrHBpvZvzyG8p/6Nd5hD04HrKnrDewCI5TILO6wmbzE3wOPRnL1K0UF+io027GKjtqCwcaDuQNoavK96s++9RESfpgQ=\n"
        );
        assert_eq!(note::open_checkpoint(&signed, &key).unwrap().head.size, 3);
    }

    /// docs/audit-format.md's receipt, rotation and witness examples,
    /// computed there in Python with RFC 8032's first and second test keys.
    #[test]
    fn worked_receipt_rotation_and_witness_examples_match_the_documentation() {
        use super::handover::{Handover, statement};
        use crate::note::{self, NoteKey, TreeHead};
        use crate::threads::{ReceiptKind, receipt_evidence, receipt_message};
        use crate::witness::CosignerKey;
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let seed = |text: &str| -> [u8; 32] {
            let bytes: Vec<u8> = (0..64)
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect();
            bytes.try_into().unwrap()
        };
        let first = Ed25519KeyPair::from_seed_unchecked(&seed(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ))
        .unwrap();
        let second = Ed25519KeyPair::from_seed_unchecked(&seed(
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        ))
        .unwrap();
        let server = "0123456789abcdef0123456789abcdef";
        let thread = "00112233445566778899aabbccddeeff";

        // The signed receipt, and the entry that keeps it.
        let message = receipt_message(
            server,
            "68b665bf3234076602540fa138a7c298",
            thread,
            ReceiptKind::Read,
            42,
            1_795_392_000_000,
        );
        assert_eq!(
            String::from_utf8(message.clone()).unwrap(),
            "curbside receipt v1\nserver=0123456789abcdef0123456789abcdef\n\
             device=68b665bf3234076602540fa138a7c298\nthread=00112233445566778899aabbccddeeff\n\
             kind=read\nthrough=42\ntime_ms=1795392000000\n"
        );
        let evidence = receipt_evidence(42, 1_795_392_000_000, first.sign(&message).as_ref());
        assert_eq!(
            evidence,
            "receipt v1 through=42 time_ms=1795392000000 \
             signature=WE-cCTqQkmHBjV65fhRtELuRiqSg6Va0I2URaLy9Tqch9Fcp0sQX409m11nVqLg6Zg5P-\
             cCLbKwCgIhrSK4AAg"
        );
        let receipt_entry = AuditEntry {
            action: "thread.receipt.read".into(),
            resource_type: "thread".into(),
            resource_id: Some(thread.into()),
            evidence: Some(evidence),
            ..worked_entry()
        };
        assert_eq!(
            hex(&receipt_entry.hash(&GENESIS_HASH).unwrap()),
            "b0fe69236d29c653f2129419df3d6daede95f8876f46a869c1f785e83ca1c424"
        );
        let bytes = receipt_entry.canonical_bytes().unwrap();
        assert!(bytes.starts_with(b"curbside-audit-entry-v2\0"));
        assert_eq!(AuditEntry::from_canonical_bytes(&bytes), Ok(receipt_entry));

        // The hand-over from the first key to the second after three
        // entries, and the tree checkpoint of four both keys sign.
        let old_key: [u8; 32] = first.public_key().as_ref().try_into().unwrap();
        let new_key: [u8; 32] = second.public_key().as_ref().try_into().unwrap();
        let root3 = crate::b64::decode("MCAxgVdaPTS-Vr94iqhSapdIfNjSNmY9Bz7s9dd7slo")
            .unwrap()
            .try_into()
            .unwrap();
        let signed = statement(&old_key, &new_key, 3, &root3);
        let handover = Handover {
            size: 3,
            root: root3,
            old_key,
            new_key,
            old_signature: first.sign(&signed).as_ref().to_vec(),
            new_signature: second.sign(&signed).as_ref().to_vec(),
        };
        assert_eq!(
            handover.evidence(),
            "key-handover v1 size=3 root=MCAxgVdaPTS+Vr94iqhSapdIfNjSNmY9Bz7s9dd7slo= \
             old=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= \
             new=PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw= \
             old_signature=zqfafTw9bAl1arxfBXApeipQATpWH6aGCevFKojZlDbWUSw76kJypeC1WDw57s43EBCrB_\
             qShIvA_P7IyruwCA \
             new_signature=edvAeijotWuVIezjDS_GgB74wESnx5-JyWhrjKTWqY8Hg_Z-OpurS99ZvdYkIr0vg80CWozs1el3\
             Axy3RmQKCw"
        );
        let new_note_key = NoteKey::for_audit_log(server, &new_key).unwrap();
        assert_eq!(
            new_note_key.verifier_string(),
            "curbside-audit/0123456789abcdef0123456789abcdef+561424ec+\
             AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM"
        );
        let handover_entry = AuditEntry {
            seq: 4,
            time_ms: 1_795_392_001_500,
            actor_user: None,
            actor_device: None,
            client_addr: None,
            request_id: "9e8d7c6b5a4938271605f4e3d2c1b0a9".into(),
            action: super::handover::HANDOVER_ACTION.into(),
            resource_type: super::handover::HANDOVER_RESOURCE.into(),
            resource_id: Some(new_note_key.verifier_string()),
            outcome: Outcome::Allowed,
            reason: "ok".into(),
            evidence: Some(handover.evidence()),
        };
        assert_eq!(
            hex(&handover_entry.leaf_hash().unwrap()),
            "f525c5d7a9419b074f8af3297691951a72be955bbc470625bd4a8c002010cb38"
        );

        // The witness's cosignature on the size-3 checkpoint.
        let witness = CosignerKey {
            name: "witness.example/w1".into(),
            public_key: new_key,
        };
        assert_eq!(
            witness.verifier_string(),
            "witness.example/w1+04d2d833+BD1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM"
        );
        let text = TreeHead {
            origin: note::audit_origin(server),
            size: 3,
            root: root3,
        }
        .text();
        let line = witness.cosignature_line(
            1_795_392_000,
            second
                .sign(CosignerKey::signed_message(1_795_392_000, &text).as_bytes())
                .as_ref(),
        );
        assert_eq!(
            line,
            "\u{2014} witness.example/w1 BNLYMwAAAABrA4IAD4bh6Kfr0WM0+VIxAAovUKExAdbdG2eYZYmdb813c3sBc\
             Dif/Mw5VK0sCpc4M0PLYazshhO1jVUWvWWJRvHaAg==\n"
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
