// Binary values on the wire: unpadded base64url, as `curbside_proto::b64`
// writes them; decoding is strict (no padding, no other alphabet, no stray
// bits), as the server's is.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const VALUES: ReadonlyMap<string, number> = new Map(
  Array.from(ALPHABET, (char, index) => [char, index] as const),
);

/** Bytes as unpadded base64url. */
export function encode(bytes: Uint8Array): string {
  let out = '';
  let index = 0;
  for (; index + 3 <= bytes.length; index += 3) {
    const n = (bytes[index]! << 16) | (bytes[index + 1]! << 8) | bytes[index + 2]!;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - index;
  if (rest === 1) {
    const n = bytes[index]! << 16;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[index]! << 16) | (bytes[index + 1]! << 8);
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/** Unpadded base64url as bytes; throws on anything else. */
export function decode(text: string): Uint8Array {
  if (text.length % 4 === 1) {
    throw new Error('not unpadded base64url: wrong length');
  }
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let count = 0;
  let at = 0;
  for (const char of text) {
    const value = VALUES.get(char);
    if (value === undefined) {
      throw new Error('not unpadded base64url: unexpected character');
    }
    bits = (bits << 6) | value;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out[at++] = (bits >> count) & 0xff;
    }
    bits &= (1 << count) - 1;
  }
  if (bits !== 0) {
    throw new Error('not unpadded base64url: stray bits');
  }
  return out;
}
