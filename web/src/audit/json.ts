// A strict JSON reader for export lines, accepting what the CLI's reader
// (serde_json with `deny_unknown_fields` types) accepts: `JSON.parse` would
// silently keep the last of two equal keys, round integers past 2^53 and
// take `1.0` for `1`, so lines are parsed here, keeping each number's
// text, refusing duplicate keys and lone surrogates, and allowing only
// JSON white space (space, tab, CR, LF) around the value.

/** A JSON number, as written. */
export class JNum {
  constructor(readonly raw: string) {}
}

export type JValue = null | boolean | string | JNum | JValue[] | JObject;
/** A JSON object: keys in order, none twice. */
export type JObject = Map<string, JValue>;

export class JsonError extends Error {}

const MAX_DEPTH = 128;
// What sends a string to the careful path: control characters and surrogates.
const SLOW_STRING = /[\u0000-\u001f\ud800-\udfff]/;

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  fail(what: string): never {
    throw new JsonError(`${what} at column ${this.i + 1}`);
  }

  space(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
    this.i = i;
  }

  value(depth: number): JValue {
    this.space();
    const c = this.s.charCodeAt(this.i);
    switch (c) {
      case 0x7b: // {
        return this.object(depth + 1);
      case 0x5b: // [
        return this.array(depth + 1);
      case 0x22: // "
        return this.string();
      case 0x74: // t
        return this.literal("true", true);
      case 0x66: // f
        return this.literal("false", false);
      case 0x6e: // n
        return this.literal("null", null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        return this.fail(Number.isNaN(c) ? "EOF while parsing a value" : "expected value");
    }
  }

  literal<T extends JValue>(word: string, value: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail("expected value");
    this.i += word.length;
    return value;
  }

  object(depth: number): JObject {
    if (depth > MAX_DEPTH) this.fail("recursion limit exceeded");
    this.i++;
    const out: JObject = new Map();
    this.space();
    if (this.s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return out;
    }
    for (;;) {
      this.space();
      if (this.s.charCodeAt(this.i) !== 0x22) this.fail("key must be a string");
      const key = this.string();
      if (out.has(key)) this.fail(`duplicate field \`${key}\``);
      this.space();
      if (this.s.charCodeAt(this.i) !== 0x3a) this.fail("expected `:`");
      this.i++;
      out.set(key, this.value(depth));
      this.space();
      const c = this.s.charCodeAt(this.i++);
      if (c === 0x7d) return out;
      if (c !== 0x2c) {
        this.i--;
        this.fail("expected `,` or `}`");
      }
    }
  }

  array(depth: number): JValue[] {
    if (depth > MAX_DEPTH) this.fail("recursion limit exceeded");
    this.i++;
    const out: JValue[] = [];
    this.space();
    if (this.s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth));
      this.space();
      const c = this.s.charCodeAt(this.i++);
      if (c === 0x5d) return out;
      if (c !== 0x2c) {
        this.i--;
        this.fail("expected `,` or `]`");
      }
    }
  }

  string(): string {
    const s = this.s;
    let i = this.i + 1;
    // Most strings have no escape, control character or surrogate.
    const end = s.indexOf('"', i);
    if (end >= 0) {
      const escape = s.indexOf("\\", i);
      if (escape < 0 || escape > end) {
        const text = s.slice(i, end);
        if (!SLOW_STRING.test(text)) {
          this.i = end + 1;
          return text;
        }
      }
    }
    let out = "";
    let start = i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        out += s.slice(start, i);
        this.i = i + 1;
        return out;
      }
      if (Number.isNaN(c)) {
        this.i = i;
        this.fail("EOF while parsing a string");
      }
      if (c < 0x20) {
        this.i = i;
        this.fail("control character (\\u0000-\\u001F) found while parsing a string");
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        // Lines come from a strict UTF-8 decoder, but a caller may pass
        // any string: keep only well-formed pairs, as UTF-8 would.
        const next = s.charCodeAt(i + 1);
        if (c >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) {
          this.i = i;
          this.fail("a lone surrogate in a string");
        }
        i += 2;
        continue;
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(start, i);
      const e = s.charCodeAt(i + 1);
      i += 2;
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += "\\"; break;
        case 0x2f: out += "/"; break;
        case 0x62: out += "\b"; break;
        case 0x66: out += "\f"; break;
        case 0x6e: out += "\n"; break;
        case 0x72: out += "\r"; break;
        case 0x74: out += "\t"; break;
        case 0x75: { // u
          const unit = this.hex4(i);
          i += 4;
          if (unit >= 0xdc00 && unit <= 0xdfff) {
            this.i = i;
            this.fail("lone trailing surrogate in hex escape");
          }
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (s.charCodeAt(i) !== 0x5c || s.charCodeAt(i + 1) !== 0x75) {
              this.i = i;
              this.fail("lone leading surrogate in hex escape");
            }
            const low = this.hex4(i + 2);
            if (low < 0xdc00 || low > 0xdfff) {
              this.i = i;
              this.fail("lone leading surrogate in hex escape");
            }
            i += 6;
            out += String.fromCharCode(unit, low);
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          this.i = i - 1;
          this.fail("invalid escape");
      }
      start = i;
    }
  }

  hex4(at: number): number {
    const text = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(text)) {
      this.i = at;
      this.fail("invalid \\u escape");
    }
    return parseInt(text, 16);
  }

  number(): JNum {
    const s = this.s;
    const start = this.i;
    let i = start;
    const digits = (): number => {
      const from = i;
      while (s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
      return i - from;
    };
    if (s.charCodeAt(i) === 0x2d) i++;
    if (s.charCodeAt(i) === 0x30) {
      i++;
      const c = s.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) {
        this.i = i;
        this.fail("invalid number");
      }
    } else if (digits() === 0) {
      this.i = i;
      this.fail("invalid number");
    }
    if (s.charCodeAt(i) === 0x2e) {
      i++;
      if (digits() === 0) {
        this.i = i;
        this.fail("invalid number");
      }
    }
    const e = s.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const sign = s.charCodeAt(i);
      if (sign === 0x2b || sign === 0x2d) i++;
      if (digits() === 0) {
        this.i = i;
        this.fail("invalid number");
      }
    }
    this.i = i;
    return new JNum(s.slice(start, i));
  }
}

/** Parses one JSON value, with nothing but white space around it. */
export function parseJson(text: string): JValue {
  const parser = new Parser(text);
  const value = parser.value(0);
  parser.space();
  if (parser.i !== text.length) parser.fail("trailing characters");
  return value;
}
