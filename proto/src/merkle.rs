//! The audit log's Merkle tree, as RFC 9162 (Certificate Transparency 2.0)
//! §2.1 defines it with SHA-256: leaves hashed with a `0x00` prefix,
//! interior nodes with `0x01`, and a tree of `n` leaves split at the
//! largest power of two below `n`.
//!
//! Three parts, each written from the RFC's text: [`Frontier`] grows the
//! tree one leaf at a time keeping only the roots of its perfect subtrees
//! (what the server's writer holds); [`inclusion_ranges`] and
//! [`consistency_ranges`] say which subtrees make up a proof (the RFC's
//! `PATH` and `SUBPROOF`), so a server can fetch their hashes and answer;
//! and [`verify_inclusion`] and [`verify_consistency`] are the RFC's
//! verification algorithms (§2.1.3.2, §2.1.4.2), which clients run and
//! which the tests check against transparency-dev's vectors.

use std::ops::Range;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// The hash of a leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// A perfect subtree: `2^level` leaves from `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    /// Its height: 0 for a leaf.
    pub level: u32,
    /// Its place among the subtrees of its height, from 0.
    pub index: u64,
}

impl Subtree {
    /// The leaves it covers.
    pub fn leaves(self) -> Range<u64> {
        let start = self.index << self.level;
        start..start + (1 << self.level)
    }
}

/// The perfect subtrees that make up the leaves `range` of a tree, left to
/// right, each as large as it can be (the tree's own split). A range that
/// starts at 0 is a tree's prefix; the hash of the range is the hashes of
/// these folded from the right ([`fold`]).
pub fn decompose(range: Range<u64>) -> Vec<Subtree> {
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        // The largest power of two that `start` is a multiple of (all of
        // them for 0) and that still fits.
        let mut level = if start == 0 {
            63
        } else {
            start.trailing_zeros()
        };
        while level > 0 && start + (1u64 << level) > range.end {
            level -= 1;
        }
        out.push(Subtree {
            level,
            index: start >> level,
        });
        start += 1 << level;
    }
    out
}

/// The hash of the subtrees `decompose` gave, folded from the right as
/// RFC 9162's `MTH` splits a tree.
///
/// Only meaningful for a range that is itself a node of some tree: a
/// prefix `0..n`, or a range a proof names.
pub fn fold(hashes: &[Hash]) -> Hash {
    let mut hashes = hashes.iter().rev();
    let Some(last) = hashes.next() else {
        return empty_root();
    };
    hashes.fold(*last, |right, left| node_hash(left, &right))
}

/// The largest power of two smaller than `n` (for `n` > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The ranges of leaves whose hashes form the inclusion proof of leaf
/// `index` in a tree of `size` leaves, in proof order (RFC 9162 §2.1.3.1
/// `PATH`). Empty when `index >= size`.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    if index < size {
        path(index, 0..size, &mut out);
    }
    out
}

fn path(m: u64, tree: Range<u64>, out: &mut Vec<Range<u64>>) {
    let n = tree.end - tree.start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    let middle = tree.start + k;
    if m < k {
        path(m, tree.start..middle, out);
        out.push(middle..tree.end);
    } else {
        path(m - k, middle..tree.end, out);
        out.push(tree.start..middle);
    }
}

/// The ranges of leaves whose hashes form the consistency proof between
/// trees of `first` and `second` leaves, in proof order (RFC 9162 §2.1.4.1
/// `PROOF`/`SUBPROOF`). Empty when `first` is 0, `first >= second`.
pub fn consistency_ranges(first: u64, second: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    if 0 < first && first < second {
        subproof(first, 0..second, true, &mut out);
    }
    out
}

fn subproof(m: u64, tree: Range<u64>, whole: bool, out: &mut Vec<Range<u64>>) {
    let n = tree.end - tree.start;
    if m == n {
        if !whole {
            out.push(tree);
        }
        return;
    }
    let k = split(n);
    let middle = tree.start + k;
    if m <= k {
        subproof(m, tree.start..middle, whole, out);
        out.push(middle..tree.end);
    } else {
        subproof(m - k, middle..tree.end, false, out);
        out.push(tree.start..middle);
    }
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The sizes or index cannot have a proof (e.g. an index past the
    /// tree's end, or a second tree smaller than the first).
    #[error("no proof exists for these sizes: {0}")]
    Sizes(&'static str),
    /// The proof has the wrong number of hashes.
    #[error("the proof has the wrong number of hashes")]
    Length,
    /// The proof does not lead to the root it should.
    #[error("the proof does not match the tree's root")]
    Mismatch,
}

fn shift_until_odd_or_zero(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// Checks that the leaf hashing to `leaf` is number `index` (from 0) of
/// the tree of `size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Sizes("the leaf is past the tree's end"));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                shift_until_odd_or_zero(&mut fn_, &mut sn);
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length);
    }
    if r == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Checks that the tree of `first` leaves with root `first_root` is a
/// prefix of the tree of `second` leaves with root `second_root`
/// (RFC 9162 §2.1.4.2; equal sizes need an empty proof and equal roots).
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), ProofError> {
    if second < first {
        return Err(ProofError::Sizes(
            "the second tree is smaller than the first",
        ));
    }
    if first == 0 {
        return Err(ProofError::Sizes("nothing is proven about an empty tree"));
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::Length);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let Some((head, rest)) = proof.split_first() else {
        return Err(ProofError::Length);
    };
    // A first tree of a power-of-two size is a node of the second, left
    // out of the proof because the verifier knows it.
    let (seed, rest) = if first.is_power_of_two() {
        (first_root, proof)
    } else {
        (head, rest)
    };
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::Length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                shift_until_odd_or_zero(&mut fn_, &mut sn);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length);
    }
    if fr == *first_root && sr == *second_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// A tree being grown: the roots of its perfect subtrees, largest first
/// (a "compact range" of `0..size`). Adding a leaf costs one hash plus one
/// per subtree it completes; the root costs one hash per subtree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One root per one-bit of `size`, highest bit first.
    roots: Vec<Hash>,
}

/// Why stored frontier bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored tree frontier of {0} bytes does not fit its size")]
pub struct BadFrontier(pub usize);

impl Frontier {
    /// The leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds a leaf.
    pub fn append(&mut self, leaf: Hash) {
        self.push(leaf, |_, _| {});
    }

    /// Adds a leaf, telling `completed` of each perfect subtree it
    /// completes, from the leaf itself (level 0) upwards, with its hash.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(Subtree, &Hash)) {
        let index = self.size;
        completed(Subtree { level: 0, index }, &leaf);
        let mut hash = leaf;
        let mut level = 0;
        while (index >> level) & 1 == 1 {
            let Some(left) = self.roots.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            completed(
                Subtree {
                    level,
                    index: index >> level,
                },
                &hash,
            );
        }
        self.roots.push(hash);
        self.size += 1;
    }

    /// The tree's root (RFC 9162 `MTH`).
    pub fn root(&self) -> Hash {
        fold(&self.roots)
    }

    /// The frontier as stored: `size` as 8 bytes big-endian, then each
    /// root.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.roots.len());
        out.extend(self.size.to_be_bytes());
        for root in &self.roots {
            out.extend(root);
        }
        out
    }

    /// Reads [`Frontier::to_bytes`]'s form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BadFrontier> {
        let bad = || BadFrontier(bytes.len());
        let (size, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        let size = u64::from_be_bytes(*size);
        let (chunks, tail) = rest.as_chunks::<32>();
        if !tail.is_empty() || chunks.len() != size.count_ones() as usize {
            return Err(bad());
        }
        Ok(Self {
            size,
            roots: chunks.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162's `MTH`, written directly from its recursive definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = usize::try_from(split(n as u64)).unwrap();
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn range_hash(all: &[Hash], range: Range<u64>) -> Hash {
        let (a, b) = (range.start as usize, range.end as usize);
        mth(&all[a..b])
    }

    #[test]
    fn the_frontier_root_is_the_trees_root_and_survives_storage() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        let mut appended = Frontier::default();
        for (n, leaf) in all.iter().enumerate() {
            appended.append(*leaf);
            let mut completed = Vec::new();
            frontier.push(*leaf, |subtree, hash| completed.push((subtree, *hash)));
            assert_eq!(appended, frontier);
            for (subtree, hash) in completed {
                let range = subtree.leaves();
                assert_eq!(hash, range_hash(&all, range));
            }
            assert_eq!(frontier.root(), mth(&all[..=n]));
            let stored = Frontier::from_bytes(&frontier.to_bytes()).unwrap();
            assert_eq!(stored, frontier);
        }
        assert!(Frontier::from_bytes(&[0; 9]).is_err());
        let mut bytes = frontier.to_bytes();
        bytes[7] ^= 1;
        assert!(Frontier::from_bytes(&bytes).is_err());
    }

    #[test]
    fn decomposed_ranges_fold_to_their_hash() {
        let all = leaves(70);
        for size in 1..=70 {
            let parts = decompose(0..size);
            let hashes: Vec<Hash> = parts.iter().map(|s| range_hash(&all, s.leaves())).collect();
            assert_eq!(fold(&hashes), mth(&all[..size as usize]), "{size}");
        }
    }

    #[test]
    fn proofs_made_from_ranges_verify_and_altered_ones_do_not() {
        let all = leaves(33);
        for size in 1..=33u64 {
            let root = mth(&all[..size as usize]);
            for index in 0..size {
                let proof: Vec<Hash> = inclusion_ranges(index, size)
                    .into_iter()
                    .map(|r| {
                        for part in decompose(r.clone()) {
                            assert!(part.leaves().end <= r.end);
                        }
                        range_hash(&all, r)
                    })
                    .collect();
                verify_inclusion(index, size, &all[index as usize], &proof, &root).unwrap();
                let wrong = leaf_hash(b"forged");
                assert!(verify_inclusion(index, size, &wrong, &proof, &root).is_err());
                if let Some((first, rest)) = proof.split_first() {
                    assert!(
                        verify_inclusion(index, size, &all[index as usize], rest, &root).is_err()
                    );
                    let mut flipped = proof.clone();
                    flipped[0][0] ^= 1;
                    assert!(
                        verify_inclusion(index, size, &all[index as usize], &flipped, &root)
                            .is_err(),
                        "{first:?}"
                    );
                }
            }
            for first in 1..=size {
                let proof: Vec<Hash> = consistency_ranges(first, size)
                    .into_iter()
                    .map(|r| range_hash(&all, r))
                    .collect();
                let first_root = mth(&all[..first as usize]);
                verify_consistency(first, size, &proof, &first_root, &root).unwrap();
                let other = leaf_hash(b"rewritten");
                assert!(verify_consistency(first, size, &proof, &other, &root).is_err());
                if first < size {
                    assert!(verify_consistency(first, size, &proof, &first_root, &other).is_err());
                }
            }
        }
    }
}
