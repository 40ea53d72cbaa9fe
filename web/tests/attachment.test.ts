// The browser's file encryption (src/clinician/attachment.ts), in Node
// with the same WebCrypto: files of every size around the chunk boundary
// come back whole; a stream cut at a chunk, with two chunks swapped, or
// with one bit flipped is refused; and a fixed vector gives the ciphertext
// an independent implementation (node:crypto's AES-256-GCM, chunk by
// chunk, nonces built here) gives, the same digest the CLI's test checks
// with RustCrypto's `aead::stream` (EncryptorBE32<Aes256Gcm>). Run by
// `npm run test:mls` (.ci/run).

import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { test } from 'node:test';

import { AttachmentError, CHUNK_BYTES, TAG_BYTES, decrypt, encrypt, open, seal, sealedSize, sha256 } from '../src/clinician/attachment';

/**
 * The SHA-256 of the known-answer ciphertext: key 0x01..0x20, plaintext
 * the 70,000 bytes i % 251. Computed with node:crypto (below) and, apart,
 * with Python's `cryptography` AESGCM; the Rust side holds the same value.
 */
const KNOWN_CIPHERTEXT_SHA256 = '9ba8d8f7c46766928090728bb80b596414721ac8b36d26dab24ddc03e3b3e1ce';
const KNOWN_PLAINTEXT_SHA256 = '9dc177c2fde29dea8e7c29f7ddf147b7c449c99d049c62f3aac0a5933ecf76a3';

function knownKey(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: 32 }, (_, i) => i + 1);
}

function knownPlaintext(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: 70_000 }, (_, i) => i % 251);
}

/** STREAM (BE32) with node:crypto, written from the specification, not from attachment.ts. */
function outsideEncrypt(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const chunk = 65_536;
  const count = Math.max(1, Math.ceil(plaintext.length / chunk));
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i += 1) {
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(i, 7);
    iv[11] = i === count - 1 ? 1 : 0;
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    parts.push(cipher.update(plaintext.subarray(i * chunk, (i + 1) * chunk)), cipher.final(), cipher.getAuthTag());
  }
  return Buffer.concat(parts);
}

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65_536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65_536, size)));
  }
  return bytes;
}

async function refused(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AttachmentError, String(error));
    return true;
  });
}

test('files of every size around the chunk boundary come back whole', async () => {
  for (const size of [0, 1, 65_535, 65_536, 65_537, 200_000]) {
    const plaintext = randomBytes(size);
    const sealed = await seal(plaintext);
    assert.equal(sealed.ciphertext.length, sealedSize(size), `size ${size}`);
    assert.equal(sealed.ciphertext.length, size + TAG_BYTES * Math.max(1, Math.ceil(size / CHUNK_BYTES)));
    assert.equal(sealed.sha256, createHash('sha256').update(plaintext).digest('hex'));
    const opened = await open(sealed.key, sealed.sha256, sealed.ciphertext);
    assert.deepEqual(opened, plaintext, `size ${size}`);
    // The same bytes as the outside implementation's.
    assert.deepEqual(Buffer.from(sealed.ciphertext), outsideEncrypt(sealed.key, plaintext), `size ${size}`);
  }
});

test('the known-answer vector gives the outside implementation’s ciphertext', async () => {
  const key = knownKey();
  const plaintext = knownPlaintext();
  const outside = outsideEncrypt(key, plaintext);
  assert.equal(createHash('sha256').update(outside).digest('hex'), KNOWN_CIPHERTEXT_SHA256);
  const ciphertext = await encrypt(key, plaintext);
  assert.equal(ciphertext.length, 70_000 + 2 * TAG_BYTES);
  assert.equal(await sha256(ciphertext), KNOWN_CIPHERTEXT_SHA256);
  assert.equal(await sha256(plaintext), KNOWN_PLAINTEXT_SHA256);
  assert.deepEqual(await open(key, KNOWN_PLAINTEXT_SHA256, ciphertext), plaintext);
});

test('a stream cut at a chunk boundary is refused', async () => {
  const sealed = await seal(randomBytes(200_000));
  // Four chunks; without the last, the third is read as final and its flag does not match.
  await refused(decrypt(sealed.key, sealed.ciphertext.slice(0, 3 * (CHUNK_BYTES + TAG_BYTES))));
  await refused(decrypt(sealed.key, sealed.ciphertext.slice(0, CHUNK_BYTES + TAG_BYTES)));
  // Cut inside a chunk, or to nothing.
  await refused(decrypt(sealed.key, sealed.ciphertext.slice(0, sealed.ciphertext.length - 1)));
  await refused(decrypt(sealed.key, sealed.ciphertext.slice(0, 10)));
  await refused(decrypt(sealed.key, new Uint8Array(0)));
  // A file of exactly two chunks cut to its first.
  const two = await seal(randomBytes(2 * CHUNK_BYTES));
  await refused(decrypt(two.key, two.ciphertext.slice(0, CHUNK_BYTES + TAG_BYTES)));
});

test('two chunks swapped are refused', async () => {
  const sealed = await seal(randomBytes(3 * CHUNK_BYTES));
  const size = CHUNK_BYTES + TAG_BYTES;
  const swapped = sealed.ciphertext.slice();
  swapped.set(sealed.ciphertext.subarray(size, 2 * size), 0);
  swapped.set(sealed.ciphertext.subarray(0, size), size);
  await refused(decrypt(sealed.key, swapped));
  // The final chunk moved before a full one: wrong index and flag.
  const last = await seal(randomBytes(2 * CHUNK_BYTES));
  const reversed = new Uint8Array(last.ciphertext.length);
  reversed.set(last.ciphertext.subarray(size), 0);
  reversed.set(last.ciphertext.subarray(0, size), size);
  await refused(decrypt(last.key, reversed));
});

test('a flipped bit, a wrong key or a wrong digest is refused', async () => {
  const plaintext = randomBytes(100_000);
  const sealed = await seal(plaintext);
  for (const at of [0, CHUNK_BYTES - 1, CHUNK_BYTES + 3, sealed.ciphertext.length - 1]) {
    const flipped = sealed.ciphertext.slice();
    flipped[at] ^= 0x01;
    await refused(decrypt(sealed.key, flipped));
  }
  const otherKey = sealed.key.slice();
  otherKey[0] ^= 0x80;
  await refused(decrypt(otherKey, sealed.ciphertext));
  // Decrypts, but is not the file the message named.
  await refused(open(sealed.key, '0'.repeat(64), sealed.ciphertext));
});
