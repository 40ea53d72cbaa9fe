// The two primitives the verifier needs, from WebCrypto only: SHA-256 and
// Ed25519 signature verification (RFC 8032, pure). Available in current
// browsers (Chromium 137+, Firefox 129+, Safari 17+) and in Node 20's
// `globalThis.crypto`.

import { toHex } from "./bytes";

// TypeScript 5.7+ types BufferSource as views over an ArrayBuffer only;
// every view passed here is one, whatever the declared type says.
const source = (bytes: Uint8Array): BufferSource => bytes as unknown as BufferSource;

function subtle(): SubtleCrypto {
  const crypto = globalThis.crypto;
  if (!crypto || !crypto.subtle) {
    throw new Error("WebCrypto is not available (the console must be served over HTTPS)");
  }
  return crypto.subtle;
}

/** SHA-256 of `data`. */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest("SHA-256", source(data)));
}

// Imported keys, by their hex: a log is signed by one key, or a few when
// it was rotated, so this stays tiny.
const keys = new Map<string, Promise<CryptoKey | null>>();

function importKey(publicKey: Uint8Array): Promise<CryptoKey | null> {
  const id = toHex(publicKey);
  let key = keys.get(id);
  if (!key) {
    key = subtle()
      .importKey("raw", source(publicKey), { name: "Ed25519" }, false, ["verify"])
      .catch(() => null);
    if (keys.size > 64) keys.clear();
    keys.set(id, key);
  }
  return key;
}

/**
 * Whether `signature` is `publicKey`'s Ed25519 signature of `message`.
 * Never rejects: a key or signature of the wrong shape is just `false`.
 */
export async function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await importKey(publicKey);
    if (!key) return false;
    return await subtle().verify({ name: "Ed25519" }, key, source(signature), source(message));
  } catch {
    return false;
  }
}
