// An audit entry and its canonical encoding (docs/audit-format.md,
// "Entry"; proto/src/audit/entry.rs), the chain checkpoint's signed bytes
// ("Checkpoints"; proto/src/audit/checkpoint.rs), and the hashes over them.

import { concat, i64be, u64be, utf8 } from "./bytes";
import { sha256 } from "./crypto";

export type Outcome = "allowed" | "denied";

/** One entry, as the export carries it. `seq` is a u64, `time_ms` an i64. */
export interface AuditEntry {
  seq: bigint;
  time_ms: bigint;
  actor_user: string | null;
  actor_device: string | null;
  client_addr: string | null;
  request_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  outcome: Outcome;
  reason: string;
  /** A signed statement kept with the entry (receipt, key hand-over), if any. */
  evidence: string | null;
}

/** The longest text a field may hold, in bytes. */
export const MAX_FIELD_BYTES = 1024;
export const ENTRY_TAG = utf8("curbside-audit-entry-v1\0");
export const ENTRY_TAG_WITH_EVIDENCE = utf8("curbside-audit-entry-v2\0");
export const CHECKPOINT_TAG = utf8("curbside-audit-checkpoint-v1\0");
/** The first entry's `prev_hash` and the first checkpoint's `prev_checkpoint_hash`. */
export const GENESIS_HASH = new Uint8Array(32);

/** The reason an entry cannot be encoded (the CLI's wording). */
export const FIELD_TOO_LONG = `a text field of the entry is longer than ${MAX_FIELD_BYTES} bytes`;

const encoder = new TextEncoder();

/** The length of a string's UTF-8 encoding (a lone surrogate as U+FFFD, as TextEncoder writes it). */
function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      length += 1;
    } else if (c <= 0xdbff && c >= 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: two UTF-16 units, four bytes.
      length += 2;
      i++;
    } else {
      length += 2;
    }
  }
  return length;
}

// Which texts, in canonical order, are optional (a presence byte before them).
const OPTIONAL = [true, true, true, false, false, false, true, false, false];

/**
 * The canonical bytes: tag, u64 seq, i64 time_ms, opt actor_user, opt
 * actor_device, opt client_addr, text request_id, text action, text
 * resource_type, opt resource_id, outcome byte, text reason, and (tag v2
 * only) text evidence. Null when a text is over 1024 bytes.
 */
export function canonicalBytes(entry: AuditEntry): Uint8Array | null {
  const texts = [
    entry.actor_user, entry.actor_device, entry.client_addr, entry.request_id, entry.action,
    entry.resource_type, entry.resource_id, entry.reason, entry.evidence,
  ];
  const hasEvidence = entry.evidence !== null;
  const count = hasEvidence ? 9 : 8;
  const lengths: number[] = [];
  let length = ENTRY_TAG.length + 16 + 1; // tag, seq, time_ms, outcome
  for (let k = 0; k < count; k++) {
    const text = texts[k];
    if (OPTIONAL[k]) length += 1;
    const bytes = text === null || text === undefined ? -1 : utf8Length(text);
    if (bytes > MAX_FIELD_BYTES) return null;
    if (bytes >= 0) length += 4 + bytes;
    lengths.push(bytes);
  }
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  out.set(hasEvidence ? ENTRY_TAG_WITH_EVIDENCE : ENTRY_TAG, 0);
  let at = ENTRY_TAG.length;
  view.setBigUint64(at, entry.seq);
  view.setBigInt64(at + 8, entry.time_ms);
  at += 16;
  const put = (k: number): void => {
    const text = texts[k];
    const bytes = lengths[k] ?? -1;
    if (OPTIONAL[k]) out[at++] = bytes < 0 ? 0 : 1;
    if (bytes < 0 || text === null || text === undefined) return;
    view.setUint32(at, bytes);
    at += 4;
    if (bytes === text.length) {
      for (let i = 0; i < bytes; i++) out[at + i] = text.charCodeAt(i);
    } else {
      encoder.encodeInto(text, out.subarray(at, at + bytes));
    }
    at += bytes;
  };
  for (let k = 0; k < 7; k++) put(k);
  out[at++] = entry.outcome === "allowed" ? 1 : 2;
  put(7);
  if (hasEvidence) put(8);
  return out;
}

/** `SHA-256(prev_hash || canonical_bytes)`. */
export function chainHash(prevHash: Uint8Array, bytes: Uint8Array): Promise<Uint8Array> {
  const input = new Uint8Array(prevHash.length + bytes.length);
  input.set(prevHash, 0);
  input.set(bytes, prevHash.length);
  return sha256(input);
}

/** The entry's Merkle leaf hash: `SHA-256(0x00 || canonical_bytes)`. */
export function leafHash(bytes: Uint8Array): Promise<Uint8Array> {
  const input = new Uint8Array(1 + bytes.length);
  input.set(bytes, 1);
  return sha256(input);
}

/** A chain checkpoint as the export carries it. */
export interface Checkpoint {
  seq: bigint;
  head_hash: Uint8Array;
  time_ms: bigint;
  prev_checkpoint_hash: Uint8Array;
  signature: Uint8Array;
}

/**
 * What the audit key signs: tag, u64 seq, head_hash, i64 time_ms,
 * prev_checkpoint_hash. Null when a hash is not 32 bytes (such a
 * checkpoint never verifies).
 */
export function checkpointSignedBytes(checkpoint: Checkpoint): Uint8Array | null {
  if (checkpoint.head_hash.length !== 32 || checkpoint.prev_checkpoint_hash.length !== 32) {
    return null;
  }
  return concat(
    CHECKPOINT_TAG,
    u64be(checkpoint.seq),
    checkpoint.head_hash,
    i64be(checkpoint.time_ms),
    checkpoint.prev_checkpoint_hash,
  );
}
