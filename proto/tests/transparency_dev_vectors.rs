//! RFC 9162 proof verification checked against transparency-dev/merkle's
//! test vectors (see `vectors/README.md`): each valid proof is accepted and
//! each altered one refused, as that implementation expects.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step is a failed test"
)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curbside_proto::merkle::{Hash, verify_consistency, verify_inclusion};
use serde_json::Value;

/// A vector's hash. A value of another length (the vectors use "don't
/// care" placeholders and truncated hashes) becomes the SHA-256 of its
/// bytes, marked: equal values stay equal and different ones different, so every
/// vector reaches the verifier, which must then accept or refuse it as
/// transparency-dev's does.
fn hash(value: &Value) -> Option<Hash> {
    let bytes = STANDARD.decode(value.as_str()?).ok()?;
    Some(Hash::try_from(bytes.as_slice()).unwrap_or_else(|_| {
        // Prefixed, so that no placeholder stands for a real hash (an empty
        // value would otherwise become the empty tree's root).
        let mut marked = vec![0xff];
        marked.extend(&bytes);
        ring::digest::digest(&ring::digest::SHA256, &marked)
            .as_ref()
            .try_into()
            .unwrap()
    }))
}

fn proof(value: &Value) -> Option<Vec<Hash>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(hash).collect(),
        _ => None,
    }
}

fn vectors(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let Value::Array(vectors) = serde_json::from_str(&text).unwrap() else {
        panic!("{name}.json is not a list");
    };
    assert!(vectors.len() > 50, "{name}.json is incomplete");
    vectors
}

#[test]
fn inclusion_proofs_verify_as_transparency_dev_expects() {
    let mut checked = 0;
    for vector in vectors("inclusion") {
        let accepted = (|| {
            let index = vector["leafIdx"].as_u64()?;
            let size = vector["treeSize"].as_u64()?;
            let root = hash(&vector["root"])?;
            let proof = proof(&vector["proof"])?;
            checked += 1;
            // A leaf hash is 32 bytes by type here, where transparency-dev
            // checks its length: one of another length is refused as there.
            let leaf = STANDARD.decode(vector["leafHash"].as_str()?).ok()?;
            let leaf = Hash::try_from(leaf.as_slice()).ok()?;
            verify_inclusion(index, size, &leaf, &proof, &root).ok()
        })()
        .is_some();
        let want_error = vector["wantErr"].as_bool().unwrap();
        assert_eq!(accepted, !want_error, "{}", vector["file"]);
    }
    assert!(checked >= 90, "only {checked} vectors reached the verifier");
}

#[test]
fn consistency_proofs_verify_as_transparency_dev_expects() {
    let mut checked = 0;
    for vector in vectors("consistency") {
        let accepted = (|| {
            let first = vector["size1"].as_u64()?;
            let second = vector["size2"].as_u64()?;
            let first_root = hash(&vector["root1"])?;
            let second_root = hash(&vector["root2"])?;
            let proof = proof(&vector["proof"])?;
            checked += 1;
            verify_consistency(first, second, &proof, &first_root, &second_root).ok()
        })()
        .is_some();
        let want_error = vector["wantErr"].as_bool().unwrap();
        assert_eq!(accepted, !want_error, "{}", vector["file"]);
    }
    assert!(checked >= 90, "only {checked} vectors reached the verifier");
}
