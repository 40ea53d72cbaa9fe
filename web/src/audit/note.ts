// Tree checkpoints as C2SP signed notes (c2sp.org/signed-note,
// c2sp.org/tlog-checkpoint), read as strictly as proto/src/note.rs reads
// them, with the same error wording.

import { concat, fromB64std, toB64std, toHex, U64_MAX, utf8 } from "./bytes";
import { ed25519Verify, sha256 } from "./crypto";

/** The signature type byte of an Ed25519 signed-note key. */
const ED25519_TYPE = 0x01;
const SIGNATURE_PREFIX = "\u2014 ";
const MAX_SIGNATURES = 64;

/** Why a note was not accepted (proto's `NoteError`, same messages). */
export class NoteError extends Error {}
const malformed = (): NoteError => new NoteError("the checkpoint is not a well-formed signed note");

/** What a checkpoint's text says. */
export interface TreeHead {
  origin: string;
  size: bigint;
  root: Uint8Array;
}

/** An Ed25519 note key: its name (the log's origin) and public key. */
export interface NoteKey {
  name: string;
  publicKey: Uint8Array;
}

/** The key id: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`. */
export async function keyId(key: NoteKey): Promise<Uint8Array> {
  const digest = await sha256(concat(utf8(key.name), new Uint8Array([0x0a, ED25519_TYPE]), key.publicKey));
  return digest.slice(0, 4);
}

/** The verifier key as the server prints it: `name+hex(key id)+base64(0x01 || public key)`. */
export async function verifierString(key: NoteKey): Promise<string> {
  const id = await keyId(key);
  return `${key.name}+${toHex(id)}+${toB64std(concat(new Uint8Array([ED25519_TYPE]), key.publicKey))}`;
}

// Rust's `char::is_control`: the Unicode category Cc.
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

interface SignatureLine {
  name: string;
  id: Uint8Array;
  signature: Uint8Array;
}

/** Splits a note into its text (ending in a newline) and its signature lines. */
export function splitNote(note: string): { text: string; signatures: SignatureLine[] } {
  if (CONTROL_BUT_NEWLINE.test(note)) throw malformed();
  const at = note.lastIndexOf("\n\n");
  if (at < 0) throw malformed();
  const text = note.slice(0, at + 1);
  const rest = note.slice(at + 2);
  if (!rest.endsWith("\n")) throw malformed();
  const signatures: SignatureLine[] = [];
  for (const line of rest.slice(0, -1).split("\n")) {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw malformed();
    const body = line.slice(SIGNATURE_PREFIX.length);
    const space = body.indexOf(" ");
    if (space < 0) throw malformed();
    const name = body.slice(0, space);
    const encoded = body.slice(space + 1);
    if (name === "" || name.includes("+") || encoded.includes(" ")) throw malformed();
    const bytes = fromB64std(encoded);
    if (bytes === null || bytes.length < 5) throw malformed();
    signatures.push({ name, id: bytes.slice(0, 4), signature: bytes.slice(4) });
  }
  if (signatures.length === 0 || signatures.length > MAX_SIGNATURES) throw malformed();
  return { text, signatures };
}

/** Reads a checkpoint's text: origin, size (no leading zero), root (32 bytes, base64). */
export function parseTreeHead(text: string): TreeHead {
  if (!text.endsWith("\n")) throw malformed();
  const lines = text.slice(0, -1).split("\n");
  const [origin, size, root] = lines;
  if (origin === undefined || size === undefined || root === undefined) throw malformed();
  // Extension lines are allowed but must be non-empty.
  if (origin === "" || lines.slice(3).some((line) => line === "")) throw malformed();
  if (!/^(0|[1-9][0-9]*)$/.test(size)) throw malformed();
  const value = BigInt(size);
  if (value > U64_MAX) throw malformed();
  const hash = fromB64std(root);
  if (hash === null || hash.length !== 32) throw malformed();
  return { origin, size: value, root: hash };
}

/** What a signed checkpoint says, without checking any signature. */
export function treeHeadOf(note: string): TreeHead {
  return parseTreeHead(splitNote(note).text);
}

/**
 * Opens a checkpoint signed by `key`: there must be a signature line with
 * its name and key id, every such line must verify, and the origin must
 * be the key's name. Other signers' lines (witnesses', or the other key's
 * at a hand-over) are ignored.
 */
export async function openCheckpoint(note: string, key: NoteKey): Promise<TreeHead> {
  const { text, signatures } = splitNote(note);
  const id = await keyId(key);
  const message = utf8(text);
  let signed = false;
  for (const line of signatures) {
    if (line.name !== key.name || toHex(line.id) !== toHex(id)) continue;
    if (!(await ed25519Verify(key.publicKey, message, line.signature))) {
      throw new NoteError(`the checkpoint's signature by ${key.name} does not verify`);
    }
    signed = true;
  }
  if (!signed) throw new NoteError(`the checkpoint is not signed by the audit key ${key.name}`);
  const head = parseTreeHead(text);
  if (head.origin !== key.name) {
    throw new NoteError(
      `the checkpoint is for the log ${JSON.stringify(head.origin)}, not ${JSON.stringify(key.name)}`,
    );
  }
  return head;
}
