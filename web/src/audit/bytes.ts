// Byte helpers for the audit verifier: strict base64 (as the Rust `base64`
// crate decodes it), hex, UTF-8, big-endian integers and comparison.
// Encodings only: every cryptographic primitive comes from WebCrypto.

const encoder = new TextEncoder();

/** The UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += (byte < 16 ? "0" : "") + byte.toString(16);
  return out;
}

/** Hex (either case) to bytes; null if it is not hex. */
export function fromHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Whether two byte strings are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The concatenation of byte strings. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export const U64_MAX = (1n << 64n) - 1n;
export const I64_MIN = -(1n << 63n);
export const I64_MAX = (1n << 63n) - 1n;

/** `value` as 8 bytes big-endian, unsigned (0 to 2^64 - 1). */
export function u64be(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value);
  return out;
}

/** `value` as 8 bytes big-endian, two's complement (-2^63 to 2^63 - 1). */
export function i64be(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, value);
  return out;
}

const STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function table(alphabet: string): Int16Array {
  const out = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) out[alphabet.charCodeAt(i)] = i;
  return out;
}
const STD_TABLE = table(STD);
const URL_TABLE = table(URL);

function decodeWith(text: string, lookup: Int16Array): Uint8Array | null {
  const rem = text.length % 4;
  if (rem === 1) return null;
  const out = new Uint8Array(Math.floor(text.length / 4) * 3 + (rem === 0 ? 0 : rem - 1));
  let o = 0;
  let i = 0;
  const sextet = (at: number): number => {
    const c = text.charCodeAt(at);
    return c < 128 ? (lookup[c] ?? -1) : -1;
  };
  for (; i + 4 <= text.length; i += 4) {
    const a = sextet(i), b = sextet(i + 1), c = sextet(i + 2), d = sextet(i + 3);
    if ((a | b | c | d) < 0) return null;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (rem === 2) {
    const a = sextet(i), b = sextet(i + 1);
    // The bits after the last whole byte must be zero (canonical form).
    if ((a | b) < 0 || (b & 0x0f) !== 0) return null;
    out[o++] = (a << 2) | (b >> 4);
  } else if (rem === 3) {
    const a = sextet(i), b = sextet(i + 1), c = sextet(i + 2);
    if ((a | b | c) < 0 || (c & 0x03) !== 0) return null;
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 0x0f) << 4) | (c >> 2);
  }
  return out;
}

/**
 * Unpadded base64url, decoded strictly: padding, the other alphabet and
 * non-zero trailing bits are refused (the API's binary values).
 */
export function fromB64url(text: string): Uint8Array | null {
  return decodeWith(text, URL_TABLE);
}

/**
 * Standard base64 with canonical padding, decoded strictly (signed notes,
 * hand-over keys and roots).
 */
export function fromB64std(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  let body = text;
  if (body.endsWith("==")) body = body.slice(0, -2);
  else if (body.endsWith("=")) body = body.slice(0, -1);
  // Padding only where the length needs it: "AA==" and "AAA=", never "AAAA" + "=".
  if (body.length % 4 === 0 && body.length !== text.length) return null;
  return decodeWith(body, STD_TABLE);
}

/** Standard base64 with padding. */
export function toB64std(bytes: Uint8Array): string {
  const at = (k: number): number => bytes[k] ?? 0;
  const char = (n: number): string => STD.charAt(n & 63);
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += char(n >> 18) + char(n >> 12) + char(n >> 6) + char(n);
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (at(i) << 16) | (rest === 2 ? at(i + 1) << 8 : 0);
    out += char(n >> 18) + char(n >> 12) + (rest === 2 ? char(n >> 6) + "=" : "==");
  }
  return out;
}

/** Unpadded base64url. */
export function toB64url(bytes: Uint8Array): string {
  return toB64std(bytes).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}
