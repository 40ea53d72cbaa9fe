// MLS (RFC 9420) for this browser, with `ts-mls`, in the CLI's ciphersuite
// and under its credential rules, so that a browser and an OpenMLS-based
// CLI sit in one thread:
// - the credential is basic, naming `USER_ID:DEVICE_ID`, and its signature
//   key is the device's enrolled Ed25519 key, the one the directory lists;
// - that key is a non-extractable WebCrypto key (device.ts): ts-mls hands
//   its signer the bytes it was given as the private key, so this browser
//   gives it a marker that is no key at all and signs with the WebCrypto
//   key whenever the marker comes back (`suiteFor`);
// - key packages travel as raw TLS `KeyPackage`s; welcomes, commits and
//   application messages as whole `MLSMessage`s;
// - groups carry the ratchet tree in the welcome (the extension), and a
//   commit may only add and remove members, as declared to the server.
//
// ts-mls state is immutable: every step returns a new state and the caller
// decides when the old one is dropped (after the server accepted a commit).
// The version is pinned (1.6.4): the sender of an application message is
// read with `decryptSenderData` from its `privateMessage.js` module, which
// the package exports but does not list in its index.

import {
  type ClientState,
  type CiphersuiteImpl,
  type Credential,
  type GroupState,
  type KeyPackage,
  type MLSMessage,
  type PrivateKeyPackage,
  type Proposal,
  type Welcome,
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeGroupState,
  decodeMlsMessage,
  defaultCapabilities,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  processMessage,
} from 'ts-mls';
import { defaultClientConfig } from 'ts-mls/clientConfig.js';
import { decodeKeyPackage, encodeKeyPackage, makeKeyPackageRef } from 'ts-mls/keyPackage.js';
import { decryptSenderData } from 'ts-mls/privateMessage.js';

import * as hex from './hex';

/** The CLI's ciphersuite. */
const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';

/** What ts-mls keeps as "the private signature key": not a key (see the top). */
const SIGNER_MARKER = new TextEncoder().encode('curbside webcrypto device key v1');

/** A key package lives 12 weeks, as OpenMLS's do. */
const KEY_PACKAGE_LIFETIME_S = 12n * 7n * 24n * 3600n;

/** A member's identity, read from its credential. */
export interface Identity {
  userId: string;
  deviceId: string;
  /** The credential's Ed25519 key, to compare with the directory's. */
  publicKey: Uint8Array;
}

export class MlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MlsError';
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The device this browser is, for MLS. */
export class MlsDevice {
  readonly userId: string;
  readonly deviceId: string;
  readonly publicKey: Uint8Array;
  readonly suite: CiphersuiteImpl;

  private constructor(userId: string, deviceId: string, publicKey: Uint8Array, suite: CiphersuiteImpl) {
    this.userId = userId;
    this.deviceId = deviceId;
    this.publicKey = publicKey;
    this.suite = suite;
  }

  static async open(userId: string, deviceId: string, keyPair: CryptoKeyPair): Promise<MlsDevice> {
    const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
    return new MlsDevice(userId, deviceId, publicKey, await suiteFor(keyPair.privateKey));
  }

  private credential(): Credential {
    return { credentialType: 'basic', identity: new TextEncoder().encode(`${this.userId}:${this.deviceId}`) };
  }

  /** A new key package: the public part to upload (raw TLS bytes), the private part to keep. */
  async keyPackage(): Promise<{ publicBytes: Uint8Array; ref: string; privatePackage: PrivateKeyPackage }> {
    const now = BigInt(Math.floor(Date.now() / 1000));
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
      this.credential(),
      defaultCapabilities(),
      { notBefore: now - 3600n, notAfter: now + KEY_PACKAGE_LIFETIME_S },
      [],
      { signKey: SIGNER_MARKER, publicKey: this.publicKey },
      this.suite,
    );
    return {
      publicBytes: encodeKeyPackage(publicPackage),
      ref: hex.encode(await makeKeyPackageRef(publicPackage, this.suite.hash)),
      privatePackage,
    };
  }

  /** Reads a claimed key package and the identity it claims (checked by the caller against the directory). */
  async readKeyPackage(bytes: Uint8Array): Promise<{ keyPackage: KeyPackage; identity: Identity }> {
    const decoded = decodeKeyPackage(bytes, 0);
    if (decoded === undefined || decoded[1] !== bytes.length) {
      throw new MlsError('a key package the server handed out could not be read');
    }
    const keyPackage = decoded[0];
    if (keyPackage.cipherSuite !== SUITE) {
      throw new MlsError('a key package is for another ciphersuite');
    }
    return { keyPackage, identity: identityOf(keyPackage.leafNode.credential, keyPackage.leafNode.signaturePublicKey) };
  }

  /** Makes a thread's group and adds the first devices: the new state, its epoch and the welcome. */
  async create(
    threadId: string,
    members: KeyPackage[],
  ): Promise<{ state: ClientState; epoch: number; welcome: Uint8Array }> {
    const own = await this.keyPackage();
    const decoded = decodeKeyPackage(own.publicBytes, 0);
    if (decoded === undefined) {
      throw new MlsError('this browser could not read its own key package');
    }
    const group = await createGroup(hex.decode(threadId), decoded[0], own.privatePackage, [], this.suite, defaultClientConfig);
    const made = await this.commit(group, members, []);
    if (made.welcome === null) {
      throw new MlsError('making the thread produced no welcome');
    }
    return { state: made.state, epoch: epochOf(made.state), welcome: made.welcome };
  }

  /** A commit that adds these key packages and removes these leaves. */
  async commit(
    state: ClientState,
    add: KeyPackage[],
    removeLeaves: number[],
  ): Promise<{ state: ClientState; commit: Uint8Array; welcome: Uint8Array | null }> {
    const proposals: Proposal[] = [
      ...add.map((keyPackage): Proposal => ({ proposalType: 'add', add: { keyPackage } })),
      ...removeLeaves.map((removed): Proposal => ({ proposalType: 'remove', remove: { removed } })),
    ];
    const result = await createCommit(
      { state, cipherSuite: this.suite, pskIndex: emptyPskIndex },
      { extraProposals: proposals, ratchetTreeExtension: true },
    );
    const welcome =
      result.welcome === undefined
        ? null
        : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome });
    return { state: result.newState, commit: encodeMlsMessage(result.commit), welcome };
  }

  /** Encrypts an application message. */
  async encrypt(state: ClientState, plaintext: Uint8Array): Promise<{ state: ClientState; ciphertext: Uint8Array }> {
    const { newState, privateMessage } = await createApplicationMessage(state, plaintext, this.suite);
    return {
      state: newState,
      ciphertext: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage }),
    };
  }

  /** The key package refs a welcome is for (to find the private part this browser kept). */
  welcomeRefs(bytes: Uint8Array): { welcome: Welcome; refs: string[] } {
    const message = decodeMessage(bytes);
    if (message.wireformat !== 'mls_welcome') {
      throw new MlsError('a welcome is not an MLS welcome');
    }
    return { welcome: message.welcome, refs: message.welcome.secrets.map((secret) => hex.encode(secret.newMember)) };
  }

  /** Joins a group from a welcome with the key package it was made for. */
  async join(welcome: Welcome, keyPackageBytes: Uint8Array, privatePackage: PrivateKeyPackage): Promise<ClientState> {
    const decoded = decodeKeyPackage(keyPackageBytes, 0);
    if (decoded === undefined) {
      throw new MlsError('a kept key package could not be read');
    }
    return joinGroup(welcome, decoded[0], privatePackage, emptyPskIndex, this.suite, undefined, undefined, defaultClientConfig);
  }

  /**
   * Decrypts another member's application message: the plaintext and who
   * sent it (the member whose leaf the sender data names; ts-mls checks
   * the signature against that leaf's key).
   */
  async decrypt(state: ClientState, bytes: Uint8Array): Promise<{ state: ClientState; plaintext: Uint8Array; sender: Identity }> {
    const message = decodeMessage(bytes);
    if (message.wireformat !== 'mls_private_message') {
      throw new MlsError('an application message is not an encrypted MLS message');
    }
    if (message.privateMessage.contentType !== 'application') {
      throw new MlsError('an application entry holds something else');
    }
    const senderData = await decryptSenderData(message.privateMessage, state.keySchedule.senderDataSecret, this.suite);
    if (senderData === undefined) {
      throw new MlsError('the sender of a message could not be read');
    }
    const sender = memberAt(state, senderData.leafIndex);
    if (sender === null) {
      throw new MlsError('a message names a sender who is not in the thread');
    }
    const result = await processMessage(message, state, emptyPskIndex, () => 'reject', this.suite);
    if (result.kind !== 'applicationMessage') {
      throw new MlsError('an application entry was not an application message');
    }
    return { state: result.newState, plaintext: result.message, sender };
  }

  /**
   * Applies another member's commit, refusing it unless it only adds and
   * removes the devices declared to the server and is sent by `sender`.
   */
  async applyCommit(
    state: ClientState,
    bytes: Uint8Array,
    senderDeviceId: string,
    declared: { add: string[]; remove: string[] },
  ): Promise<ClientState> {
    const message = decodeMessage(bytes);
    if (message.wireformat !== 'mls_private_message' && message.wireformat !== 'mls_public_message') {
      throw new MlsError('a commit entry is not an MLS handshake message');
    }
    let refused: string | null = null;
    const addedIdentities: Identity[] = [];
    const result = await processMessage(
      message,
      state,
      emptyPskIndex,
      (incoming) => {
        if (incoming.kind !== 'commit') {
          refused = 'a proposal outside a commit';
          return 'reject';
        }
        const committer = incoming.senderLeafIndex === undefined ? null : memberAt(state, incoming.senderLeafIndex);
        if (committer === null || committer.deviceId !== senderDeviceId) {
          refused = 'the commit was not made by the device the server names as its sender';
          return 'reject';
        }
        const added: string[] = [];
        const removed: string[] = [];
        for (const { proposal } of incoming.proposals) {
          if (proposal.proposalType === 'add') {
            const identity = identityOf(proposal.add.keyPackage.leafNode.credential, proposal.add.keyPackage.leafNode.signaturePublicKey);
            added.push(identity.deviceId);
            addedIdentities.push(identity);
          } else if (proposal.proposalType === 'remove') {
            const gone = memberAt(state, proposal.remove.removed);
            removed.push(gone === null ? '?' : gone.deviceId);
          } else {
            refused = `a commit may only add and remove members (it held ${proposal.proposalType})`;
            return 'reject';
          }
        }
        if (!sameSet(added, declared.add) || !sameSet(removed, declared.remove)) {
          refused = 'the commit does not match the change declared to the server';
          return 'reject';
        }
        return 'accept';
      },
      this.suite,
    );
    if (refused !== null) {
      throw new MlsError(refused);
    }
    if (result.kind !== 'newState' || result.actionTaken !== 'accept') {
      throw new MlsError('the commit was not applied');
    }
    // The members after are exactly those before, less the removed, plus
    // the added, each with the same identity and key: a committer's new
    // leaf (its key refresh) may change neither.
    const identity = (member: Identity) => `${member.userId}:${member.deviceId}:${hex.encode(member.publicKey)}`;
    const expected = members(state)
      .filter((member) => !declared.remove.includes(member.deviceId))
      .map(identity)
      .concat(addedIdentities.map(identity));
    if (!sameSet(expected, members(result.newState).map(identity))) {
      throw new MlsError('the commit changed a member’s identity or key');
    }
    return result.newState;
  }
}

function sameSet(a: string[], b: string[]): boolean {
  const left = [...a].sort();
  const right = [...b].sort();
  return left.length === right.length && left.every((value, i) => value === right[i]);
}

function decodeMessage(bytes: Uint8Array): MLSMessage {
  const decoded = decodeMlsMessage(bytes, 0);
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new MlsError('an MLS message could not be read');
  }
  return decoded[0];
}

/** A credential's identity; anything but `USER:DEVICE` (32 hex digits each) is refused. */
export function identityOf(credential: Credential, publicKey: Uint8Array): Identity {
  if (credential.credentialType !== 'basic') {
    throw new MlsError('a member credential is not a Curbside device identity');
  }
  const text = new TextDecoder('utf-8', { fatal: true }).decode(credential.identity);
  const match = /^([0-9a-f]{32}):([0-9a-f]{32})$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new MlsError('a member credential is not a Curbside device identity');
  }
  return { userId: match[1], deviceId: match[2], publicKey };
}

/** The member at a leaf, or null for a blank leaf. */
function memberAt(state: ClientState, leafIndex: number): Identity | null {
  const node = state.ratchetTree[leafIndex * 2];
  if (node === undefined || node.nodeType !== 'leaf') {
    return null;
  }
  return identityOf(node.leaf.credential, node.leaf.signaturePublicKey);
}

/** The group's members with their leaf indexes. */
export function members(state: ClientState): (Identity & { leaf: number })[] {
  const found: (Identity & { leaf: number })[] = [];
  state.ratchetTree.forEach((node, index) => {
    if (index % 2 === 0 && node !== undefined && node.nodeType === 'leaf') {
      found.push({ ...identityOf(node.leaf.credential, node.leaf.signaturePublicKey), leaf: index / 2 });
    }
  });
  return found;
}

/** The thread id a state is for: its group id, in hex. */
export function groupIdOf(state: ClientState): string {
  return hex.encode(state.groupContext.groupId);
}

export function epochOf(state: ClientState): number {
  return Number(state.groupContext.epoch);
}

/** The state's bytes, for the encrypted store. */
export function saveState(state: ClientState): Uint8Array {
  return encodeGroupState(state);
}

export function loadState(bytes: Uint8Array): ClientState {
  const decoded = decodeGroupState(bytes, 0);
  if (decoded === undefined) {
    throw new MlsError('a thread’s stored MLS state could not be read');
  }
  const state: GroupState = decoded[0];
  return { ...state, clientConfig: defaultClientConfig };
}

/** The private part of a key package, as stored. */
export function savePrivatePackage(keys: PrivateKeyPackage): { init: Uint8Array; hpke: Uint8Array } {
  return { init: keys.initPrivateKey, hpke: keys.hpkePrivateKey };
}

export function loadPrivatePackage(stored: { init: Uint8Array; hpke: Uint8Array }): PrivateKeyPackage {
  return { initPrivateKey: stored.init, hpkePrivateKey: stored.hpke, signaturePrivateKey: SIGNER_MARKER };
}

/**
 * The CLI's ciphersuite, from ts-mls's default provider (WebCrypto), with
 * a signer that signs with the device's non-extractable key whenever ts-mls
 * passes the marker, and refuses anything else: this browser has no other
 * signing key.
 */
async function suiteFor(privateKey: CryptoKey): Promise<CiphersuiteImpl> {
  const base = await getCiphersuiteImpl(getCiphersuiteFromName(SUITE));
  return {
    ...base,
    signature: {
      verify: (publicKey, message, signature) => base.signature.verify(publicKey, message, signature),
      keygen: () => base.signature.keygen(),
      async sign(signKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
        if (!sameBytes(signKey, SIGNER_MARKER)) {
          throw new MlsError('asked to sign with a key this browser does not hold');
        }
        return new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, new Uint8Array(message)));
      },
    },
  };
}
