// This browser as a Curbside device, like the CLI: an Ed25519 key pair
// made by WebCrypto as non-extractable (the private key can sign but can
// never be read out, not even by this code), kept in IndexedDB (structured
// clone keeps it non-extractable), with the device's and user's ids, the
// audit key the administrator pinned after comparing it with the one
// recorded at installation, and the last tree head this browser verified.
// Nothing else is stored: the session token stays in memory (`api.ts`).

import * as api from './api';
import * as b64 from './b64';
import { verifierString } from './audit/note';
import type { AuditKey, Challenge, Enrolled, LoggedIn, Whoami } from './types';

const DB_NAME = 'curbside-console';
const STORE = 'device';
const RECORD = 'this-browser';

/** The login message's domain-separation prefix (`LOGIN_CONTEXT`). */
const LOGIN_CONTEXT = 'curbside login v1\n';
/** Where the server publishes its audit key (`audit_review::KEY_PATH`). */
export const AUDIT_KEY_PATH = '/.well-known/curbside/audit-key';

/** What this browser keeps about its enrollment. */
export interface StoredDevice {
  keyPair: CryptoKeyPair;
  deviceId: string;
  userId: string;
  /** The name given at enrollment, to greet the user before sign-in. */
  displayName: string;
  /** The server's id, learned at enrollment; login messages name it. */
  serverId: string;
  /**
   * The audit log's Ed25519 public key, pinned by the administrator (at
   * enrollment, or later on the Audit page) after comparing it with the
   * key recorded at installation; never pinned without being shown.
   */
  auditKey: Uint8Array | null;
  /** When the audit key was pinned (absent in records from before). */
  auditKeyPinnedAtMs?: number | null;
  enrolledAtMs: number;
  /** The last tree head this browser verified the log up to (absent if none). */
  verifiedHead?: StoredHead | null;
}

/** A tree head this browser verified: the next log must extend it. */
export interface StoredHead {
  /** How many entries. */
  size: number;
  /** Their Merkle root (32 bytes). */
  root: Uint8Array;
  /** The audit key in force after them (32 bytes), and as a verifier key. */
  publicKey: Uint8Array;
  keyId: string;
  /** When it was verified. */
  atMs: number;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function openDb(): Promise<IDBDatabase> {
  const opening = indexedDB.open(DB_NAME, 1);
  opening.onupgradeneeded = () => {
    opening.result.createObjectStore(STORE);
  };
  return request(opening);
}

async function withStore<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const result = await request(run(tx.objectStore(STORE)));
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    });
    return result;
  } finally {
    db.close();
  }
}

/** The stored enrollment, if this browser has one. */
export async function loadDevice(): Promise<StoredDevice | null> {
  const found = await withStore<unknown>('readonly', (store) => store.get(RECORD));
  if (typeof found !== 'object' || found === null || !('keyPair' in found)) {
    return null;
  }
  return found as StoredDevice;
}

async function saveDevice(device: StoredDevice): Promise<void> {
  await withStore('readwrite', (store) => store.put(device, RECORD));
}

/**
 * Changes the stored record in one transaction (read, change, write), so
 * that a copy held in memory since sign-in can never write back older
 * values (a pinned key, a verified head) over newer ones. Resolves to the
 * record as stored, or null if this browser has none any more.
 */
async function updateDevice(change: (device: StoredDevice) => void): Promise<StoredDevice | null> {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, 'readwrite');
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    });
    const store = tx.objectStore(STORE);
    const found = await request<unknown>(store.get(RECORD));
    if (typeof found !== 'object' || found === null || !('keyPair' in found)) {
      tx.abort();
      await done.catch(() => undefined);
      return null;
    }
    const device = found as StoredDevice;
    try {
      change(device);
    } catch (error) {
      tx.abort();
      await done.catch(() => undefined);
      throw error;
    }
    await request(store.put(device, RECORD));
    await done;
    return device;
  } finally {
    db.close();
  }
}

/** The log's name in verifier keys and tree checkpoints. */
export function auditOrigin(serverId: string): string {
  return `curbside-audit/${serverId}`;
}

/** A raw audit key as the server prints it at start (`curbside-audit/<server_id>+<key id>+<base64>`). */
export function auditKeyString(serverId: string, publicKey: Uint8Array): Promise<string> {
  return verifierString({ name: auditOrigin(serverId), publicKey });
}

/**
 * Pins `publicKey` as this browser's audit key: only after the
 * administrator compared it with the key recorded at installation.
 */
export async function pinAuditKey(device: StoredDevice, publicKey: Uint8Array): Promise<void> {
  if (publicKey.length !== 32) {
    throw new Error('The audit key is not a 32-byte Ed25519 key; it was not pinned.');
  }
  const now = Date.now();
  const stored = await updateDevice((record) => {
    if (record.deviceId !== device.deviceId) {
      throw new Error('This browser was enrolled again meanwhile; reload the page.');
    }
    if (record.auditKey !== null && record.auditKey !== undefined) {
      // Pinning is for a browser without a key, never to replace one.
      throw new Error('An audit key is already pinned in this browser; reload the page.');
    }
    record.auditKey = publicKey.slice();
    record.auditKeyPinnedAtMs = now;
    record.verifiedHead = null;
  });
  if (stored === null) {
    throw new Error('This browser’s enrollment was deleted; the key was not pinned.');
  }
  device.auditKey = publicKey.slice();
  device.auditKeyPinnedAtMs = now;
  device.verifiedHead = null;
}

/** Remembers the tree head a verification of the whole log ended at. */
export async function rememberVerifiedHead(deviceId: string, head: StoredHead): Promise<void> {
  await updateDevice((record) => {
    if (record.deviceId === deviceId) {
      record.verifiedHead = head;
    }
  });
}

/** Deletes this browser's key and everything stored with it. */
export function forgetBrowser(): Promise<void> {
  return new Promise((resolve, reject) => {
    const deleting = indexedDB.deleteDatabase(DB_NAME);
    deleting.onsuccess = () => resolve();
    deleting.onerror = () => reject(deleting.error ?? new Error('could not delete the stored key'));
    deleting.onblocked = () => resolve();
  });
}

/** A name for this browser as a device, e.g. "Web console — Chromium 156". */
export function deviceName(): string {
  const hints = (navigator as Navigator & { userAgentData?: { brands?: { brand: string; version: string }[] } })
    .userAgentData;
  const known = ['Microsoft Edge', 'Google Chrome', 'Opera', 'Brave', 'Chromium'];
  const brand = known
    .map((name) => hints?.brands?.find((entry) => entry.brand === name))
    .find((entry) => entry !== undefined);
  let browser = brand ? `${brand.brand} ${brand.version}` : '';
  if (browser === '') {
    const agent = navigator.userAgent;
    const patterns: [RegExp, string][] = [
      [/Firefox\/(\d+)/, 'Firefox'],
      [/Edg\/(\d+)/, 'Edge'],
      [/Chrome\/(\d+)/, 'Chrome'],
      [/Version\/(\d+).*Safari/, 'Safari'],
    ];
    const found = patterns
      .map(([pattern, name]) => {
        const match = pattern.exec(agent);
        return match ? `${name} ${match[1] ?? ''}` : null;
      })
      .find((name) => name !== null);
    browser = found ?? 'browser';
  }
  return `Web console — ${browser}`.trim().slice(0, 100);
}

/** Whether this browser can make Ed25519 keys with WebCrypto. */
export function cryptoAvailable(): boolean {
  return window.isSecureContext && typeof crypto !== 'undefined' && crypto.subtle !== undefined;
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  let generated: CryptoKey | CryptoKeyPair;
  try {
    generated = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  } catch {
    throw new Error(
      'This browser cannot make an Ed25519 key with WebCrypto; use a current Chromium, Chrome, Edge, Firefox or Safari.',
    );
  }
  if (!('privateKey' in generated)) {
    throw new Error('WebCrypto did not return a key pair.');
  }
  if (generated.privateKey.extractable) {
    throw new Error('WebCrypto made an extractable private key; refusing to store it.');
  }
  return generated;
}

/** The audit key the server publishes now, to show before pinning it. */
export async function fetchAuditKey(serverId: string): Promise<Uint8Array> {
  const key = await api.getJson<AuditKey>(AUDIT_KEY_PATH, undefined, false);
  const publicKey = b64.decode(key.public_key);
  if (key.algorithm !== 'Ed25519' || publicKey.length !== 32) {
    throw new Error('The server published an audit key that is not a 32-byte Ed25519 key.');
  }
  if (key.server_id !== serverId) {
    throw new Error('The server published an audit key for another installation; it was not pinned.');
  }
  return publicKey;
}

/**
 * Enrolls this browser with a one-time code: makes its key pair, sends the
 * public half and stores both with the ids. The audit key is pinned
 * afterwards, by `pinAuditKey`, once the administrator has compared it.
 */
export async function enroll(code: string, displayName: string): Promise<StoredDevice> {
  const keyPair = await newKeyPair();
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
  const body: { code: string; device_name: string; public_key: string; display_name?: string } = {
    code: code.trim(),
    device_name: deviceName(),
    public_key: b64.encode(publicKey),
  };
  if (displayName.trim() !== '') {
    body.display_name = displayName.trim();
  }
  const enrolled = await api.sendJson<Enrolled>('POST', '/v1/enroll', body, false);
  const device: StoredDevice = {
    keyPair,
    deviceId: enrolled.device.device_id,
    userId: enrolled.user.user_id,
    displayName: enrolled.user.display_name,
    serverId: enrolled.server_id,
    auditKey: null,
    auditKeyPinnedAtMs: null,
    enrolledAtMs: Date.now(),
    verifiedHead: null,
  };
  // Stored before anything else can fail: the device exists on the server now.
  await saveDevice(device);
  return device;
}

/** The exact bytes a device signs to log in (`identity::login_message`). */
export function loginMessage(serverId: string, deviceId: string, nonce: Uint8Array): Uint8Array<ArrayBuffer> {
  const text = `${LOGIN_CONTEXT}server=${serverId}\ndevice=${deviceId}\nnonce=${b64.encode(nonce)}\n`;
  return new TextEncoder().encode(text);
}

async function login(device: StoredDevice): Promise<LoggedIn> {
  const challenge = await api.sendJson<Challenge>('POST', '/v1/auth/challenge', { device_id: device.deviceId }, false);
  // The message names the server id learned at enrollment, never one a
  // server offers now, as the CLI does.
  if (challenge.server_id !== device.serverId) {
    throw new Error(
      'This server is not the one this browser enrolled with (its id differs). Forget this browser to enroll here.',
    );
  }
  const message = loginMessage(device.serverId, device.deviceId, b64.decode(challenge.nonce));
  const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, device.keyPair.privateKey, message));
  return api.sendJson<LoggedIn>(
    'POST',
    '/v1/auth/login',
    { challenge_id: challenge.challenge_id, device_id: device.deviceId, signature: b64.encode(signature) },
    false,
  );
}

/** Signs in by challenge-response with the stored key; returns who. */
export async function signIn(device: StoredDevice): Promise<Whoami> {
  const loggedIn = await login(device);
  api.startSession(loggedIn, () => login(device));
  // The audit key is never pinned here: only when the administrator has
  // compared it (enrollment, or the Audit page).
  const me = await api.getJson<Whoami>('/v1/me');
  if (me.user.display_name !== device.displayName) {
    const name = me.user.display_name;
    device.displayName = name;
    await updateDevice((record) => {
      if (record.deviceId === device.deviceId) {
        record.displayName = name;
      }
    });
  }
  return me;
}
