// Verifies the audit log in the browser, as `curbside admin audit verify`
// does (client-cli/src/audit/verify.rs over proto/src/audit/verify.rs):
// the same checks, in the same order, so that a log fails at the same
// first sequence with the same reason.
//
// Input: the lines of the whole log's JSON Lines export
// (`GET /v1/audit/export?format=jsonl`). Checked, one record at a time:
//
// - the header: first line, `curbside-audit-export`, unfiltered, version
//   2 or 3 (a version-1 export has no tree checkpoint and is refused, as
//   the CLI refuses it without `--chain-only`);
// - each entry: `seq` one more than the last, its recorded `entry_hash`
//   equal to SHA-256(prev_hash || canonical bytes), and at an allowed
//   `audit.key.rotate` entry the key hand-over (tree size and root before
//   it, old key = key in force, both signatures), after which later
//   checkpoints are checked with the new key;
// - each chain checkpoint: at its entry (or held until that entry comes),
//   its Ed25519 signature by the key in force at its `seq`, its
//   `head_hash` and its `prev_checkpoint_hash`;
// - the tree checkpoint (a signed note): signed by the key in force at its
//   size, of exactly the entries read, with the root of their RFC 9162
//   Merkle tree;
// - at the end: no checkpoint naming entries that never came, no entries
//   missing before the header's `head_seq`, at least one chain checkpoint,
//   and a tree checkpoint covering every entry.
//
// Then, as the browser asks (`VerifyOptions`): the Merkle root of the first
// entries equal to a tree head it verified before (a log rewound or
// rewritten since fails), entries present, and the pinned key reached when
// verification started from the key the log's hand-overs lead back to.
//
// Memory is bounded: only the last hashes, the tree's O(log n) frontier,
// checkpoints listed ahead of their entries (at most 10,000, as the CLI),
// the hand-overs and one batch of lines are kept. Hashes are computed per
// batch in parallel with WebCrypto: each entry's chain hash is computed
// from the hash the log recorded for the entry before it, which is the
// true chain hash whenever that entry was accepted, and the first entry
// where they differ is reported before anything after it is used.

import { equalBytes, toB64std, U64_MAX } from "./bytes";
import { ed25519Verify, sha256 } from "./crypto";
import {
  canonicalBytes,
  chainHash,
  checkpointSignedBytes,
  FIELD_TOO_LONG,
  GENESIS_HASH,
  leafHash,
  type AuditEntry,
  type Checkpoint,
} from "./entry";
import { parseExportLine, type ExportLine } from "./export";
import { HANDOVER_ACTION, parseHandover, verifyHandover } from "./handover";
import { Frontier } from "./merkle";
import { NoteError, openCheckpoint, treeHeadOf, verifierString, type TreeHead } from "./note";

export interface VerifyProgress {
  entries: number;
  lastSeq: number | null;
}

/**
 * `keyId`: the audit key in force after the last entry (the pinned key, or
 * the one the last hand-over handed over to), as the server prints it and
 * as a hand-over entry's `resource_id` names it: the signed-note verifier
 * key `curbside-audit/<server_id>+<hex key id>+<base64(0x01 || key)>`. Its
 * name is the origin of the verified tree checkpoint (else the one given
 * in the options, else the header's `server_id`).
 *
 * `message` on failure is the CLI's sentence: "the audit log breaks at
 * sequence N: why" when `brokenSeq` is set, else what is wrong with the
 * export ("the server's export: line N: ...", a filtered export, ...).
 * `entries` is how many entries verified before the failure.
 */
export type VerifyResult =
  | {
      ok: true;
      entries: number;
      lastSeq: number | null;
      treeSize: number | null;
      keyId: string;
      /** The verified tree head: the root of all `entries`, and the key in force after them. */
      head: VerifiedHead;
    }
  | { ok: false; brokenSeq: number | null; message: string; entries: number };

/** A tree head this verifier saw verify: to keep, and check the next log against. */
export interface VerifiedHead {
  /** How many entries. */
  size: number;
  /** The RFC 9162 Merkle root of those entries (32 bytes). */
  root: Uint8Array;
  /** The audit key in force after them (raw Ed25519, 32 bytes). */
  publicKey: Uint8Array;
}

export interface VerifyOptions {
  /**
   * The log's origin, `curbside-audit/<server_id>` (from the audit key
   * route's `server_id`): tree checkpoints must be that log's, as when the
   * CLI is given the key as a verifier key. Without it the origin is read
   * from the tree checkpoint itself.
   */
  origin?: string;
  /** Where errors say the lines came from (default "the server's export"). */
  source?: string;
  /**
   * A tree head verified before (kept by this browser): the log must have
   * at least `size` entries, and the Merkle root of its first `size` must
   * be `root` (and the key in force after them `publicKey`, if given).
   * Otherwise the log was rewound or rewritten: it breaks at `size + 1`
   * when it is shorter and at 1 when it differs, as the CLI's verifier
   * with the checkpoint it kept (`Verifier::extending`) reports.
   */
  checkRootAt?: { size: number; root: Uint8Array; publicKey?: Uint8Array };
  /**
   * The key this browser pinned, when verification starts from an earlier
   * key the log's hand-overs lead back to (`firstKey` in handover.ts): the
   * log must begin with it or hand over to it; else it breaks at 1.
   */
  mustReach?: Uint8Array;
  /**
   * Whether the log must have entries: an enrolled browser's log holds at
   * least its own enrollment, so an empty one breaks at 1.
   */
  requireEntries?: boolean;
}

/** Standard base64 (the tree checkpoints' encoding), for messages. */
function b64(bytes: Uint8Array): string {
  return toB64std(bytes);
}

/** Lines per batch: hashes of a batch are computed together. */
const BATCH = 1024;
/** The most checkpoints held while waiting for their entries (as the CLI). */
const MAX_AHEAD = 10_000;
/** The longest line accepted (as the CLI; entries are a few hundred bytes). */
export const MAX_LINE = 64 * 1024;
/** The format version this verifier knows (proto's EXPORT_VERSION). */
const EXPORT_VERSION = 3;
const EXPORT_FORMAT = "curbside-audit-export";
const SOURCE = "the server's export";

/** The log is broken at `seq` (proto's `Broken`). */
class Broken extends Error {
  constructor(readonly seq: bigint, readonly reason: string) {
    super(`the audit log breaks at sequence ${seq}: ${reason}`);
  }
}

/** The export cannot be read as one (the CLI's `Unreadable`, or `Filtered`). */
class Unreadable extends Error {}

/** A line that could not be read from the input, with its number. */
export class LineError extends Error {
  constructor(readonly line: number, reason: string) {
    super(reason);
  }
}

const FILTERED =
  "this export is filtered, so its entries do not form the whole chain; verify an export made without filters";
const CHAIN_ONLY =
  "this export was made before the audit log's Merkle tree (format version 1), so it has no tree " +
  "checkpoint: the console verifies only exports that have one (the CLI can check this one's chain " +
  "and checkpoints alone with --chain-only)";

type ExportRecord =
  | { line: number; kind: "error"; reason: string }
  | { line: number; kind: "header"; value: Extract<ExportLine, { kind: "header" }> }
  | {
      line: number;
      kind: "entry";
      entry: AuditEntry;
      stored: Uint8Array;
      /** Canonical bytes; null when a field is too long. */
      bytes: Uint8Array | null;
      /** SHA-256(recorded hash of the entry before || bytes), and the leaf hash. */
      hashes?: Promise<[Uint8Array, Uint8Array]>;
    }
  | {
      line: number;
      kind: "checkpoint";
      checkpoint: Checkpoint;
      /** The signature checked ahead of time with the key then in force. */
      early?: { key: Uint8Array; valid: Promise<boolean> };
      /** The checkpoint's hash, SHA-256(signed_bytes || signature). */
      hash?: Promise<Uint8Array | null>;
    }
  | { line: number; kind: "tree_checkpoint"; note: string };

type CheckpointRecord = Extract<ExportRecord, { kind: "checkpoint" }>;

/**
 * The same promise, marked as handled: a batch's hashes are started
 * together, and those after a failure are never awaited.
 */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

function toRecord(line: string, number: number): ExportRecord {
  let parsed: ExportLine;
  try {
    parsed = parseExportLine(line);
  } catch (error) {
    return { line: number, kind: "error", reason: `not an export record (${(error as Error).message})` };
  }
  switch (parsed.kind) {
    case "header":
      return { line: number, kind: "header", value: parsed };
    case "entry":
      return {
        line: number,
        kind: "entry",
        entry: parsed.entry,
        stored: parsed.entryHash,
        bytes: canonicalBytes(parsed.entry),
      };
    case "checkpoint":
      return { line: number, kind: "checkpoint", checkpoint: parsed.checkpoint };
    case "tree_checkpoint":
      return { line: number, kind: "tree_checkpoint", note: parsed.note };
  }
}

class Verifier {
  private readonly handovers: { after: bigint; key: Uint8Array }[] = [];
  private prevHash: Uint8Array = GENESIS_HASH;
  private prevCheckpoint: Uint8Array = GENESIS_HASH;
  /** The last entry verified. */
  last = 0;
  private readonly ahead = new Map<bigint, CheckpointRecord>();
  private checkpoints = 0;
  private signedThrough = 0n;
  private readonly tree = new Frontier();
  /** Leaf hashes of verified entries not yet in `tree`. */
  private pending: Uint8Array[] = [];
  private treeAhead: { head: TreeHead; note: string } | null = null;
  treeSigned: bigint | null = null;
  /** The origin of the last tree checkpoint that verified. */
  treeOrigin: string | null = null;
  headSeq = 0n;
  header: Extract<ExportLine, { kind: "header" }>["header"] | null = null;

  /** The kept tree head still to be checked (see `VerifyOptions.checkRootAt`). */
  private kept: { size: bigint; root: Uint8Array; publicKey?: Uint8Array } | null = null;

  constructor(private readonly publicKey: Uint8Array, private readonly origin: string | undefined, private readonly source: string) {}

  /** Requires the log to extend a tree head verified before. */
  extending(head: { size: number; root: Uint8Array; publicKey?: Uint8Array }): void {
    if (head.size > 0) this.kept = { ...head, size: BigInt(head.size) };
  }

  private rewound(): Broken {
    const kept = this.kept;
    const size = kept ? kept.size : 0n;
    const seq = BigInt(this.last) < size ? BigInt(this.last) + 1n : 1n;
    return new Broken(
      seq,
      `the log was rewound or rewritten since this browser last verified it (it had ${size} ` +
        `entries with root ${kept ? b64(kept.root) : ""})`,
    );
  }

  /** At the kept head's size: the same root (and key), or the log was rewritten. */
  private async checkKept(): Promise<void> {
    const kept = this.kept;
    if (!kept || kept.size !== BigInt(this.last)) return;
    const same =
      equalBytes(await this.root(), kept.root) &&
      (kept.publicKey === undefined || equalBytes(this.keyAt(U64_MAX), kept.publicKey));
    if (!same) throw this.rewound();
    this.kept = null;
  }

  /** Whether `key` is the key the log began with or one it handed over to. */
  reaches(key: Uint8Array): boolean {
    return equalBytes(this.publicKey, key) || this.handovers.some((handover) => equalBytes(handover.key, key));
  }

  /** The verified tree head: all entries, and the key in force after them. */
  async head(): Promise<VerifiedHead> {
    return { size: this.last, root: await this.root(), publicKey: this.keyAt(U64_MAX).slice() };
  }

  private unreadable(line: number, reason: string): Unreadable {
    return new Unreadable(`${this.source}: line ${line}: ${reason}`);
  }

  /** The key in force at `seq`: the last hand-over's before `seq`, else the pinned one. */
  keyAt(seq: bigint): Uint8Array {
    for (let i = this.handovers.length - 1; i >= 0; i--) {
      const handover = this.handovers[i];
      if (handover && handover.after < seq) return handover.key;
    }
    return this.publicKey;
  }

  /** Adds the pending leaves to the tree. */
  private async flush(): Promise<void> {
    if (this.pending.length > 0) {
      const leaves = this.pending;
      this.pending = [];
      await this.tree.append(leaves);
    }
  }

  /** The root of the tree of the entries verified so far. */
  private async root(): Promise<Uint8Array> {
    await this.flush();
    return this.tree.root();
  }

  /** The recorded hash of the last entry prepared. */
  private preparedHash: Uint8Array = GENESIS_HASH;

  /**
   * Starts the batch's hashes and signature checks, all at once (before the
   * batch before it is checked: the chain hashes are from the hashes the
   * log recorded, the signatures checked with the key in force so far,
   * and checked again if a hand-over changes it).
   */
  prepare(batch: ExportRecord[]): void {
    let prev = this.preparedHash;
    const key = this.keyAt(BigInt(this.last) + 1n);
    for (const record of batch) {
      if (record.kind === "entry") {
        const bytes = record.bytes;
        if (bytes !== null) record.hashes = quiet(Promise.all([chainHash(prev, bytes), leafHash(bytes)]));
        prev = record.stored;
        this.preparedHash = prev;
      } else if (record.kind === "checkpoint") {
        const signed = checkpointSignedBytes(record.checkpoint);
        if (signed !== null) {
          const signature = record.checkpoint.signature;
          record.early = { key, valid: ed25519Verify(key, signed, signature) };
          const input = new Uint8Array(signed.length + signature.length);
          input.set(signed, 0);
          input.set(signature, signed.length);
          record.hash = quiet(sha256(input));
        } else {
          record.hash = Promise.resolve(null);
        }
      }
    }
  }

  async record(record: ExportRecord): Promise<void> {
    if (record.kind === "error") throw this.unreadable(record.line, record.reason);
    if (record.kind === "header") {
      if (record.line !== 1) throw this.unreadable(record.line, "a second header");
      const header = record.value.header;
      if (header.format !== EXPORT_FORMAT) throw this.unreadable(1, "not a Curbside audit export");
      if (header.filtered) throw new Unreadable(FILTERED);
      this.headSeq = header.head_seq;
      if (header.version > EXPORT_VERSION) {
        throw this.unreadable(
          1,
          `the export's format version ${header.version} is newer than this console knows (${EXPORT_VERSION}); update it`,
        );
      }
      if (header.version < 2) throw this.unreadable(1, CHAIN_ONLY);
      this.header = header;
      return;
    }
    if (record.line === 1) {
      throw this.unreadable(1, "the first line must be the export's header; is this a whole export?");
    }
    if (record.kind === "entry") return this.entry(record);
    if (record.kind === "checkpoint") return this.checkpoint(record);
    return this.treeCheckpoint(record.note);
  }

  private async entry(record: Extract<ExportRecord, { kind: "entry" }>): Promise<void> {
    const entry = record.entry;
    const expected = this.last + 1;
    if (entry.seq !== BigInt(expected)) {
      throw new Broken(BigInt(expected), `expected entry ${expected} next, found entry ${entry.seq}`);
    }
    if (record.bytes === null || record.hashes === undefined) throw new Broken(entry.seq, FIELD_TOO_LONG);
    const [hash, leaf] = await record.hashes;
    if (!equalBytes(record.stored, hash)) {
      throw new Broken(
        entry.seq,
        "the entry's contents do not match its recorded hash (the entry was altered, or an entry " +
          "before it was removed or reordered)",
      );
    }
    if (entry.action === HANDOVER_ACTION && entry.outcome === "allowed") await this.followHandover(entry);
    this.prevHash = hash;
    this.last = expected;
    this.pending.push(leaf);
    if (this.pending.length >= BATCH) await this.flush();
    if (this.ahead.size > 0) {
      const checkpoint = this.ahead.get(entry.seq);
      if (checkpoint) {
        this.ahead.delete(entry.seq);
        await this.check(checkpoint);
      }
    }
    if (this.treeAhead && this.treeAhead.head.size === entry.seq) {
      const note = this.treeAhead.note;
      this.treeAhead = null;
      await this.treeCheckpoint(note);
    }
    if (this.kept) await this.checkKept();
  }

  private async followHandover(entry: AuditEntry): Promise<void> {
    const broken = (reason: string): Broken => new Broken(entry.seq, reason);
    const handover = entry.evidence === null ? null : parseHandover(entry.evidence);
    if (!handover) throw broken("a key hand-over entry without a readable hand-over");
    if (handover.size !== entry.seq - 1n || !equalBytes(handover.root, await this.root())) {
      throw broken("the key hand-over names another tree than the log's before it");
    }
    let key: Uint8Array;
    try {
      key = await verifyHandover(handover, this.keyAt(entry.seq));
    } catch (error) {
      throw broken((error as Error).message);
    }
    this.handovers.push({ after: entry.seq, key });
  }

  private noteKeyName(note: string): string {
    return this.origin ?? note.split("\n")[0] ?? "";
  }

  private async treeCheckpoint(note: string): Promise<void> {
    const last = BigInt(this.last);
    const unreadable = (error: unknown): Error =>
      error instanceof NoteError ? new Broken(last + 1n, `the tree checkpoint after entry ${last}: ${error.message}`) : (error as Error);
    let head: TreeHead;
    try {
      head = treeHeadOf(note);
    } catch (error) {
      throw unreadable(error);
    }
    if (head.size > last && this.treeAhead === null) {
      this.treeAhead = { head, note };
      return;
    }
    if (head.size !== last) {
      throw new Broken(
        (head.size < last ? head.size : last) + 1n,
        `a tree checkpoint of ${head.size} entries is out of place after entry ${last}`,
      );
    }
    const name = this.noteKeyName(note);
    try {
      head = await openCheckpoint(note, { name, publicKey: this.keyAt(head.size) });
    } catch (error) {
      throw unreadable(error);
    }
    if (!equalBytes(await this.root(), head.root)) {
      const signed = this.signedThrough > (this.treeSigned ?? 0n) ? this.signedThrough : (this.treeSigned ?? 0n);
      const from = signed + 1n;
      throw new Broken(
        from,
        `entries ${from} to ${head.size} do not match the log's signed tree checkpoint of ${head.size} ` +
          "entries: they were altered, removed or added behind the server's back",
      );
    }
    this.treeSigned = head.size;
    this.treeOrigin = head.origin;
  }

  private async checkpoint(record: CheckpointRecord): Promise<void> {
    const seq = record.checkpoint.seq;
    const last = BigInt(this.last);
    if (seq > last) {
      if (this.ahead.size >= MAX_AHEAD || this.ahead.has(seq)) {
        throw new Broken(last + 1n, `checkpoint ${seq} is out of place: repeated, or far ahead of its entries`);
      }
      this.ahead.set(seq, record);
      return;
    }
    if (seq < last) {
      throw new Broken(seq, `checkpoint ${seq} names an entry the log does not have in that place`);
    }
    return this.check(record);
  }

  private async check(record: CheckpointRecord): Promise<void> {
    const checkpoint = record.checkpoint;
    const broken = (reason: string): Broken => new Broken(checkpoint.seq, reason);
    if (checkpoint.seq !== BigInt(this.last)) {
      throw broken(`checkpoint ${checkpoint.seq} names an entry the log does not have`);
    }
    const key = this.keyAt(checkpoint.seq);
    let valid: boolean;
    if (record.early && record.early.key === key) {
      valid = await record.early.valid;
    } else {
      const signed = checkpointSignedBytes(checkpoint);
      valid = signed !== null && (await ed25519Verify(key, signed, checkpoint.signature));
    }
    if (!valid) throw broken("the checkpoint's signature does not verify with the audit key");
    if (!equalBytes(checkpoint.head_hash, this.prevHash)) {
      throw broken("the signed checkpoint names a different hash for this entry");
    }
    if (!equalBytes(checkpoint.prev_checkpoint_hash, this.prevCheckpoint)) {
      throw broken("the checkpoint does not follow the previous checkpoint");
    }
    const hash = record.hash ? await record.hash : null;
    if (hash === null) throw broken("malformed checkpoint");
    this.prevCheckpoint = hash;
    this.checkpoints += 1;
    this.signedThrough = checkpoint.seq;
  }

  /**
   * The end of the export (the CLI's `JsonLines::finish`, then
   * `Verifier::finish`), then this browser's own checks: the kept tree
   * head reached, entries present, the pinned key reached.
   */
  async finish(lines: number, options: VerifyOptions = {}): Promise<void> {
    if (lines === 0) throw this.unreadable(0, "the export is empty");
    const last = BigInt(this.last);
    if (last < this.headSeq) {
      throw new Broken(
        last + 1n,
        `the log's head records entries up to ${this.headSeq}, but the log ends at ${last}: entries were removed from its end`,
      );
    }
    if (last > 0n && this.checkpoints === 0) {
      throw new Broken(
        1n,
        "no signed checkpoint covers the log (the server signs one for its first entry at once): its checkpoints were removed",
      );
    }
    let through: bigint | null = null;
    for (const seq of this.ahead.keys()) if (through === null || seq < through) through = seq;
    if (through === null && this.treeAhead) through = this.treeAhead.head.size;
    if (through !== null) {
      throw new Broken(
        last + 1n,
        `a signed checkpoint covers entries up to ${through}, but the log ends at ${last}: entries were removed from its end`,
      );
    }
    if (last > 0n) {
      if (this.treeSigned === null) {
        throw new Broken(
          1n,
          "the log has no signed tree checkpoint: it was removed, or the export was made before the audit log's tree",
        );
      }
      if (this.treeSigned < last) {
        throw new Broken(
          this.treeSigned + 1n,
          `entries ${this.treeSigned + 1n} to ${last} come after the log's signed tree checkpoint: they were added behind the server's back`,
        );
      }
    }
    // Shorter than the tree head this browser kept: rewound.
    if (this.kept) throw this.rewound();
    if (options.requireEntries && last === 0n) {
      throw new Broken(
        1n,
        "the log has no entries, but this browser's own enrollment and sign-ins are recorded in it: its entries were removed",
      );
    }
    if (options.mustReach && !this.reaches(options.mustReach)) {
      throw new Broken(
        1n,
        "the log never hands its audit key over to the key pinned in this browser, so none of its checkpoints " +
          "is signed by that key (its hand-overs are not the ones the server listed)",
      );
    }
  }

  /** The key in force after the last entry, as a verifier key string. */
  async keyId(): Promise<string> {
    const name =
      this.treeOrigin ?? this.origin ?? `curbside-audit/${this.header ? this.header.server_id : ""}`;
    return verifierString({ name, publicKey: this.keyAt(U64_MAX) });
  }
}

function safeNumber(value: bigint): number {
  return Number(value);
}

/**
 * Verifies a whole-log JSON Lines export against the audit key pinned
 * when the server was installed (the raw 32-byte Ed25519 key), following
 * the log's key hand-overs. Never rejects: every failure is a result.
 */
export async function verifyExport(
  lines: AsyncIterable<string>,
  pinnedPublicKey: Uint8Array,
  onProgress?: (p: VerifyProgress) => void,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const source = options.source ?? SOURCE;
  if (!(pinnedPublicKey instanceof Uint8Array) || pinnedPublicKey.length !== 32) {
    return { ok: false, brokenSeq: null, message: "the pinned audit key is not a 32-byte Ed25519 public key", entries: 0 };
  }
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    return {
      ok: false,
      brokenSeq: null,
      message: "this browser offers no WebCrypto here (the console must be served over HTTPS)",
      entries: 0,
    };
  }
  const verifier = new Verifier(pinnedPublicKey.slice(), options.origin, source);
  if (options.checkRootAt) {
    const kept = options.checkRootAt;
    if (
      !Number.isSafeInteger(kept.size) ||
      kept.size < 0 ||
      !(kept.root instanceof Uint8Array) ||
      kept.root.length !== 32 ||
      (kept.publicKey !== undefined && !(kept.publicKey instanceof Uint8Array))
    ) {
      return { ok: false, brokenSeq: null, message: "the tree head kept in this browser is damaged", entries: 0 };
    }
    verifier.extending(kept);
  }
  const iterator = lines[Symbol.asyncIterator]();
  let lineNumber = 0;
  let reported = -1;
  let exhausted = false;
  const progress = (): void => {
    if (!onProgress || verifier.last === reported) return;
    reported = verifier.last;
    try {
      onProgress({ entries: verifier.last, lastSeq: verifier.last === 0 ? null : verifier.last });
    } catch {
      // A failing progress callback must not change the verdict.
    }
  };
  /** The next lines, read and parsed; empty at the end. */
  const read = async (): Promise<ExportRecord[]> => {
    const batch: ExportRecord[] = [];
    while (!exhausted && batch.length < BATCH) {
      let next: IteratorResult<string>;
      try {
        next = await iterator.next();
      } catch (error) {
        const line = error instanceof LineError ? error.line : lineNumber + 1;
        const reason = error instanceof LineError ? error.message : `the export could not be read (${String(error)})`;
        batch.push({ line, kind: "error", reason });
        exhausted = true;
        break;
      }
      if (next.done) {
        exhausted = true;
        break;
      }
      lineNumber += 1;
      const record = toRecord(next.value, lineNumber);
      batch.push(record);
      if (record.kind === "error") exhausted = true;
    }
    return batch;
  };
  try {
    // One batch ahead: the next lines are read and parsed while WebCrypto
    // hashes the current ones.
    let batch = await read();
    verifier.prepare(batch);
    while (batch.length > 0) {
      const next = await read();
      verifier.prepare(next);
      for (const record of batch) await verifier.record(record);
      if (reported < 0 || verifier.last - reported >= 500) progress();
      batch = next;
    }
    await verifier.finish(lineNumber, options);
    progress();
    const treeSize = verifier.treeSigned === null ? null : safeNumber(verifier.treeSigned);
    return {
      ok: true,
      entries: verifier.last,
      lastSeq: verifier.last === 0 ? null : verifier.last,
      treeSize,
      keyId: await verifier.keyId(),
      head: await verifier.head(),
    };
  } catch (error) {
    progress();
    if (!exhausted) {
      // Stop reading (and downloading) the rest.
      try {
        await iterator.return?.();
      } catch {
        // Nothing more to do with it.
      }
    }
    if (error instanceof Broken) {
      return { ok: false, brokenSeq: safeNumber(error.seq), message: error.message, entries: verifier.last };
    }
    const message = error instanceof Unreadable ? error.message : `the export could not be verified (${String(error)})`;
    return { ok: false, brokenSeq: null, message, entries: verifier.last };
  }
}

/**
 * The lines of a response body, split at LF (a CR before it is left for
 * the JSON reader, which takes it as white space), each decoded as strict
 * UTF-8; a last line without LF is kept unless empty. Throws a
 * `LineError` for a line that is not UTF-8 or longer than 64 KiB.
 */
export async function* linesOf(body: ReadableStream<Uint8Array>): AsyncIterable<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  let number = 0;
  let finished = false;
  const take = (tail: Uint8Array): string => {
    number += 1;
    let bytes = tail;
    if (pending.length > 0) {
      bytes = new Uint8Array(pendingLength + tail.length);
      let at = 0;
      for (const part of pending) {
        bytes.set(part, at);
        at += part.length;
      }
      bytes.set(tail, at);
      pending = [];
      pendingLength = 0;
    }
    try {
      return decoder.decode(bytes);
    } catch {
      throw new LineError(number, "not an export record (the line is not UTF-8)");
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let start = 0;
      for (;;) {
        const end = value.indexOf(0x0a, start);
        if (end < 0) break;
        yield take(value.subarray(start, end));
        start = end + 1;
      }
      if (start < value.length) {
        pending.push(value.slice(start));
        pendingLength += value.length - start;
        if (pendingLength > MAX_LINE) {
          throw new LineError(number + 1, "the line is too long to be an audit record");
        }
      }
    }
    finished = true;
    if (pendingLength > 0) yield take(new Uint8Array(0));
  } finally {
    if (!finished) {
      // Stopped early (a broken log, or the caller gave up): free the stream.
      reader.cancel().catch(() => undefined);
    }
    reader.releaseLock();
  }
}
