#!/usr/bin/env python3
"""Writes the JSON Lines audit exports the browser verifier is tested on.

Everything is computed here, outside the Rust code, from
docs/audit-format.md alone (its Python snippets, copied below), with fixed
keys: RFC 8032's first test key is the installation's first audit key (and
the receipt's device key, as in the docs), its second the key handed over
to. The script checks its results against the documentation's worked
values before writing, and is deterministic (Ed25519 signatures are), so
running it again rewrites the same files:

    python3 web/src/audit/testdata/make_fixture.py

Files (next to this script):

- export-small.jsonl: the docs' rotation example as an export: entries 1-4
  (the worked tree example's three and the hand-over), chain checkpoints
  at 1 and 4 (old key), and the docs' size-4 tree checkpoint, both keys'
  lines, verbatim.
- export.jsonl: eight entries with the hand-over at 4, a signed receipt
  at 6 (evidence), chain checkpoints at 1, 3, 4 (old key) and 6 (new key),
  entries 7-8 covered only by the tree checkpoint of size 8 (new key).
- handovers.json: what `GET /v1/audit/entries?action=audit.key.rotate&
  outcome=allowed` answers for export.jsonl's log (its hand-over at 4):
  a browser that pinned the new key walks back from it to the first key.
- tampered-*.jsonl: export.jsonl altered one way each; expected.json says
  where each breaks (brokenSeq), why (a part of the message), and how many
  entries verified before (entries).

`make_fixture.py --large N OUT` instead writes a log of N entries to OUT
(not kept in the repository: for tests of batching and speed): chain
checkpoints at 1 and every 1000, a hand-over at N // 2 + 1, receipts as
evidence in every fifth entry, the tree checkpoint of N by the new key.

Needs the `cryptography` package.
"""

import base64
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_ID = "0123456789abcdef0123456789abcdef"
ORIGIN = "curbside-audit/" + SERVER_ID

# --- docs/audit-format.md, "Worked example" ---------------------------------


def text(s):
    b = s.encode("utf-8")
    assert len(b) <= 1024
    return struct.pack(">I", len(b)) + b


def opt(s):
    return b"\x00" if s is None else b"\x01" + text(s)


def canonical(e):
    evidence = e.get("evidence")
    return ((b"curbside-audit-entry-v1\x00" if evidence is None
             else b"curbside-audit-entry-v2\x00")
            + struct.pack(">Q", e["seq"]) + struct.pack(">q", e["time_ms"])
            + opt(e["actor_user"]) + opt(e["actor_device"]) + opt(e["client_addr"])
            + text(e["request_id"]) + text(e["action"]) + text(e["resource_type"])
            + opt(e["resource_id"])
            + bytes([1 if e["outcome"] == "allowed" else 2])
            + text(e["reason"])
            + (b"" if evidence is None else text(evidence)))


def entry_hash(prev_hash, e):
    return hashlib.sha256(prev_hash + canonical(e)).digest()


# --- "Worked tree example" ----------------------------------------------------


def leaf(e): return hashlib.sha256(b"\x00" + canonical(e)).digest()
def node(l, r): return hashlib.sha256(b"\x01" + l + r).digest()


def mth(leaves):
    if not leaves: return hashlib.sha256(b"").digest()
    if len(leaves) == 1: return leaves[0]
    k = 1
    while 2 * k < len(leaves): k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def checkpoint(secret, server_id, size, root):
    key = Ed25519PrivateKey.from_private_bytes(secret)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = "curbside-audit/" + server_id
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    text = f"{name}\n{size}\n{base64.b64encode(root).decode()}\n"
    signature = key.sign(text.encode())
    return (text + "\n\u2014 " + name + " "
            + base64.b64encode(key_id + signature).decode() + "\n")


# --- "Worked receipt example" and "Worked rotation example" -------------------


def b64url(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def receipt_message(server_id, device_id, thread_id, kind, through, time_ms):
    return (f"curbside receipt v1\nserver={server_id}\ndevice={device_id}\n"
            f"thread={thread_id}\nkind={kind}\nthrough={through}\n"
            f"time_ms={time_ms}\n").encode()


def receipt_evidence(device_key, server_id, device_id, thread_id, kind,
                     through, time_ms):
    signature = device_key.sign(receipt_message(
        server_id, device_id, thread_id, kind, through, time_ms))
    return (f"receipt v1 through={through} time_ms={time_ms} "
            f"signature={b64url(signature)}")


def public_bytes(key):
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def statement(old_public, new_public, size, root):
    b64 = lambda b: base64.b64encode(b).decode()
    return (f"curbside audit key handover v1\nold={b64(old_public)}\n"
            f"new={b64(new_public)}\nsize={size}\nroot={b64(root)}\n").encode()


def handover_evidence(old_key, new_key, size, root, signer_of_old=None):
    signed = statement(public_bytes(old_key), public_bytes(new_key), size, root)
    return (f"key-handover v1 size={size} root={base64.b64encode(root).decode()} "
            f"old={base64.b64encode(public_bytes(old_key)).decode()} "
            f"new={base64.b64encode(public_bytes(new_key)).decode()} "
            f"old_signature={b64url((signer_of_old or old_key).sign(signed))} "
            f"new_signature={b64url(new_key.sign(signed))}")


# --- "Checkpoints" (the chain's) ---------------------------------------------


def chain_checkpoint(key, seq, head_hash, time_ms, prev_checkpoint_hash):
    signed = (b"curbside-audit-checkpoint-v1\x00" + struct.pack(">Q", seq) + head_hash
              + struct.pack(">q", time_ms) + prev_checkpoint_hash)
    signature = key.sign(signed)
    record = {"kind": "checkpoint", "seq": seq, "head_hash": b64url(head_hash),
              "time_ms": time_ms, "prev_checkpoint_hash": b64url(prev_checkpoint_hash),
              "signature": b64url(signature)}
    return record, hashlib.sha256(signed + signature).digest()


# --- the keys and entries ---------------------------------------------------

old_secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
new_secret = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
old_key = Ed25519PrivateKey.from_private_bytes(old_secret)
new_key = Ed25519PrivateKey.from_private_bytes(new_secret)

entry1 = dict(seq=1, time_ms=1795392000000, actor_user="2fbaa9c451714715e739968fdb16115d",
              actor_device="68b665bf3234076602540fa138a7c298", client_addr="192.0.2.10",
              request_id="d0dc35ad8d26d8a0bf6ef700f3fe3788", action="auth.login",
              resource_type="session", resource_id="ec7a8aa128d3ee6678fe981bf7f846c0",
              outcome="allowed", reason="ok")
entry2 = dict(entry1, seq=2, time_ms=1795392000500, request_id="5a1d0e7f3c2b4a6d8e9f0a1b2c3d4e5f",
              action="thread.list", resource_type="thread", resource_id=None)
entry3 = dict(entry1, seq=3, time_ms=1795392001000, actor_user=None, actor_device=None,
              request_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0", action="auth.challenge",
              resource_type="device", resource_id="68b665bf3234076602540fa138a7c298",
              outcome="denied", reason="device_not_allowed")


def handover_entry(signer_of_old=None):
    leaves = [leaf(e) for e in (entry1, entry2, entry3)]
    return dict(
        seq=4, time_ms=1795392001500, actor_user=None, actor_device=None,
        client_addr=None, request_id="9e8d7c6b5a4938271605f4e3d2c1b0a9",
        action="audit.key.rotate", resource_type="audit_key",
        resource_id=ORIGIN + "+561424ec+AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM",
        outcome="allowed", reason="ok",
        evidence=handover_evidence(old_key, new_key, 3, mth(leaves), signer_of_old))


entry4 = handover_entry()
entry5 = dict(seq=5, time_ms=1795392060000, actor_user="2fbaa9c451714715e739968fdb16115d",
              actor_device="68b665bf3234076602540fa138a7c298", client_addr="2001:db8::10",
              request_id="11112222333344445555666677778888", action="admin.user.list",
              resource_type="user", resource_id=None, outcome="allowed", reason="ok")
# The docs' receipt (device key = RFC 8032's first test key), kept at 6.
receipt = receipt_evidence(old_key, SERVER_ID, "68b665bf3234076602540fa138a7c298",
                           "00112233445566778899aabbccddeeff", "read", 42, 1795392000000)
entry6 = dict(entry1, seq=6, time_ms=1795392060500, action="thread.receipt.read",
              resource_type="thread", resource_id="00112233445566778899aabbccddeeff",
              request_id="99998888777766665555444433332222", evidence=receipt)
# Text no real entry has, but the format allows: non-ASCII, quotes, a
# newline, a backslash (JSON escapes and UTF-8 lengths).
entry7 = dict(seq=7, time_ms=1795392061000, actor_user=None, actor_device=None,
              client_addr="198.51.100.7", request_id="aaaabbbbccccddddeeeeffff00001111",
              action="http.request", resource_type="route",
              resource_id='/v1/caf\u00e9/\u2603 "quoted"\nline\\end', outcome="denied",
              reason="not_found")
entry8 = dict(seq=8, time_ms=1795392070000, actor_user=None, actor_device=None,
              client_addr="2001:db8:1:2::/64", request_id="refusals:1795392062000-1795392069000",
              action="auth.login", resource_type="refusal_count", resource_id="1532",
              outcome="denied", reason="rate_limited")

# --- the documentation's values, checked -------------------------------------

assert entry_hash(bytes(32), entry1).hex() == \
    "63f1128ff5020d22904d2553b4c36ab3272a8a20eb95b52cfb10ea6f81192ffb"
assert [leaf(e).hex() for e in (entry1, entry2, entry3)] == [
    "a0c38b9c9d7071e4c9eb23dbd0e398d844a39f649bf9892881c66ddf71562479",
    "d1c203ebb1264e88904680936ee34ad5c5a3c7599b67b79662b9ead0d808661f",
    "a4ce64df9247bad6b6a3c5994fbb31d5d70a0f04877e781544acd5469ead1e8a"]
assert leaf(entry4).hex() == "f525c5d7a9419b074f8af3297691951a72be955bbc470625bd4a8c002010cb38"
assert mth([leaf(e) for e in (entry1, entry2, entry3, entry4)]).hex() == \
    "a284cb68f7c7cc03a8c693ea583c25faf9bbc8133a53295611f878388496bc71"
assert receipt.endswith("signature=WE-cCTqQkmHBjV65fhRtELuRiqSg6Va0I2URaLy9Tqch9Fcp0sQX409m"
                        "11nVqLg6Zg5P-cCLbKwCgIhrSK4AAg")
assert entry4["evidence"].endswith(
    "old_signature=zqfafTw9bAl1arxfBXApeipQATpWH6aGCevFKojZlDbWUSw76kJypeC1WDw57s43EBCrB_"
    "qShIvA_P7IyruwCA new_signature=edvAeijotWuVIezjDS_GgB74wESnx5-JyWhrjKTWqY8Hg_Z-OpurS99Z"
    "vdYkIr0vg80CWozs1el3Axy3RmQKCw")
DOC_SIZE_4 = (
    ORIGIN + "\n4\nooTLaPfHzAOoxpPqWDwl+vm7yBM6UylWEfh4OISWvHE=\n\n"
    "\u2014 " + ORIGIN + " nrHBplgZP4vWvdT6tENKtpE6nbuzyDIxMFrE/lrx5wxn+Y2Q62DjTm/7i7gHLx+k5M0xa0"
    "6q+3aC4UFwuGs6qRVPmg8=\n"
    "\u2014 " + ORIGIN + " VhQk7LSS3y1P8iwYQyXZOIlOBCyjPw9hxmpH8Dsyl2BJX7czP/D1sFEBCPRILgtyhqIXrmjL"
    "5+7Wxc2PLul6CywVwQM=\n")
root4 = mth([leaf(e) for e in (entry1, entry2, entry3, entry4)])
assert (checkpoint(old_secret, SERVER_ID, 4, root4)
        + checkpoint(new_secret, SERVER_ID, 4, root4).split("\n\n")[1]) == DOC_SIZE_4

# --- writing exports -----------------------------------------------------------


def dumps(record):
    # As serde_json writes: compact, UTF-8, keys in the struct's order.
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def entry_record(e, hash_):
    body = {k: e[k] for k in ("seq", "time_ms", "actor_user", "actor_device", "client_addr",
                              "request_id", "action", "resource_type", "resource_id",
                              "outcome", "reason")}
    if e.get("evidence") is not None:
        body["evidence"] = e["evidence"]
    return {"kind": "entry", "entry": body, "entry_hash": b64url(hash_)}


def build(entries, checkpoint_at, tree_note):
    """The export's records: header, entries (each followed by its chain
    checkpoint, if any; `checkpoint_at` maps seq to the signing key), then
    the tree checkpoint."""
    records = [{"kind": "header", "format": "curbside-audit-export", "version": 3,
                "server_id": SERVER_ID, "exported_at_ms": 1795392080000,
                "head_seq": entries[-1]["seq"],
                "filter": {}}]
    prev, prev_checkpoint = bytes(32), bytes(32)
    for e in entries:
        h = entry_hash(prev, e)
        records.append(entry_record(e, h))
        if e["seq"] in checkpoint_at:
            record, prev_checkpoint = chain_checkpoint(
                checkpoint_at[e["seq"]], e["seq"], h, e["time_ms"] + 4, prev_checkpoint)
            records.append(record)
        prev = h
    records.append({"kind": "tree_checkpoint", "note": tree_note})
    return records


def write(name, records):
    with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(record if isinstance(record, str) else dumps(record))
            out.write("\n")


def tree_note(entries, *secrets):
    root = mth([leaf(e) for e in entries])
    notes = [checkpoint(secret, SERVER_ID, len(entries), root) for secret in secrets]
    return notes[0] + "".join(note.split("\n\n")[1] for note in notes[1:])



def large(n, out_path):
    h = n // 2 + 1
    prev, prev_checkpoint, leaves = bytes(32), bytes(32), []
    key = old_key
    with open(out_path, "w", encoding="utf-8", newline="\n") as out:
        out.write(dumps({"kind": "header", "format": "curbside-audit-export", "version": 3,
                         "server_id": SERVER_ID, "exported_at_ms": 1795392080000,
                         "head_seq": n, "filter": {}}) + "\n")
        for seq in range(1, n + 1):
            if seq == h:
                e = dict(entry4, seq=seq, time_ms=1795392000000 + seq,
                         evidence=handover_evidence(old_key, new_key, seq - 1, mth(leaves)))
            else:
                e = dict(entry1, seq=seq, time_ms=1795392000000 + seq,
                         request_id=f"{seq:032x}", resource_id=f"r{seq}",
                         outcome="allowed" if seq % 7 else "denied")
                if seq % 5 == 0:
                    e["evidence"] = receipt
            hash_ = entry_hash(prev, e)
            leaves.append(leaf(e))
            out.write(dumps(entry_record(e, hash_)) + "\n")
            if seq == 1 or seq % 1000 == 0 or seq == h:
                record, prev_checkpoint = chain_checkpoint(
                    key, seq, hash_, e["time_ms"] + 4, prev_checkpoint)
                out.write(dumps(record) + "\n")
            if seq == h:
                key = new_key
            prev = hash_
        out.write(dumps({"kind": "tree_checkpoint",
                         "note": checkpoint(new_secret if n >= h else old_secret,
                                            SERVER_ID, n, mth(leaves))}) + "\n")


if len(sys.argv) > 1 and sys.argv[1] == "--large":
    large(int(sys.argv[2]), sys.argv[3])
    sys.exit(0)

small = [entry1, entry2, entry3, entry4]
write("export-small.jsonl", build(small, {1: old_key, 4: old_key}, DOC_SIZE_4))

full = [entry1, entry2, entry3, entry4, entry5, entry6, entry7, entry8]
signers = {1: old_key, 3: old_key, 4: old_key, 6: new_key}
note8 = tree_note(full, new_secret)
valid = build(full, signers, note8)
write("export.jsonl", valid)
# The search for the log's hand-overs, as the server answers it (the API's
# RecordedEntry: the entry, evidence included, and its hash).
write("handovers.json", [{"entries": [
    {"entry": dict(r["entry"]), "entry_hash": r["entry_hash"]}
    for r in valid
    if r["kind"] == "entry" and r["entry"]["action"] == "audit.key.rotate"
    and r["entry"]["outcome"] == "allowed"], "next_after": None}])
expected = {"export.jsonl": {"ok": True, "entries": 8, "lastSeq": 8, "treeSize": 8},
            "export-small.jsonl": {"ok": True, "entries": 4, "lastSeq": 4, "treeSize": 4}}


def line_of(records, kind, seq):
    for i, record in enumerate(records):
        if record["kind"] == kind and (record.get("seq") or record.get("entry", {}).get("seq")) == seq:
            return i
    raise KeyError((kind, seq))


# 1. A field changed (entry 2's outcome), its recorded hash kept: breaks at 2.
records = json.loads(json.dumps(valid))
records[line_of(records, "entry", 2)]["entry"]["outcome"] = "denied"
write("tampered-field.jsonl", records)
expected["tampered-field.jsonl"] = {"ok": False, "entries": 1, "brokenSeq": 2, "reason": "do not match its recorded hash"}

# 2. The checkpoint at 6 with a wrong signature (first character changed): 6.
records = json.loads(json.dumps(valid))
cp = records[line_of(records, "checkpoint", 6)]
cp["signature"] = ("A" if cp["signature"][0] != "A" else "B") + cp["signature"][1:]
write("tampered-signature.jsonl", records)
expected["tampered-signature.jsonl"] = {"ok": False, "entries": 6, "brokenSeq": 6, "reason": "signature does not verify"}

# 3. Entry 3 removed (its checkpoint left): entry 4 comes where 3 should: 3.
records = json.loads(json.dumps(valid))
del records[line_of(records, "entry", 3)]
write("tampered-removed.jsonl", records)
expected["tampered-removed.jsonl"] = {"ok": False, "entries": 2, "brokenSeq": 3, "reason": "expected entry 3 next, found entry 4"}

# 4. The last entry removed (the header still says 8): 8.
records = json.loads(json.dumps(valid))
del records[line_of(records, "entry", 8)]
write("tampered-truncated.jsonl", records)
expected["tampered-truncated.jsonl"] = {"ok": False, "entries": 7, "brokenSeq": 8, "reason": "the log's head records entries up to 8"}

# 5. The same with the header's head_seq lowered to 7: the tree checkpoint
#    of 8 still names the missing entry: 8.
records = json.loads(json.dumps(valid))
del records[line_of(records, "entry", 8)]
records[0]["head_seq"] = 7
write("tampered-truncated-header.jsonl", records)
expected["tampered-truncated-header.jsonl"] = {"ok": False, "entries": 7, "brokenSeq": 8, "reason": "a signed checkpoint covers entries up to 8"}

# 6. Entry 7 (after the last chain checkpoint) rewritten with its hash and
#    the next recomputed: the chain holds, the tree checkpoint does not:
#    breaks at 7, the first entry no verified checkpoint covers.
forged7 = dict(entry7, outcome="allowed", reason="ok")
records = build(full[:6] + [forged7, entry8], signers, note8)
write("tampered-rewritten-tail.jsonl", records)
expected["tampered-rewritten-tail.jsonl"] = {"ok": False, "entries": 8, "brokenSeq": 7, "reason": "entries 7 to 8 do not match the log's signed tree checkpoint"}

# 7. The hand-over's old signature made by the new key, and the chain
#    recomputed from there: the hand-over does not hold: 4.
forged4 = handover_entry(signer_of_old=new_key)
records = build(full[:3] + [forged4] + full[4:], signers, note8)
write("tampered-handover.jsonl", records)
expected["tampered-handover.jsonl"] = {"ok": False, "entries": 3, "brokenSeq": 4, "reason": "not signed by the audit key it hands over from"}

# 8. Every chain checkpoint removed (the tree checkpoint verifies): 1.
records = [r for r in json.loads(json.dumps(valid)) if r["kind"] != "checkpoint"]
write("tampered-no-checkpoints.jsonl", records)
expected["tampered-no-checkpoints.jsonl"] = {"ok": False, "entries": 8, "brokenSeq": 1, "reason": "no signed checkpoint covers the log"}

with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as out:
    json.dump(expected, out, indent=2)
    out.write("\n")
print("wrote", ", ".join(sorted([*expected, "handovers.json"])))
