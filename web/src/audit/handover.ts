// The key hand-over kept as an `audit.key.rotate` entry's evidence
// (docs/audit-format.md, "Rotating the audit key";
// proto/src/audit/handover.rs), read and checked the same way.

import { equalBytes, fromB64std, fromB64url, toB64std, U64_MAX, utf8 } from "./bytes";
import { ed25519Verify } from "./crypto";

/** The hand-over entry's action. */
export const HANDOVER_ACTION = "audit.key.rotate";

export interface Handover {
  /** The size of the tree before the hand-over entry. */
  size: bigint;
  /** That tree's root. */
  root: Uint8Array;
  oldKey: Uint8Array;
  newKey: Uint8Array;
  oldSignature: Uint8Array;
  newSignature: Uint8Array;
}

/** What both keys sign. */
export function statement(oldKey: Uint8Array, newKey: Uint8Array, size: bigint, root: Uint8Array): Uint8Array {
  return utf8(
    `curbside audit key handover v1\nold=${toB64std(oldKey)}\nnew=${toB64std(newKey)}\n` +
      `size=${size}\nroot=${toB64std(root)}\n`,
  );
}

// Rust's `u64::from_str`: an optional `+`, then decimal digits (leading
// zeros allowed), at most 2^64 - 1.
function parseU64(text: string): bigint | null {
  if (!/^\+?[0-9]+$/.test(text)) return null;
  const value = BigInt(text.replace(/^\+/, ""));
  return value > U64_MAX ? null : value;
}

/**
 * Reads `key-handover v1 size=N root=R old=K1 new=K2 old_signature=S1
 * new_signature=S2` (R, K1, K2 standard base64 with padding; S1, S2
 * unpadded base64url), one space between words, nothing else; null if it
 * is not exactly that.
 */
export function parseHandover(text: string): Handover | null {
  const words = text.split(" ");
  if (words.length !== 8 || words[0] !== "key-handover" || words[1] !== "v1") return null;
  const value = (index: number, name: string): string | null => {
    const word = words[index] ?? "";
    return word.startsWith(name + "=") ? word.slice(name.length + 1) : null;
  };
  const sizeText = value(2, "size");
  const rootText = value(3, "root");
  const oldText = value(4, "old");
  const newText = value(5, "new");
  const oldSigText = value(6, "old_signature");
  const newSigText = value(7, "new_signature");
  if (sizeText === null || rootText === null || oldText === null || newText === null) return null;
  if (oldSigText === null || newSigText === null) return null;
  const size = parseU64(sizeText);
  const root = fromB64std(rootText);
  const oldKey = fromB64std(oldText);
  const newKey = fromB64std(newText);
  const oldSignature = fromB64url(oldSigText);
  const newSignature = fromB64url(newSigText);
  if (size === null || root === null || root.length !== 32) return null;
  if (oldKey === null || oldKey.length !== 32 || newKey === null || newKey.length !== 32) return null;
  if (oldSignature === null || newSignature === null) return null;
  return { size, root, oldKey, newKey, oldSignature, newSignature };
}

/**
 * Checks both signatures over the statement, the old key being `trusted`
 * (the key in force where the hand-over stands); resolves to the new key,
 * or rejects with the CLI's reason.
 */
export async function verifyHandover(handover: Handover, trusted: Uint8Array): Promise<Uint8Array> {
  if (!equalBytes(handover.oldKey, trusted)) {
    throw new Error("the key hand-over is from another key than the log's audit key");
  }
  const signed = statement(handover.oldKey, handover.newKey, handover.size, handover.root);
  if (!(await ed25519Verify(handover.oldKey, signed, handover.oldSignature))) {
    throw new Error("the key hand-over is not signed by the audit key it hands over from");
  }
  if (!(await ed25519Verify(handover.newKey, signed, handover.newSignature))) {
    throw new Error("the key hand-over is not signed by the key it hands over to");
  }
  return handover.newKey;
}

/** An `audit.key.rotate` entry as the search returns it (allowed ones only). */
export interface HandoverEntry {
  seq: number | bigint;
  evidence?: string | null;
}

/** A hand-over entry that does not hold: the log is broken at `seq`. */
export class HandoverError extends Error {
  constructor(readonly seq: bigint, reason: string) {
    super(reason);
  }
}

/** The log's first key, and the hand-overs that lead from it to the pinned key. */
export interface FirstKey {
  key: Uint8Array;
  /** The hand-overs walked back, oldest first: entry, old key, new key. */
  steps: { seq: bigint; oldKey: Uint8Array; newKey: Uint8Array }[];
}

/**
 * The key the log began with, found from `pinned` (the key this browser
 * pinned, which may be one the log was handed over to) by following the
 * log's hand-overs back, as the CLI's `first_key` does: each names the key
 * before it in a statement the later key signed. Unlike the CLI, every
 * hand-over listed must read and verify (both signatures over its own
 * statement, at its place in the log), or this rejects with a
 * `HandoverError` naming its entry: none is skipped. Hand-overs to keys
 * other than the one reached so far (later ones, from the pinned key on)
 * are checked but not followed. A verifier started from the key returned
 * follows the same hand-overs forward, each against the key then in force,
 * and must reach `pinned` (`VerifyOptions.mustReach`).
 */
export async function firstKey(pinned: Uint8Array, entries: readonly HandoverEntry[]): Promise<FirstKey> {
  const sorted = entries
    .map((entry) => ({ seq: BigInt(entry.seq), evidence: entry.evidence ?? null }))
    .sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  let key = pinned.slice();
  const steps: FirstKey["steps"] = [];
  for (let i = sorted.length - 1; i >= 0; i--) {
    const entry = sorted[i];
    if (entry === undefined) continue;
    const handover = entry.evidence === null ? null : parseHandover(entry.evidence);
    if (handover === null) {
      throw new HandoverError(entry.seq, `the key hand-over at entry ${entry.seq} is not a readable hand-over`);
    }
    if (entry.seq < 1n || handover.size !== entry.seq - 1n) {
      throw new HandoverError(entry.seq, `the key hand-over at entry ${entry.seq} names another tree than the log's before it`);
    }
    try {
      await verifyHandover(handover, handover.oldKey);
    } catch (error) {
      throw new HandoverError(entry.seq, `the key hand-over at entry ${entry.seq} does not verify: ${(error as Error).message}`);
    }
    if (equalBytes(handover.newKey, key)) {
      key = handover.oldKey.slice();
      steps.unshift({ seq: entry.seq, oldKey: handover.oldKey, newKey: handover.newKey });
    }
  }
  return { key, steps };
}
