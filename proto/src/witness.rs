//! Witnesses of the audit log, as the C2SP transparency-log ecosystem
//! defines them: the `add-checkpoint` request of `c2sp.org/tlog-witness`,
//! by which a log submits a checkpoint and a consistency proof from the
//! last checkpoint the witness cosigned, and the Ed25519 cosignature of
//! `c2sp.org/tlog-cosignature` (key type 0x04) the witness answers with.
//!
//! A cosignature says: as of its time, this is the largest tree the
//! witness has seen of the log, and every tree it saw before is a prefix of
//! it. A log that was rewound or forked cannot get one for its new
//! history from a witness that cosigned the old.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, UnparsedPublicKey};

use crate::merkle::{self, Hash};
use crate::note::{self, NoteError, SIGNATURE_PREFIX, TreeHead};

/// The witness's submission route.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
/// The content type of a 409 answer: the size the witness last cosigned.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// The key type byte of an Ed25519 cosigner key.
const COSIGNATURE_TYPE: u8 = 0x04;
/// The first line of the message a cosignature signs.
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// A witness's Ed25519 cosigning key, as checkpoints name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerKey {
    /// The witness's name (a schema-less URL, e.g. `witness.example/w1`).
    pub name: String,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
}

/// A cosignature that verified: when the witness made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's time of signing (POSIX seconds).
    pub timestamp: u64,
}

impl CosignerKey {
    /// The key id: the first 4 bytes of SHA-256(name || 0x0A || 0x04 ||
    /// public key).
    pub fn id(&self) -> [u8; 4] {
        note::key_id(&self.name, COSIGNATURE_TYPE, &self.public_key)
    }

    /// The verifier key: `name+hex(id)+base64(0x04 || public key)`.
    pub fn verifier_string(&self) -> String {
        note::verifier_string(&self.name, COSIGNATURE_TYPE, &self.public_key)
    }

    /// Reads [`CosignerKey::verifier_string`]'s form, checking its key id.
    pub fn from_verifier_string(text: &str) -> Option<Self> {
        let (name, public_key) = note::parse_verifier_string(text, COSIGNATURE_TYPE)?;
        Some(Self { name, public_key })
    }

    /// The message a cosignature made at `timestamp` signs over a
    /// checkpoint whose note text is `text`.
    pub fn signed_message(timestamp: u64, text: &str) -> String {
        format!("{COSIGNATURE_HEADER}time {timestamp}\n{text}")
    }

    /// The signature line of a cosignature: the key id, the timestamp
    /// (big-endian u64) and the 64-byte signature, in base64.
    pub fn cosignature_line(&self, timestamp: u64, signature: &[u8]) -> String {
        let mut bytes = self.id().to_vec();
        bytes.extend(timestamp.to_be_bytes());
        bytes.extend(signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(bytes)
        )
    }

    /// Verifies this witness's cosignature on `note` (a checkpoint carrying
    /// it among its signature lines): every line with this key's name and
    /// id must verify, and there must be one.
    pub fn verify(&self, note: &str) -> Result<Cosigned, NoteError> {
        let (text, signatures) = note::split(note)?;
        let id = self.id();
        let mut found = None;
        for (name, key_id, bytes) in signatures {
            if name != self.name || key_id != id {
                continue;
            }
            let bad = || NoteError::BadSignature(self.name.clone());
            let (timestamp, signature) = bytes.split_at_checked(8).ok_or_else(bad)?;
            let timestamp = u64::from_be_bytes(timestamp.try_into().map_err(|_| bad())?);
            if timestamp == 0 || timestamp > i64::MAX as u64 {
                return Err(bad());
            }
            UnparsedPublicKey::new(&ED25519, self.public_key)
                .verify(Self::signed_message(timestamp, text).as_bytes(), signature)
                .map_err(|_| bad())?;
            found = Some(Cosigned { timestamp });
        }
        found.ok_or_else(|| NoteError::Unsigned(self.name.clone()))
    }
}

/// An `add-checkpoint` request: the size of the last checkpoint the
/// witness cosigned, the consistency proof from it, and the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the log believes the witness last cosigned (0 if none).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note.
    pub checkpoint: String,
}

/// Why an `add-checkpoint` body is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed add-checkpoint request: {0}")]
pub struct MalformedRequest(pub &'static str);

impl AddCheckpoint {
    /// The request body.
    pub fn to_text(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }

    /// Reads a request body, strictly.
    pub fn parse(body: &str) -> Result<Self, MalformedRequest> {
        let (head, checkpoint) = body
            .split_once("\n\n")
            .ok_or(MalformedRequest("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|line| line.strip_prefix("old "))
            .ok_or(MalformedRequest("the first line is not `old <size>`"))?;
        if (old.len() > 1 && old.starts_with('0')) || !old.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MalformedRequest("the old size is not a plain decimal"));
        }
        let old_size = old
            .parse()
            .map_err(|_| MalformedRequest("the old size is not a plain decimal"))?;
        let mut proof = Vec::new();
        for line in lines {
            let hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|bytes| Hash::try_from(bytes).ok())
                .ok_or(MalformedRequest(
                    "a proof line is not a base64 SHA-256 hash",
                ))?;
            proof.push(hash);
        }
        if proof.len() > MAX_PROOF_LINES {
            return Err(MalformedRequest("more than 63 proof lines"));
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// Why a witness refused to cosign, with the HTTP status
/// `c2sp.org/tlog-witness` gives each case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// 400: the request or its checkpoint is malformed, or the old size is
    /// larger than the checkpoint's.
    #[error("{0}")]
    BadRequest(String),
    /// 403: no valid signature by a key the witness trusts for the origin.
    #[error("the checkpoint is not signed by a key this witness trusts for its log")]
    Forbidden,
    /// 404: the witness does not follow this log.
    #[error("this witness does not follow the log {0:?}")]
    UnknownLog(String),
    /// 409: the old size is not the size the witness last cosigned.
    #[error("this witness last cosigned the tree of {0} entries")]
    Conflict(u64),
    /// 422: the checkpoint is not consistent with what the witness
    /// cosigned before: the log was rewound or forked.
    #[error("the checkpoint is not consistent with the tree this witness cosigned: {0}")]
    Inconsistent(String),
    /// 503: the witness cannot record what it would cosign.
    #[error("the witness cannot record what it cosigns right now; try again later")]
    Unavailable,
}

impl Refusal {
    /// The HTTP status code of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden => 403,
            Self::UnknownLog(_) => 404,
            Self::Conflict(_) => 409,
            Self::Inconsistent(_) => 422,
            Self::Unavailable => 503,
        }
    }
}

/// What a witness remembers of a log: the last tree it cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its size (0 before the first).
    pub size: u64,
    /// Its root.
    pub root: Hash,
}

/// The witness's decision on `request`, whose checkpoint says `head` and
/// was signed by a key the witness trusts, given the tree it last cosigned
/// for that log: the tree to remember and cosign, or the refusal.
pub fn check(request: &AddCheckpoint, head: &TreeHead, seen: &Seen) -> Result<Seen, Refusal> {
    if request.old_size > head.size {
        return Err(Refusal::BadRequest(format!(
            "the old size {} is larger than the checkpoint's {}",
            request.old_size, head.size
        )));
    }
    if request.old_size != seen.size {
        return Err(Refusal::Conflict(seen.size));
    }
    if head.size == 0 && head.root != merkle::empty_root() {
        return Err(Refusal::Inconsistent(
            "an empty tree with a root other than the empty tree's".to_owned(),
        ));
    }
    if request.old_size == 0 {
        if !request.proof.is_empty() {
            return Err(Refusal::Inconsistent(
                "a consistency proof from the empty tree".to_owned(),
            ));
        }
    } else if request.old_size == head.size {
        if head.root != seen.root {
            return Err(Refusal::Inconsistent(format!(
                "a different root for the tree of {} entries",
                head.size
            )));
        }
    } else {
        merkle::verify_consistency(
            request.old_size,
            head.size,
            &request.proof,
            &seen.root,
            &head.root,
        )
        .map_err(|error| {
            Refusal::Inconsistent(format!(
                "the proof from {} to {} entries does not verify ({error})",
                request.old_size, head.size
            ))
        })?;
    }
    Ok(Seen {
        size: head.size,
        root: head.root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Frontier, leaf_hash};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn tree(leaves: std::ops::Range<u8>) -> Frontier {
        let mut tree = Frontier::default();
        for leaf in leaves {
            tree.append(leaf_hash(&[leaf]));
        }
        tree
    }

    fn head(tree: &Frontier) -> TreeHead {
        TreeHead {
            origin: "o".to_owned(),
            size: tree.size(),
            root: tree.root(),
        }
    }

    #[test]
    fn a_cosignature_signs_the_header_time_and_checkpoint_and_nothing_else_verifies() {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
        let key = CosignerKey {
            name: "witness.example/w1".to_owned(),
            public_key: pair.public_key().as_ref().try_into().unwrap(),
        };
        assert_eq!(
            CosignerKey::from_verifier_string(&key.verifier_string()),
            Some(key.clone())
        );
        // A signed-note (type 0x01) key is not a cosigner key.
        let note_key = note::NoteKey {
            name: key.name.clone(),
            public_key: key.public_key,
        };
        assert_eq!(
            CosignerKey::from_verifier_string(&note_key.verifier_string()),
            None
        );
        let text = "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let message = CosignerKey::signed_message(1_679_315_147, text);
        assert_eq!(
            message,
            "cosignature/v1\ntime 1679315147\no\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        let line = key.cosignature_line(1_679_315_147, pair.sign(message.as_bytes()).as_ref());
        let note = format!("{text}\n{line}");
        assert_eq!(
            key.verify(&note),
            Ok(Cosigned {
                timestamp: 1_679_315_147
            })
        );
        // Another time, another size, or no cosignature: refused.
        let retimed = key.cosignature_line(1_679_315_148, pair.sign(message.as_bytes()).as_ref());
        assert!(key.verify(&format!("{text}\n{retimed}")).is_err());
        assert!(key.verify(&note.replacen("\n5\n", "\n6\n", 1)).is_err());
        let other = note_key.signature_line(&[0; 64]);
        assert_eq!(
            key.verify(&format!("{text}\n{other}")),
            Err(NoteError::Unsigned(key.name.clone()))
        );
    }

    #[test]
    fn requests_round_trip_and_malformed_ones_are_refused() {
        let request = AddCheckpoint {
            old_size: 20,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: "o\n21\nAQ==\n\n\u{2014} o AAAA\n".to_owned(),
        };
        assert_eq!(AddCheckpoint::parse(&request.to_text()), Ok(request));
        for bad in [
            "old 01\n\nx",
            "old -1\n\nx",
            "old 1\nAAAA\n\nx",
            "new 1\n\nx",
            "old 1\nx",
        ] {
            assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!(
            "old 1\n{}\nx",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n".repeat(64)
        );
        assert!(AddCheckpoint::parse(&long).is_err());
    }

    #[test]
    fn a_witness_cosigns_only_trees_that_extend_the_one_it_cosigned() {
        let small = tree(0..5);
        let large = tree(0..9);
        let forked = {
            let mut tree = tree(0..4);
            for leaf in 50..55 {
                tree.append(leaf_hash(&[leaf]));
            }
            tree
        };
        let nothing = Seen {
            size: 0,
            root: merkle::empty_root(),
        };
        let first = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: String::new(),
        };
        let seen = check(&first, &head(&small), &nothing).unwrap();
        assert_eq!(seen.size, 5);

        // Consistency from 5 to 9, as RFC 9162 defines it, hashed from the
        // leaves.
        let proof = |second: &Frontier, leaves: &[u8]| -> Vec<Hash> {
            merkle::consistency_ranges(5, second.size())
                .into_iter()
                .map(|range| {
                    let mut part = Frontier::default();
                    for i in range {
                        part.append(leaf_hash(&[leaves[usize::try_from(i).unwrap()]]));
                    }
                    part.root()
                })
                .collect()
        };
        let honest: Vec<u8> = (0..9).collect();
        let fork: Vec<u8> = (0..4).chain(50..55).collect();
        let next = AddCheckpoint {
            old_size: 5,
            proof: proof(&large, &honest),
            checkpoint: String::new(),
        };
        assert_eq!(check(&next, &head(&large), &seen).unwrap().size, 9);

        let forged = AddCheckpoint {
            old_size: 5,
            proof: proof(&forked, &fork),
            checkpoint: String::new(),
        };
        assert!(matches!(
            check(&forged, &head(&forked), &seen),
            Err(Refusal::Inconsistent(_))
        ));
        // A stale old size is a conflict naming the size the witness has;
        // a smaller tree, or the same size with another root, is refused.
        assert_eq!(
            check(&first, &head(&large), &seen),
            Err(Refusal::Conflict(5))
        );
        let same_size = AddCheckpoint {
            old_size: 5,
            proof: vec![],
            checkpoint: String::new(),
        };
        assert!(matches!(
            check(&same_size, &head(&tree(1..6)), &seen),
            Err(Refusal::Inconsistent(_))
        ));
        assert!(matches!(
            check(&same_size, &head(&tree(0..3)), &seen),
            Err(Refusal::BadRequest(_))
        ));
    }
}
