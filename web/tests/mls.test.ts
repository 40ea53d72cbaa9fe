// The browser's MLS checks (src/clinician/mls.ts) against ts-mls itself,
// in Node: a commit is applied only when its committer is the device the
// server names and it adds and removes exactly what was declared, and no
// commit may change a member's identity; a message's sender is the
// member whose leaf signed it. Run by `npm run test:mls` (.ci/run).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type ClientState, encodeMlsMessage, createCommit, emptyPskIndex } from 'ts-mls';

import { MlsDevice, MlsError, epochOf, members } from '../src/clinician/mls';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function id(n: number): string {
  return n.toString(16).padStart(32, '0');
}

async function device(user: number, deviceNumber: number): Promise<MlsDevice> {
  const keyPair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  return MlsDevice.open(id(user), id(deviceNumber), keyPair);
}

async function packageOf(member: MlsDevice) {
  const made = await member.keyPackage();
  return { made, read: await member.readKeyPackage(made.publicBytes) };
}

/** Ana makes a thread with Ben; both hold it. */
async function thread(): Promise<{ ana: MlsDevice; ben: MlsDevice; anaState: ClientState; benState: ClientState }> {
  const ana = await device(1, 11);
  const ben = await device(2, 22);
  const benPackage = await packageOf(ben);
  const created = await ana.create(id(99), [benPackage.read.keyPackage]);
  const { welcome } = ben.welcomeRefs(created.welcome);
  const benState = await ben.join(welcome, benPackage.made.publicBytes, benPackage.made.privatePackage);
  return { ana, ben, anaState: created.state, benState };
}

test('a message decrypts, and names the member whose leaf sent it', async () => {
  const { ana, ben, anaState, benState } = await thread();
  const sent = await ana.encrypt(anaState, encoder.encode('hello'));
  const got = await ben.decrypt(benState, sent.ciphertext);
  assert.equal(decoder.decode(got.plaintext), 'hello');
  assert.equal(got.sender.userId, id(1));
  assert.equal(got.sender.deviceId, id(11));
});

test('a commit that adds what it declares, by the device the server names, is applied', async () => {
  const { ana, ben, anaState, benState } = await thread();
  const cal = await device(3, 33);
  const calPackage = await packageOf(cal);
  const made = await ana.commit(anaState, [calPackage.read.keyPackage], []);
  const next = await ben.applyCommit(benState, made.commit, id(11), { add: [id(33)], remove: [] });
  assert.equal(epochOf(next), epochOf(benState) + 1);
  assert.deepEqual(
    members(next).map((member) => member.deviceId).sort(),
    [id(11), id(22), id(33)],
  );
});

test('a commit unlike its declaration, or from another device than the server names, is refused', async () => {
  const { ana, ben, anaState, benState } = await thread();
  const cal = await device(3, 33);
  const made = await ana.commit(anaState, [(await packageOf(cal)).read.keyPackage], []);
  await assert.rejects(ben.applyCommit(benState, made.commit, id(11), { add: [], remove: [] }), (error: unknown) => {
    assert.ok(error instanceof MlsError);
    assert.match(error.message, /does not match the change declared/);
    return true;
  });
  await assert.rejects(ben.applyCommit(benState, made.commit, id(44), { add: [id(33)], remove: [] }), (error: unknown) => {
    assert.ok(error instanceof MlsError);
    assert.match(error.message, /not made by the device the server names/);
    return true;
  });
});

test('a commit that changes its committer’s identity is refused', async () => {
  const { ana, ben, anaState, benState } = await thread();
  // Ana's client, tampered with, claims in its refreshed leaf to be a
  // device of another user (her key, so the leaf's signature holds).
  const ownLeaf = members(anaState).find((member) => member.deviceId === id(11));
  assert.ok(ownLeaf);
  const tree = anaState.ratchetTree.slice();
  const node = tree[ownLeaf.leaf * 2];
  assert.ok(node !== undefined && node.nodeType === 'leaf');
  tree[ownLeaf.leaf * 2] = {
    ...node,
    leaf: { ...node.leaf, credential: { credentialType: 'basic', identity: encoder.encode(`${id(7)}:${id(11)}`) } },
  };
  const forged = await createCommit({ state: { ...anaState, ratchetTree: tree }, cipherSuite: ana.suite, pskIndex: emptyPskIndex });
  await assert.rejects(
    ben.applyCommit(benState, encodeMlsMessage(forged.commit), id(11), { add: [], remove: [] }),
    (error: unknown) => {
      // Refused by this check, not by ts-mls: the leaf is validly signed.
      assert.ok(error instanceof MlsError);
      assert.match(error.message, /changed a member’s identity or key/);
      return true;
    },
  );
  // Untampered, the same kind of commit (a key refresh) is applied.
  const honest = await createCommit({ state: anaState, cipherSuite: ana.suite, pskIndex: emptyPskIndex });
  const next = await ben.applyCommit(benState, encodeMlsMessage(honest.commit), id(11), { add: [], remove: [] });
  assert.equal(epochOf(next), epochOf(benState) + 1);
});
