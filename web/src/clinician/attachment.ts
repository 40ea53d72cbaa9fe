// Files sent in a thread: encrypted here, in the sender's browser, before
// they leave, and decrypted in each reader's, so the server stores and
// serves only ciphertext. The file's key, SHA-256, name and type travel
// inside the MLS message that carries it (engine.ts), never beside it.
//
// The encryption is the CLI's, byte for byte: AES-256-GCM in the STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár), RustCrypto's
// `aead::stream` "BE32" variant. The plaintext is cut into 65,536-byte
// chunks; chunk i is sealed under the nonce 7 zero bytes || i (4 bytes,
// big-endian) || a flag byte, 1 on the final chunk and 0 before it, with
// no associated data; the ciphertext is the sealed chunks one after the
// other. Because every chunk's nonce names its place and whether it ends
// the file, chunks cannot be reordered, dropped or cut off at the end
// without a tag failing. An empty file is one empty final chunk.
//
// WebCrypto only, one chunk at a time into one buffer: a file is held in
// memory whole (the limit is 100 MiB), never written anywhere.

/** Plaintext bytes per chunk. */
export const CHUNK_BYTES = 65_536;
/** AES-GCM's tag, after each chunk. */
export const TAG_BYTES = 16;
/** The largest file sent (the server's default limit, of plaintext). */
export const MAX_FILE_BYTES = 100 * 1024 * 1024;
export const KEY_BYTES = 32;

/** A file that cannot be read back: damaged, cut short, reordered, or not what the sender attached. */
export class AttachmentError extends Error {
  override readonly name = 'AttachmentError';
}

/** Chunk `index`'s nonce: 7 zero bytes, the index (big-endian), the last-chunk flag. */
export function nonce(index: number, last: boolean): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(index) || index < 0 || index > 0xffff_ffff) {
    throw new AttachmentError('the file has too many chunks');
  }
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setUint32(7, index, false);
  bytes[11] = last ? 1 : 0;
  return bytes;
}

/** The ciphertext's size for a file of `size` bytes. */
export function sealedSize(size: number): number {
  return size + TAG_BYTES * Math.max(1, Math.ceil(size / CHUNK_BYTES));
}

/** A fresh random key for one file. */
export function newKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

function importKey(key: Uint8Array): Promise<CryptoKey> {
  if (key.length !== KEY_BYTES) {
    throw new AttachmentError('a file key is 32 bytes');
  }
  return crypto.subtle.importKey('raw', Uint8Array.from(key), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** Encrypts a whole file under `key` (32 bytes). */
export async function encrypt(key: Uint8Array, plaintext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const aes = await importKey(key);
  const chunks = Math.max(1, Math.ceil(plaintext.length / CHUNK_BYTES));
  const out = new Uint8Array(sealedSize(plaintext.length));
  for (let i = 0; i < chunks; i += 1) {
    const start = i * CHUNK_BYTES;
    const chunk = plaintext.subarray(start, Math.min(start + CHUNK_BYTES, plaintext.length));
    const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce(i, i === chunks - 1) }, aes, chunk);
    out.set(new Uint8Array(sealed), i * (CHUNK_BYTES + TAG_BYTES));
  }
  return out;
}

/**
 * Decrypts a whole file; throws an AttachmentError if any chunk fails
 * (altered, moved, or the end missing, as the final chunk must carry
 * the flag).
 */
export async function decrypt(key: Uint8Array, ciphertext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const aes = await importKey(key);
  const sealedChunk = CHUNK_BYTES + TAG_BYTES;
  if (ciphertext.length < TAG_BYTES) {
    throw new AttachmentError('the file is cut short');
  }
  const chunks = Math.ceil(ciphertext.length / sealedChunk);
  const last = ciphertext.length - (chunks - 1) * sealedChunk;
  if (last < TAG_BYTES) {
    // What follows the last full chunk is too short to be one.
    throw new AttachmentError('the file is cut short');
  }
  const out = new Uint8Array(ciphertext.length - chunks * TAG_BYTES);
  for (let i = 0; i < chunks; i += 1) {
    const start = i * sealedChunk;
    const chunk = ciphertext.subarray(start, Math.min(start + sealedChunk, ciphertext.length));
    let opened: ArrayBuffer;
    try {
      opened = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce(i, i === chunks - 1) }, aes, chunk);
    } catch {
      throw new AttachmentError('the file could not be decrypted: it was damaged or altered');
    }
    out.set(new Uint8Array(opened), i * CHUNK_BYTES);
  }
  return out;
}

/** SHA-256, as 64 lower-case hex digits. */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** A file sealed for sending: its key, its plaintext's digest, the ciphertext. */
export interface Sealed {
  key: Uint8Array<ArrayBuffer>;
  sha256: string;
  ciphertext: Uint8Array<ArrayBuffer>;
}

/** Seals a file under a fresh key. */
export async function seal(plaintext: Uint8Array<ArrayBuffer>): Promise<Sealed> {
  if (plaintext.length > MAX_FILE_BYTES) {
    throw new AttachmentError('the file is larger than 100 MiB');
  }
  const key = newKey();
  return { key, sha256: await sha256(plaintext), ciphertext: await encrypt(key, plaintext) };
}

/**
 * Opens a file: decrypted, and its SHA-256 the one the message named,
 * else an AttachmentError (the file is refused, not shown or saved).
 */
export async function open(key: Uint8Array, expectedSha256: string, ciphertext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const plaintext = await decrypt(key, ciphertext);
  if ((await sha256(plaintext)) !== expectedSha256) {
    throw new AttachmentError('the file is not the one its sender attached (its SHA-256 differs), so it is not shown or saved');
  }
  return plaintext;
}
