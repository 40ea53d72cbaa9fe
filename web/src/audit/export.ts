// The lines of a JSON Lines export (docs/audit-format.md, "Export files";
// proto/src/audit_review.rs `ExportLine`), read as strictly as the CLI's
// serde types read them: a `kind`, then exactly the fields of that kind
// (unknown or repeated keys refused, a missing optional text taken as
// null), integers as JSON integers within their type's range, binary
// values as unpadded base64url.

import { fromB64url, I64_MAX, I64_MIN, U64_MAX } from "./bytes";
import type { AuditEntry, Checkpoint, Outcome } from "./entry";
import { JNum, JsonError, parseJson, type JObject, type JValue } from "./json";

export interface ExportHeader {
  format: string;
  version: number;
  server_id: string;
  exported_at_ms: bigint;
  head_seq: bigint;
  /** Whether any filter was applied (such an export cannot be verified). */
  filtered: boolean;
}

export type ExportLine =
  | { kind: "header"; header: ExportHeader }
  | { kind: "entry"; entry: AuditEntry; entryHash: Uint8Array }
  | { kind: "checkpoint"; checkpoint: Checkpoint }
  | { kind: "tree_checkpoint"; note: string };

class SchemaError extends Error {}

function isObject(value: JValue | undefined): value is JObject {
  return value instanceof Map;
}

function describe(value: JValue | undefined): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return `boolean \`${value}\``;
  if (typeof value === "string") return `string ${JSON.stringify(value)}`;
  if (value instanceof JNum) return `number ${value.raw}`;
  if (Array.isArray(value)) return "a sequence";
  return "a map";
}

/** A struct's fields: refuses keys not in `known`. */
function fields(object: JValue | undefined, what: string, known: readonly string[]): JObject {
  if (!isObject(object)) throw new SchemaError(`invalid type: ${describe(object)}, expected ${what}`);
  for (const key of object.keys()) {
    if (!known.includes(key)) {
      throw new SchemaError(`unknown field \`${key}\`, expected one of ${known.map((k) => `\`${k}\``).join(", ")}`);
    }
  }
  return object;
}

function required(object: JObject, key: string): JValue {
  const value = object.get(key);
  if (value === undefined) throw new SchemaError(`missing field \`${key}\``);
  return value;
}

function text(object: JObject, key: string): string {
  const value = required(object, key);
  if (typeof value !== "string") throw new SchemaError(`\`${key}\`: invalid type: ${describe(value)}, expected a string`);
  return value;
}

/** An `Option<String>`: absent or null is null. */
function optionalText(object: JObject, key: string): string | null {
  const value = object.get(key);
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") throw new SchemaError(`\`${key}\`: invalid type: ${describe(value)}, expected a string`);
  return value;
}

// serde_json reads an integer written without fraction or exponent as a
// u64 if it is not negative and fits, as an i64 if it is negative and fits
// (but `-0` as a float), else as a float, which no integer field takes.
function integer(value: JValue, key: string, min: bigint, max: bigint, what: string): bigint {
  if (!(value instanceof JNum)) throw new SchemaError(`\`${key}\`: invalid type: ${describe(value)}, expected ${what}`);
  if (!/^-?(0|[1-9][0-9]*)$/.test(value.raw) || value.raw === "-0") {
    throw new SchemaError(`\`${key}\`: invalid type: floating point \`${value.raw}\`, expected ${what}`);
  }
  const n = BigInt(value.raw);
  if (n < I64_MIN || n > U64_MAX) {
    throw new SchemaError(`\`${key}\`: invalid type: floating point \`${value.raw}\`, expected ${what}`);
  }
  if (n < min || n > max) throw new SchemaError(`\`${key}\`: invalid value: integer \`${value.raw}\`, expected ${what}`);
  return n;
}

const u64 = (object: JObject, key: string): bigint => integer(required(object, key), key, 0n, U64_MAX, "u64");
const i64 = (object: JObject, key: string): bigint => integer(required(object, key), key, I64_MIN, I64_MAX, "i64");

function optionalI64(object: JObject, key: string): bigint | null {
  const value = object.get(key);
  if (value === undefined || value === null) return null;
  return integer(value, key, I64_MIN, I64_MAX, "i64");
}

function outcome(value: JValue | undefined, key: string): Outcome {
  if (value === "allowed" || value === "denied") return value;
  if (typeof value === "string") {
    throw new SchemaError(`\`${key}\`: unknown variant \`${value}\`, expected \`allowed\` or \`denied\``);
  }
  throw new SchemaError(`\`${key}\`: invalid type: ${describe(value)}, expected \`allowed\` or \`denied\``);
}

function binary(object: JObject, key: string): Uint8Array {
  const value = text(object, key);
  const bytes = fromB64url(value);
  if (bytes === null) throw new SchemaError(`\`${key}\`: expected unpadded base64url`);
  return bytes;
}

const FILTER_FIELDS = ["actor", "resource", "action", "outcome", "since_ms", "until_ms"] as const;

function header(object: JObject): ExportHeader {
  fields(object, "struct ExportHeader", ["kind", "format", "version", "server_id", "exported_at_ms", "head_seq", "filter"]);
  const filter = fields(required(object, "filter"), "struct AuditFilter", FILTER_FIELDS);
  let filtered = false;
  for (const key of ["actor", "resource", "action"]) filtered = optionalText(filter, key) !== null || filtered;
  const chosen = filter.get("outcome");
  if (chosen !== undefined && chosen !== null) {
    outcome(chosen, "outcome");
    filtered = true;
  }
  for (const key of ["since_ms", "until_ms"]) filtered = optionalI64(filter, key) !== null || filtered;
  return {
    format: text(object, "format"),
    version: Number(integer(required(object, "version"), "version", 0n, 0xffffffffn, "u32")),
    server_id: text(object, "server_id"),
    exported_at_ms: i64(object, "exported_at_ms"),
    head_seq: u64(object, "head_seq"),
    filtered,
  };
}

const ENTRY_FIELDS = [
  "seq", "time_ms", "actor_user", "actor_device", "client_addr", "request_id", "action",
  "resource_type", "resource_id", "outcome", "reason", "evidence",
] as const;

function entry(object: JObject): { entry: AuditEntry; entryHash: Uint8Array } {
  fields(object, "struct RecordedEntry", ["kind", "entry", "entry_hash"]);
  const e = fields(required(object, "entry"), "struct AuditEntry", ENTRY_FIELDS);
  return {
    entry: {
      seq: u64(e, "seq"),
      time_ms: i64(e, "time_ms"),
      actor_user: optionalText(e, "actor_user"),
      actor_device: optionalText(e, "actor_device"),
      client_addr: optionalText(e, "client_addr"),
      request_id: text(e, "request_id"),
      action: text(e, "action"),
      resource_type: text(e, "resource_type"),
      resource_id: optionalText(e, "resource_id"),
      outcome: outcome(required(e, "outcome"), "outcome"),
      reason: text(e, "reason"),
      evidence: optionalText(e, "evidence"),
    },
    entryHash: binary(object, "entry_hash"),
  };
}

function checkpoint(object: JObject): Checkpoint {
  fields(object, "struct Checkpoint", ["kind", "seq", "head_hash", "time_ms", "prev_checkpoint_hash", "signature"]);
  return {
    seq: u64(object, "seq"),
    head_hash: binary(object, "head_hash"),
    time_ms: i64(object, "time_ms"),
    prev_checkpoint_hash: binary(object, "prev_checkpoint_hash"),
    signature: binary(object, "signature"),
  };
}

function treeCheckpoint(object: JObject): string {
  fields(object, "struct TreeCheckpoint", ["kind", "note", "witnessed"]);
  const witnessed = object.get("witnessed");
  if (witnessed !== undefined) {
    // Exports carry none, but the CLI's type accepts them (and ignores them).
    if (!Array.isArray(witnessed)) {
      throw new SchemaError(`\`witnessed\`: invalid type: ${describe(witnessed)}, expected a sequence`);
    }
    for (const item of witnessed) {
      const w = fields(item, "struct WitnessedCheckpoint", ["witness", "note"]);
      text(w, "witness");
      text(w, "note");
    }
  }
  return text(object, "note");
}

/** Reads one export line; throws an Error saying why it is not one. */
export function parseExportLine(line: string): ExportLine {
  let value: JValue;
  try {
    value = parseJson(line);
  } catch (error) {
    if (error instanceof JsonError) throw new Error(error.message);
    throw error;
  }
  try {
    if (!isObject(value)) throw new SchemaError(`invalid type: ${describe(value)}, expected an export record`);
    const kind = value.get("kind");
    if (kind === undefined) throw new SchemaError("missing field `kind`");
    switch (kind) {
      case "header":
        return { kind, header: header(value) };
      case "entry":
        return { kind, ...entry(value) };
      case "checkpoint":
        return { kind, checkpoint: checkpoint(value) };
      case "tree_checkpoint":
        return { kind, note: treeCheckpoint(value) };
      default:
        throw new SchemaError(
          typeof kind === "string"
            ? `unknown variant \`${kind}\`, expected one of \`header\`, \`entry\`, \`checkpoint\`, \`tree_checkpoint\``
            : `invalid type: ${describe(kind)}, expected a variant name`,
        );
    }
  } catch (error) {
    if (error instanceof SchemaError) throw new Error(error.message);
    throw error;
  }
}
