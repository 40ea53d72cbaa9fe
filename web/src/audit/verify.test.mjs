// Tests of the browser's audit log verifier, on Node 20's test runner
// and WebCrypto (which has Ed25519), against:
// - the worked examples of docs/audit-format.md (bytes and hashes computed
//   there in Python, and checked against the Rust code by curbside-proto's
//   worked_*_match_the_documentation tests);
// - exports written by testdata/make_fixture.py (Python, from the docs
//   alone), valid and tampered, each tampered one failing at the sequence
//   the CLI's algorithm names (testdata/expected.json).
//
// Run (Node 20 or later, from anywhere):
//
//     node --test web/src/audit/verify.test.mjs
//
// The TypeScript modules are first bundled to JavaScript in a temporary
// folder: with web/'s own rolldown (Vite's bundler) once `npm ci` has run in
// web/, else with `npx --yes esbuild@0.25`; or AUDIT_VERIFY_BUILD names a
// folder that holds such a build already.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, "testdata");

function build() {
  if (process.env.AUDIT_VERIFY_BUILD) return process.env.AUDIT_VERIFY_BUILD;
  const out = mkdtempSync(join(tmpdir(), "curbside-audit-"));
  const entries = readdirSync(here)
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".test.ts"))
    .map((name) => join(here, name));
  const rolldown = join(here, "..", "..", "node_modules", ".bin", "rolldown");
  if (existsSync(rolldown)) {
    execFileSync(rolldown, [...entries, "-d", out, "-f", "esm", "-p", "neutral"], { stdio: ["ignore", "ignore", "inherit"] });
  } else {
    execFileSync(
      "npx",
      ["--yes", "esbuild@0.25", ...entries, "--bundle", "--splitting", "--format=esm",
        "--platform=neutral", "--target=es2022", `--outdir=${out}`, "--log-level=warning"],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
  }
  process.on("exit", () => rmSync(out, { recursive: true, force: true }));
  return out;
}

const out = build();
const load = (name) => import(pathToFileURL(join(out, `${name}.js`)).href);
const { verifyExport, linesOf } = await load("verify");
const { canonicalBytes, chainHash, leafHash, GENESIS_HASH } = await load("entry");
const { Frontier, nodeHash } = await load("merkle");
const { openCheckpoint, verifierString, keyId, treeHeadOf } = await load("note");
const { parseHandover, verifyHandover, firstKey, HandoverError } = await load("handover");
const bytes = await load("bytes");
const { toHex, fromHex, toB64url, fromB64url, fromB64std } = bytes;

const SERVER = "0123456789abcdef0123456789abcdef";
const ORIGIN = `curbside-audit/${SERVER}`;
// RFC 8032's first and second test keys' public halves.
const OLD_KEY = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
const NEW_KEY = fromB64std("PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=");
const NEW_VERIFIER = `${ORIGIN}+561424ec+AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM`;
const OLD_VERIFIER = `${ORIGIN}+9eb1c1a6+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea`;

// --- the documentation's worked examples -----------------------------------

const entry1 = {
  seq: 1n, time_ms: 1795392000000n, actor_user: "2fbaa9c451714715e739968fdb16115d",
  actor_device: "68b665bf3234076602540fa138a7c298", client_addr: "192.0.2.10",
  request_id: "d0dc35ad8d26d8a0bf6ef700f3fe3788", action: "auth.login", resource_type: "session",
  resource_id: "ec7a8aa128d3ee6678fe981bf7f846c0", outcome: "allowed", reason: "ok", evidence: null,
};
const entry2 = { ...entry1, seq: 2n, time_ms: 1795392000500n, request_id: "5a1d0e7f3c2b4a6d8e9f0a1b2c3d4e5f",
  action: "thread.list", resource_type: "thread", resource_id: null };
const entry3 = { ...entry1, seq: 3n, time_ms: 1795392001000n, actor_user: null, actor_device: null,
  request_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", action: "auth.challenge", resource_type: "device",
  resource_id: "68b665bf3234076602540fa138a7c298", outcome: "denied", reason: "device_not_allowed" };
const HANDOVER_EVIDENCE =
  "key-handover v1 size=3 root=MCAxgVdaPTS+Vr94iqhSapdIfNjSNmY9Bz7s9dd7slo= " +
  "old=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= new=PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw= " +
  "old_signature=zqfafTw9bAl1arxfBXApeipQATpWH6aGCevFKojZlDbWUSw76kJypeC1WDw57s43EBCrB_qShIvA_P7IyruwCA " +
  "new_signature=edvAeijotWuVIezjDS_GgB74wESnx5-JyWhrjKTWqY8Hg_Z-OpurS99ZvdYkIr0vg80CWozs1el3Axy3RmQKCw";
const entry4 = { seq: 4n, time_ms: 1795392001500n, actor_user: null, actor_device: null, client_addr: null,
  request_id: "9e8d7c6b5a4938271605f4e3d2c1b0a9", action: "audit.key.rotate", resource_type: "audit_key",
  resource_id: NEW_VERIFIER, outcome: "allowed", reason: "ok", evidence: HANDOVER_EVIDENCE };

test("the worked example's canonical bytes and hash are the documentation's", async () => {
  assert.equal(
    toHex(canonicalBytes(entry1)),
    "63757262736964652d61756469742d656e7472792d763100" + "0000000000000001" + "000001a205b3d000" +
      "01" + "00000020" + "3266626161396334353137313437313565373339393638666462313631313564" +
      "01" + "00000020" + "3638623636356266333233343037363630323534306661313338613763323938" +
      "01" + "0000000a" + "3139322e302e322e3130" +
      "00000020" + "6430646333356164386432366438613062663665663730306633666533373838" +
      "0000000a" + "617574682e6c6f67696e" + "00000007" + "73657373696f6e" +
      "01" + "00000020" + "6563376138616131323864336565363637386665393831626637663834366330" +
      "01" + "00000002" + "6f6b",
  );
  const hash = await chainHash(GENESIS_HASH, canonicalBytes(entry1));
  assert.equal(toHex(hash), "63f1128ff5020d22904d2553b4c36ab3272a8a20eb95b52cfb10ea6f81192ffb");
  // The export example's entry_hash is the same, in unpadded base64url.
  assert.equal(toB64url(hash), "Y_ESj_UCDSKQTSVTtMNqsycqiiDrlbUs-xDqb4EZL_s");
});

test("the worked receipt entry (with evidence) has the documentation's bytes and hash", async () => {
  const evidence = "receipt v1 through=42 time_ms=1795392000000 signature=" +
    "WE-cCTqQkmHBjV65fhRtELuRiqSg6Va0I2URaLy9Tqch9Fcp0sQX409m11nVqLg6Zg5P-cCLbKwCgIhrSK4AAg";
  const entry = { ...entry1, action: "thread.receipt.read", resource_type: "thread",
    resource_id: "00112233445566778899aabbccddeeff", evidence };
  const encoded = toHex(canonicalBytes(entry));
  assert.ok(encoded.startsWith("63757262736964652d61756469742d656e7472792d763200"), "tag v2");
  assert.ok(encoded.includes("00000013" + "7468726561642e726563656970742e72656164"), "action");
  assert.ok(encoded.endsWith("00000002" + "6f6b" + "0000008c" + toHex(new TextEncoder().encode(evidence))));
  const hash = await chainHash(GENESIS_HASH, canonicalBytes(entry));
  assert.equal(toHex(hash), "b0fe69236d29c653f2129419df3d6daede95f8876f46a869c1f785e83ca1c424");
  assert.equal(toB64url(hash), "sP5pI20pxlPyEpQZ3z1trt6V-IdvRqhpwfeF6DyhxCQ");
  // An empty evidence is still evidence (tag v2, a zero length).
  assert.ok(toHex(canonicalBytes({ ...entry1, evidence: "" })).endsWith("6f6b00000000"));
});

test("the worked tree example's leaves, roots and checkpoint are the documentation's", async () => {
  const leaves = await Promise.all([entry1, entry2, entry3].map((e) => leafHash(canonicalBytes(e))));
  assert.deepEqual(leaves.map(toHex), [
    "a0c38b9c9d7071e4c9eb23dbd0e398d844a39f649bf9892881c66ddf71562479",
    "d1c203ebb1264e88904680936ee34ad5c5a3c7599b67b79662b9ead0d808661f",
    "a4ce64df9247bad6b6a3c5994fbb31d5d70a0f04877e781544acd5469ead1e8a",
  ]);
  const tree = new Frontier();
  assert.equal(toHex(await tree.root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  await tree.append(leaves.slice(0, 2));
  assert.equal(toHex(await tree.root()), "745171ab6bc9931ddd2b2c54253c75aef707633230b02000ed3d9f46350d378a");
  await tree.append(leaves.slice(2));
  assert.equal(toHex(await tree.root()), "30203181575a3d34be56bf788aa8526a97487cd8d236663d073eecf5d77bb25a");

  assert.equal(await verifierString({ name: ORIGIN, publicKey: OLD_KEY }), OLD_VERIFIER);
  assert.equal(toHex(await keyId({ name: ORIGIN, publicKey: OLD_KEY })), "9eb1c1a6");
  const note = `${ORIGIN}\n3\nMCAxgVdaPTS+Vr94iqhSapdIfNjSNmY9Bz7s9dd7slo=\n\n` +
    `\u2014 ${ORIGIN} nrHBpvZvzyG8p/6Nd5hD04HrKnrDewCI5TILO6wmbzE3wOPRnL1K0UF+io027GKjtqCwcaDuQNoavK96s++9RESfpgQ=\n`;
  const head = await openCheckpoint(note, { name: ORIGIN, publicKey: OLD_KEY });
  assert.equal(head.size, 3n);
  assert.equal(toHex(head.root), toHex(await tree.root()));
  await assert.rejects(openCheckpoint(note.replace("\n3\n", "\n4\n"), { name: ORIGIN, publicKey: OLD_KEY }),
    /signature by curbside-audit\/0123456789abcdef0123456789abcdef does not verify/);
  await assert.rejects(openCheckpoint(note, { name: ORIGIN, publicKey: NEW_KEY }), /not signed by the audit key/);
  // The witness's cosigned checkpoint: its line is ignored.
  const cosigned = note + "\u2014 witness.example/w1 BNLYMwAAAABrA4IAD4bh6Kfr0WM0+VIxAAovUKExAdbdG2eYZYmdb813c3sBcDif/Mw5VK0sCpc4M0PLYazshhO1jVUWvWWJRvHaAg==\n";
  assert.equal((await openCheckpoint(cosigned, { name: ORIGIN, publicKey: OLD_KEY })).size, 3n);
  for (const bad of [note.replace("\n\n", "\n"), note.replace("\n", "\r\n"), note + "\n", note.replace("\u2014", "-")]) {
    await assert.rejects(openCheckpoint(bad, { name: ORIGIN, publicKey: OLD_KEY }), /well-formed/);
  }
});

test("the worked rotation example's hand-over, leaf, root and two-key checkpoint are the documentation's", async () => {
  const handover = parseHandover(HANDOVER_EVIDENCE);
  assert.ok(handover);
  assert.equal(handover.size, 3n);
  assert.equal(toHex(handover.root), "30203181575a3d34be56bf788aa8526a97487cd8d236663d073eecf5d77bb25a");
  assert.equal(toHex(await verifyHandover(handover, OLD_KEY)), toHex(NEW_KEY));
  await assert.rejects(verifyHandover(handover, NEW_KEY), /from another key/);
  await assert.rejects(verifyHandover({ ...handover, size: 4n }, OLD_KEY), /not signed by the audit key it hands over from/);
  await assert.rejects(verifyHandover({ ...handover, newSignature: handover.oldSignature }, OLD_KEY),
    /not signed by the key it hands over to/);
  assert.equal(parseHandover(HANDOVER_EVIDENCE + " extra"), null);
  assert.equal(parseHandover(HANDOVER_EVIDENCE.replace(" root=", "  root=")), null);
  assert.equal(await verifierString({ name: ORIGIN, publicKey: NEW_KEY }), NEW_VERIFIER);

  const leaf4 = await leafHash(canonicalBytes(entry4));
  assert.equal(toHex(leaf4), "f525c5d7a9419b074f8af3297691951a72be955bbc470625bd4a8c002010cb38");
  const tree = new Frontier();
  for (const e of [entry1, entry2, entry3, entry4]) await tree.append([await leafHash(canonicalBytes(e))]);
  assert.equal(toHex(await tree.root()), "a284cb68f7c7cc03a8c693ea583c25faf9bbc8133a53295611f878388496bc71");
  const note = `${ORIGIN}\n4\nooTLaPfHzAOoxpPqWDwl+vm7yBM6UylWEfh4OISWvHE=\n\n` +
    `\u2014 ${ORIGIN} nrHBplgZP4vWvdT6tENKtpE6nbuzyDIxMFrE/lrx5wxn+Y2Q62DjTm/7i7gHLx+k5M0xa06q+3aC4UFwuGs6qRVPmg8=\n` +
    `\u2014 ${ORIGIN} VhQk7LSS3y1P8iwYQyXZOIlOBCyjPw9hxmpH8Dsyl2BJX7czP/D1sFEBCPRILgtyhqIXrmjL5+7Wxc2PLul6CywVwQM=\n`;
  for (const publicKey of [OLD_KEY, NEW_KEY]) {
    const head = await openCheckpoint(note, { name: ORIGIN, publicKey });
    assert.equal(toHex(head.root), "a284cb68f7c7cc03a8c693ea583c25faf9bbc8133a53295611f878388496bc71");
  }
});

test("the tree built in batches has the root of the tree built leaf by leaf", async () => {
  // RFC 9162's MTH, straight from its definition, over made-up leaves.
  const leaves = await Promise.all(Array.from({ length: 70 }, (_, i) => leafHash(new Uint8Array([i]))));
  const mth = async (items) => {
    if (items.length === 1) return items[0];
    let k = 1;
    while (2 * k < items.length) k *= 2;
    return nodeHash(await mth(items.slice(0, k)), await mth(items.slice(k)));
  };
  for (const cuts of [[1, 1, 1, 1, 66], [3, 5, 7, 11, 13, 31], [64, 6], [70], [2, 2, 4, 8, 16, 32, 6]]) {
    const tree = new Frontier();
    let at = 0;
    for (const cut of cuts) {
      await tree.append(leaves.slice(at, at + cut));
      at += cut;
      assert.equal(toHex(await tree.root()), toHex(await mth(leaves.slice(0, at))), `${cuts} at ${at}`);
    }
  }
});

test("base64 is decoded strictly", () => {
  assert.deepEqual([...fromB64url("-_8AEA")], [0xfb, 0xff, 0x00, 0x10]);
  for (const bad of ["-_8AEA==", "+/8AEA", "A", "AB", "AAB"]) assert.equal(fromB64url(bad), null, bad);
  assert.equal(fromB64url("AA").length, 1);
  assert.deepEqual([...fromB64std("+/8AEA==")], [0xfb, 0xff, 0x00, 0x10]);
  for (const bad of ["+/8AEA", "-_8AEA==", "AB==", "AAAA=", "A===", "AA=A"]) assert.equal(fromB64std(bad), null, bad);
});

// --- exports ------------------------------------------------------------

async function* iterate(lines) {
  yield* lines;
}

const linesOfFile = (name) => readFileSync(join(testdata, name), "utf8").replace(/\n$/, "").split("\n");
const verifyLines = (lines, key = OLD_KEY, progress, options) => verifyExport(iterate(lines), key, progress, options);
const expected = JSON.parse(readFileSync(join(testdata, "expected.json"), "utf8"));
/** A result without its verified tree head (checked on its own below). */
const plain = ({ head, ...rest }) => rest;

test("the valid exports verify, following the key hand-over", async () => {
  const seen = [];
  const result = await verifyLines(linesOfFile("export.jsonl"), OLD_KEY, (p) => seen.push(p));
  assert.deepEqual(plain(result), { ok: true, entries: 8, lastSeq: 8, treeSize: 8, keyId: NEW_VERIFIER });
  assert.deepEqual(seen.at(-1), { entries: 8, lastSeq: 8 });

  // The docs' size-4 tree checkpoint, verbatim, carries both keys' lines;
  // at size 4 the key in force is still the old one.
  const small = await verifyLines(linesOfFile("export-small.jsonl"));
  assert.deepEqual(plain(small), { ok: true, entries: 4, lastSeq: 4, treeSize: 4, keyId: NEW_VERIFIER });
  assert.ok(linesOfFile("export-small.jsonl").at(-1).includes("VhQk7LSS3y1P8iwYQyXZOIlOBCyjPw9hxmpH8Dsyl2BJX7cz"));

  // Given the log's origin, as the CLI is when given the verifier key.
  assert.equal((await verifyLines(linesOfFile("export.jsonl"), OLD_KEY, undefined, { origin: ORIGIN })).ok, true);
});

for (const [file, want] of Object.entries(expected)) {
  if (want.ok) continue;
  test(`${file} breaks at ${want.brokenSeq}`, async () => {
    const result = await verifyLines(linesOfFile(file));
    assert.equal(result.ok, false);
    assert.equal(result.brokenSeq, want.brokenSeq, result.message);
    assert.ok(result.message.startsWith(`the audit log breaks at sequence ${want.brokenSeq}: `), result.message);
    assert.ok(result.message.includes(want.reason), result.message);
    assert.equal(result.entries, want.entries);
  });
}

test("a key other than the log's first breaks it at its first checkpoint", async () => {
  const result = await verifyLines(linesOfFile("export.jsonl"), NEW_KEY);
  assert.equal(result.brokenSeq, 1);
  assert.match(result.message, /the checkpoint's signature does not verify with the audit key/);
  const short = await verifyLines(linesOfFile("export.jsonl"), OLD_KEY.slice(1));
  assert.equal(short.ok, false);
  assert.equal(short.brokenSeq, null);
});

test("a tree checkpoint of another log is refused when the origin is known", async () => {
  const result = await verifyLines(linesOfFile("export.jsonl"), OLD_KEY, undefined, { origin: "curbside-audit/other" });
  assert.equal(result.brokenSeq, 9);
  assert.match(result.message, /the tree checkpoint after entry 8: the checkpoint is not signed by the audit key curbside-audit\/other/);
});

test("checkpoints listed before their entries are checked when the entries come", async () => {
  const lines = linesOfFile("export.jsonl");
  // Move the tree checkpoint and the checkpoint of 6 up, right after the header.
  const moved = [lines[0], lines.at(-1), lines[10], ...lines.slice(1, 10), ...lines.slice(11, -1)];
  assert.match(moved[2], /"kind":"checkpoint","seq":6/);
  assert.deepEqual(plain(await verifyLines(moved)), { ok: true, entries: 8, lastSeq: 8, treeSize: 8, keyId: NEW_VERIFIER });
  // A checkpoint repeated ahead of its entry, or behind it.
  const repeated = [lines[0], lines[10], lines[10], ...lines.slice(1)];
  assert.equal((await verifyLines(repeated)).brokenSeq, 1);
  const behind = [...lines.slice(0, 5), lines[2], ...lines.slice(5)];
  assert.match((await verifyLines(behind)).message, /breaks at sequence 1: checkpoint 1 names an entry the log does not have in that place/);
});

test("entries added after the tree checkpoint are refused", async () => {
  const lines = linesOfFile("export-small.jsonl");
  const full = linesOfFile("export.jsonl");
  // export.jsonl's entry 5, appended after the small export's tree checkpoint.
  const result = await verifyLines([...lines, full.find((l) => l.includes('"seq":5,'))]);
  assert.equal(result.brokenSeq, 5);
  assert.match(result.message, /entries 5 to 5 come after the log's signed tree checkpoint/);
});

test("lines that are not a whole, unfiltered export are refused without a sequence", async () => {
  const lines = linesOfFile("export.jsonl");
  const header = JSON.parse(lines[0]);
  const withHeader = (changes) => [JSON.stringify({ ...header, ...changes }), ...lines.slice(1)];
  const cases = [
    [[], /the server's export: line 0: the export is empty/],
    [lines.slice(1), /line 1: the first line must be the export's header/],
    [withHeader({ filter: { action: "auth.login" } }), /this export is filtered/],
    [withHeader({ version: 1 }), /line 1: this export was made before the audit log's Merkle tree/],
    [withHeader({ version: 4 }), /line 1: the export's format version 4 is newer/],
    [withHeader({ format: "other" }), /line 1: not a Curbside audit export/],
    [[lines[0], lines[0]], /line 2: a second header/],
    [[...lines, ""], /line 15: not an export record \(EOF while parsing a value/],
    [["\ufeff" + lines[0]], /line 1: not an export record/],
    [[lines[0], lines[1].replace('"seq":1,', '"seq":1.0,')], /line 2: not an export record \(`seq`: invalid type: floating point `1.0`/],
    [[lines[0], lines[1].replace('"seq":1,', '"seq":1,"seq":1,')], /line 2: not an export record \(duplicate field `seq`/],
    [[lines[0], lines[1].replace('"seq":1,', '"seq":1,"extra":1,')], /line 2: not an export record \(unknown field `extra`/],
    [[lines[0], lines[1].replace('"reason":"ok"', '"reason":null')], /line 2: not an export record \(`reason`: invalid type: null/],
    [[lines[0], lines[1].replace('"allowed"', '"Allowed"')], /unknown variant `Allowed`/],
    [[lines[0], lines[1] + " x"], /line 2: not an export record \(trailing characters/],
    [[lines[0], lines[1].replace(/"entry_hash":"[^"]*"/, '"entry_hash":"Y_ESj_UCDSKQTSVTtMNqsycqiiDrlbUs-xDqb4EZL_s="')],
      /line 2: not an export record \(`entry_hash`: expected unpadded base64url/],
    [[lines[0], lines[1].replace('"reason":"ok"', '"reason":"\\ud800"')], /lone leading surrogate/],
  ];
  for (const [input, message] of cases) {
    const result = await verifyLines(input);
    assert.equal(result.ok, false, String(message));
    assert.equal(result.brokenSeq, null, `${message}: ${result.message}`);
    assert.match(result.message, message);
  }
  // A header alone: no entries, nothing to check.
  const empty = await verifyLines([JSON.stringify({ ...header, head_seq: 0 })]);
  assert.deepEqual(plain(empty), { ok: true, entries: 0, lastSeq: null, treeSize: null, keyId: OLD_VERIFIER });
  // ... unless it says there were some.
  assert.equal((await verifyLines([lines[0]])).brokenSeq, 1);
});

test("JSON the CLI accepts is accepted: escapes, white space, CR, absent optional fields, null evidence", async () => {
  const lines = linesOfFile("export.jsonl");
  const changed = lines.map((line, i) => (i === 0 ? ` ${line}\t\r` : `${line}\r`));
  changed[1] = changed[1].replace('"client_addr":"192.0.2.10"', '"client_addr" : "192.0.2.\\u0031\\u0030"');
  changed[3] = changed[3].replace('"resource_id":null,', "").replace('"reason":"ok"', '"reason":"ok","evidence":null');
  assert.deepEqual(plain(await verifyLines(changed)), { ok: true, entries: 8, lastSeq: 8, treeSize: 8, keyId: NEW_VERIFIER });
});

function streamOf(data, chunk) {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= data.length) return controller.close();
      controller.enqueue(data.slice(at, at + chunk));
      at += chunk;
    },
  });
}

test("linesOf splits a byte stream into lines, whatever its chunks", async () => {
  const data = readFileSync(join(testdata, "export.jsonl"));
  for (const chunk of [1, 7, 100, 1 << 20]) {
    const result = await verifyExport(linesOf(streamOf(new Uint8Array(data), chunk)), OLD_KEY);
    assert.deepEqual(plain(result), { ok: true, entries: 8, lastSeq: 8, treeSize: 8, keyId: NEW_VERIFIER }, `chunks of ${chunk}`);
  }
  // CRLF line ends, and no LF at the end.
  const crlf = new TextEncoder().encode(data.toString("utf8").trimEnd().replaceAll("\n", "\r\n"));
  assert.equal((await verifyExport(linesOf(streamOf(crlf, 5)), OLD_KEY)).ok, true);
  const collected = [];
  for await (const line of linesOf(streamOf(new TextEncoder().encode("a\n\nb\r\nc"), 2))) collected.push(line);
  assert.deepEqual(collected, ["a", "", "b\r", "c"]);

  // Not UTF-8 (the é of entry 7 cut in half), and a line too long.
  const bad = new Uint8Array(data);
  const at = data.indexOf(Buffer.from("caf\u00e9")) + 3;
  bad[at] = 0xff;
  const result = await verifyExport(linesOf(streamOf(bad, 64)), OLD_KEY);
  assert.equal(result.brokenSeq, null);
  assert.match(result.message, /line 12: not an export record \(the line is not UTF-8\)/);
  assert.equal(result.entries, 6);
  const long = new TextEncoder().encode(readFileSync(join(testdata, "export.jsonl"), "utf8").split("\n")[0] + "\n" + " ".repeat(70000));
  const tooLong = await verifyExport(linesOf(streamOf(long, 4096)), OLD_KEY);
  assert.match(tooLong.message, /line 2: the line is too long/);
});

test("verification stops reading once the log breaks", async () => {
  const lines = linesOfFile("tampered-field.jsonl");
  let pulled = 0;
  let closed = false;
  async function* source() {
    try {
      for (const line of lines) {
        pulled += 1;
        yield line;
      }
      for (;;) {
        pulled += 1;
        yield lines[1];
      }
    } finally {
      closed = true;
    }
  }
  const result = await verifyExport(source(), OLD_KEY);
  assert.equal(result.brokenSeq, 2);
  assert.ok(closed, "the source was closed");
  assert.ok(pulled < 5000, `${pulled} lines pulled`);
});

// --- a browser enrolled after a rotation; a log rewound or emptied ----------

const handoverEntries = () =>
  JSON.parse(readFileSync(join(testdata, "handovers.json"), "utf8")).entries.map(({ entry }) => entry);

test("a browser that pinned the key handed over to walks back to the log's first key, and verifies", async () => {
  const entries = handoverEntries();
  const lines = linesOfFile("export.jsonl");
  const first = await firstKey(NEW_KEY, entries);
  assert.equal(toHex(first.key), toHex(OLD_KEY));
  assert.deepEqual(first.steps.map(({ seq, oldKey, newKey }) => [seq, toHex(oldKey), toHex(newKey)]),
    [[4n, toHex(OLD_KEY), toHex(NEW_KEY)]]);
  const options = { origin: ORIGIN, mustReach: NEW_KEY, requireEntries: true };
  const result = await verifyLines(lines, first.key, undefined, options);
  assert.deepEqual(plain(result), { ok: true, entries: 8, lastSeq: 8, treeSize: 8, keyId: NEW_VERIFIER });

  // Pinned before the rotation: the log begins with the pinned key.
  const before = await firstKey(OLD_KEY, entries);
  assert.equal(toHex(before.key), toHex(OLD_KEY));
  assert.deepEqual(before.steps, []);
  assert.equal((await verifyLines(lines, before.key, undefined, { ...options, mustReach: OLD_KEY })).ok, true);

  // No hand-over listed: the pinned key does not sign the first checkpoint.
  const none = await firstKey(NEW_KEY, []);
  assert.equal((await verifyLines(lines, none.key, undefined, options)).brokenSeq, 1);

  // A log that verifies from its first key but never reaches the pinned one.
  const other = new Uint8Array(32).fill(7);
  const unreached = await verifyLines(lines, OLD_KEY, undefined, { ...options, mustReach: other });
  assert.equal(unreached.ok, false);
  assert.equal(unreached.brokenSeq, 1);
  assert.match(unreached.message, /never hands its audit key over to the key pinned in this browser/);
});

test("a hand-over that does not verify fails the walk back, naming its entry; none is skipped", async () => {
  const [good] = handoverEntries();
  const forged = linesOfFile("tampered-handover.jsonl").map((line) => JSON.parse(line))
    .find((record) => record.kind === "entry" && record.entry.action === "audit.key.rotate").entry;
  const isForged = (error) => error instanceof HandoverError && error.seq === 4n &&
    /^the key hand-over at entry 4 does not verify: the key hand-over is not signed by the audit key it hands over from$/.test(error.message);
  await assert.rejects(firstKey(NEW_KEY, [forged]), isForged);
  // Not on the way back from the pinned key (it hands over to another), still refused.
  await assert.rejects(firstKey(OLD_KEY, [forged]), isForged);
  await assert.rejects(firstKey(NEW_KEY, [{ ...good, evidence: good.evidence.replace(/new_signature=./, "new_signature=A") }]),
    /entry 4 does not verify: the key hand-over is not signed by the key it hands over to/);
  await assert.rejects(firstKey(NEW_KEY, [{ seq: 4, evidence: "key-handover v1" }]), /entry 4 is not a readable hand-over/);
  await assert.rejects(firstKey(NEW_KEY, [{ seq: 4 }]), /entry 4 is not a readable hand-over/);
  await assert.rejects(firstKey(NEW_KEY, [{ ...good, seq: 6 }]), /entry 6 names another tree than the log's before it/);
});

test("a log that does not extend the tree head this browser kept was rewound or rewritten", async () => {
  const lines = linesOfFile("export.jsonl");
  const full = await verifyLines(lines);
  const note8 = JSON.parse(lines.at(-1)).note;
  assert.equal(full.head.size, 8);
  assert.equal(toHex(full.head.root), toHex(treeHeadOf(note8).root));
  assert.equal(toHex(full.head.publicKey), toHex(NEW_KEY));

  // The docs' root of the first four entries; the key after them is the new one.
  const root4 = fromHex("a284cb68f7c7cc03a8c693ea583c25faf9bbc8133a53295611f878388496bc71");
  for (const kept of [{ size: 4, root: root4, publicKey: NEW_KEY }, { size: 4, root: root4 }, full.head, { size: 0, root: root4 }]) {
    assert.equal((await verifyLines(lines, OLD_KEY, undefined, { checkRootAt: kept })).ok, true, `${kept.size}`);
  }
  assert.equal((await verifyLines(linesOfFile("export-small.jsonl"), OLD_KEY, undefined, { checkRootAt: { size: 4, root: root4 } })).ok, true);

  const said = (size, root) =>
    `the audit log breaks at sequence %: the log was rewound or rewritten since this browser last verified it (it had ${size} entries with root ${bytes.toB64std(root)})`;
  // Rewritten: another root at the kept size, or another key in force there: 1.
  const rewritten = await verifyLines(lines, OLD_KEY, undefined, { checkRootAt: { size: 4, root: full.head.root } });
  assert.deepEqual(rewritten, { ok: false, brokenSeq: 1, message: said(4, full.head.root).replace("%", "1"), entries: 4 });
  const otherKey = await verifyLines(lines, OLD_KEY, undefined, { checkRootAt: { size: 4, root: root4, publicKey: OLD_KEY } });
  assert.equal(otherKey.brokenSeq, 1);
  // Rewound: fewer entries than kept, each of them valid: the first missing one.
  const rewound = await verifyLines(linesOfFile("export-small.jsonl"), OLD_KEY, undefined, { checkRootAt: full.head });
  assert.deepEqual(rewound, { ok: false, brokenSeq: 5, message: said(8, full.head.root).replace("%", "5"), entries: 4 });
  // Emptied: a header alone.
  const empty = [JSON.stringify({ ...JSON.parse(lines[0]), head_seq: 0 })];
  assert.equal((await verifyLines(empty, OLD_KEY, undefined, { checkRootAt: full.head })).brokenSeq, 1);
  const emptied = await verifyLines(empty, OLD_KEY, undefined, { requireEntries: true });
  assert.equal(emptied.brokenSeq, 1);
  assert.match(emptied.message, /the log has no entries, but this browser's own enrollment and sign-ins are recorded in it/);
  // A kept head that is not one.
  const damaged = await verifyLines(lines, OLD_KEY, undefined, { checkRootAt: { size: 4, root: root4.slice(1) } });
  assert.deepEqual(damaged, { ok: false, brokenSeq: null, message: "the tree head kept in this browser is damaged", entries: 0 });
  // A log broken before the kept size breaks where it breaks (as the e2e test expects).
  const field = await verifyLines(linesOfFile("tampered-field.jsonl"), OLD_KEY, undefined, { checkRootAt: full.head });
  assert.equal(field.brokenSeq, 2);
});

// --- a larger log, over several batches -----------------------------------

const python = (() => {
  try {
    execFileSync("python3", ["-c", "import cryptography"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

test("a log of 5000 entries over several batches, with a hand-over in one", { skip: !python && "needs python3 with cryptography" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "curbside-audit-large-"));
  try {
    const path = join(dir, "large.jsonl");
    execFileSync("python3", [join(testdata, "make_fixture.py"), "--large", "5000", path]);
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    const seen = [];
    const result = await verifyLines(lines, OLD_KEY, (p) => seen.push(p.entries));
    assert.deepEqual(plain(result), { ok: true, entries: 5000, lastSeq: 5000, treeSize: 5000, keyId: NEW_VERIFIER });
    assert.ok(seen.length >= 3 && seen.length <= 12, `progress ${seen}`);
    assert.equal(seen.at(-1), 5000);
    // One entry's reason changed, its recorded hash kept, on either side
    // of batch boundaries and of the hand-over (2501).
    for (const tamper of [1, 1016, 1017, 1018, 2500, 2501, 2502, 4999, 5000]) {
      const at = lines.findIndex((line) => line.startsWith(`{"kind":"entry","entry":{"seq":${tamper},`));
      const tampered = lines.with(at, lines[at].replace('"reason":"ok"', '"reason":"forged"'));
      const broken = await verifyLines(tampered);
      assert.equal(broken.brokenSeq, tamper, broken.message);
      assert.match(broken.message, /do not match its recorded hash/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

assert.ok(existsSync(join(out, "verify.js")));
