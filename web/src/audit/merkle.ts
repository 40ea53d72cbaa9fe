// The audit log's Merkle tree (RFC 9162 §2.1 with SHA-256), grown one
// batch of leaves at a time while keeping only the root of each perfect
// subtree (one per one-bit of the size), as proto/src/merkle.rs's
// `Frontier` does. Memory is O(log n) whatever the log's size; the node
// hashes of a batch are computed level by level, each level's at once.

import { sha256 } from "./crypto";

/** `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  const input = new Uint8Array(65);
  input[0] = 1;
  input.set(left, 1);
  input.set(right, 33);
  return sha256(input);
}

export class Frontier {
  /** The number of leaves. */
  size = 0;
  /** `roots[l]`: the root of the perfect subtree of 2^l leaves, when bit l of size is set. */
  private roots: (Uint8Array | undefined)[] = [];

  /** Appends leaf hashes, in order. */
  async append(leaves: Uint8Array[]): Promise<void> {
    const before = this.size;
    let nodes = leaves;
    for (let level = 0; nodes.length > 0; level++) {
      // How many complete nodes of this level there were before the batch:
      // if odd, the last of them is a left child still waiting for its
      // sibling, the first of the new ones.
      const count = Math.floor(before / 2 ** level);
      const row = count % 2 === 1 ? [this.roots[level] as Uint8Array, ...nodes] : nodes;
      this.roots[level] = row.length % 2 === 1 ? row[row.length - 1] : undefined;
      const parents: Promise<Uint8Array>[] = [];
      for (let i = 0; i + 1 < row.length; i += 2) {
        parents.push(nodeHash(row[i] as Uint8Array, row[i + 1] as Uint8Array));
      }
      nodes = await Promise.all(parents);
    }
    this.size = before + leaves.length;
  }

  /** The tree's root (RFC 9162 `MTH`); SHA-256 of nothing when empty. */
  async root(): Promise<Uint8Array> {
    let root: Uint8Array | undefined;
    for (let level = 0; level < this.roots.length; level++) {
      const left = this.roots[level];
      if (left === undefined) continue;
      root = root === undefined ? left : await nodeHash(left, root);
    }
    return root ?? sha256(new Uint8Array(0));
  }
}
