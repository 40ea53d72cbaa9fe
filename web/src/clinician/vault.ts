// The clinician's encrypted store: MLS state and message history, kept in
// IndexedDB (`curbside-clinician`, apart from the console's database) and
// encrypted at rest. Two object stores:
//
// - `meta`, one record: the owner's user and device ids, a random 16-byte
//   salt, the PBKDF2 iteration count, and the data key wrapped (AES-GCM,
//   with its IV) under a key-encryption key derived from the passphrase by
//   PBKDF2-HMAC-SHA-256. The wrap's additional data names the owner and the
//   format, so a meta record edited to name another owner does not unlock.
// - `records`: name → `{ iv, data }`, the value encrypted with the data key
//   (AES-GCM, a fresh random IV for every write, the name as additional
//   data, so a record moved under another name does not decrypt).
//
// The data key is random (WebCrypto), never stored in the clear, and held
// in memory only as a non-extractable CryptoKey while the vault is
// unlocked; locking forgets it. Someone who reads the disk gets the
// ciphertext, the salt and the wrapped key: to read anything they must
// guess the passphrase offline, so its strength bounds the attack, and each
// guess costs 600,000 PBKDF2 iterations (OWASP's figure for SHA-256). They
// also see the record names, which are stored in the clear: callers name
// records by ids, never by content. Someone who can write the disk can
// delete records or put back an older value of the same record, but cannot
// read or forge one.
//
// IndexedDB commits a transaction as soon as it has no request pending when
// control returns to the event loop, so all encryption is done before a
// write transaction opens, and decryption after a read one completes.

/** A vault that cannot be used as asked; the message says what to do. */
export class VaultError extends Error {
  override readonly name = 'VaultError';
}

/** The enrollment (user and device) a vault belongs to. */
export interface VaultOwner {
  userId: string;
  deviceId: string;
}

export interface Vault {
  readonly owner: VaultOwner;
  get(name: string): Promise<Uint8Array | undefined>;
  /** Writes several records (a null value deletes) in ONE IndexedDB transaction, all or nothing. */
  putMany(records: [name: string, value: Uint8Array | null][]): Promise<void>;
  put(name: string, value: Uint8Array): Promise<void>;
  delete(name: string): Promise<void>;
  /** Names of stored records starting with `prefix`, sorted. */
  names(prefix: string): Promise<string[]>;
  /** Forgets the key in memory; every later call throws VaultError("locked ..."). */
  lock(): void;
  readonly locked: boolean;
}

/** The shortest passphrase createVault accepts (refuse shorter with a VaultError saying so). */
export const MIN_PASSPHRASE = 10;

const DB_NAME = 'curbside-clinician';
const DB_VERSION = 1;
const META = 'meta';
const RECORDS = 'records';
/** The one record in `meta`. */
const META_KEY = 'vault';

const FORMAT = 1;
/** PBKDF2-HMAC-SHA-256 iterations for a new vault (OWASP, 2023). */
const ITERATIONS = 600_000;
/** Stored counts outside this range are refused (a lowered count, or one that would hang the page). */
const MAX_ITERATIONS = 10 * ITERATIONS;
const SALT_BYTES = 16;
const IV_BYTES = 12;
/** AES-GCM's tag: the shortest ciphertext. */
const TAG_BYTES = 16;

/** The wrap's additional data: the format and the owner. */
const WRAP_CONTEXT = 'curbside vault v1\n';
/** A record's additional data, before its name. */
const RECORD_CONTEXT = 'curbside vault record v1\n';

const WRONG_PASSPHRASE =
  'That passphrase does not unlock this browser’s messages. Try again, or sign out and erase this browser’s ' +
  'messages to start over (your colleagues’ threads stay on their devices; this browser will not see earlier messages).';
const LOCKED = 'locked: this browser’s messages are locked; enter your passphrase to unlock them.';
const REPLACED =
  'locked: this browser’s messages were erased or replaced (in another tab, perhaps); sign in again.';
const DAMAGED =
  'The messages stored in this browser are damaged and cannot be read. Sign out and erase this browser’s ' +
  'messages to start over.';

/** The meta record as stored. */
interface StoredMeta {
  format: number;
  owner: VaultOwner;
  salt: Uint8Array;
  iterations: number;
  /** The data key, wrapped by AES-GCM under the passphrase's key. */
  wrappedKey: Uint8Array;
  /** The wrap's IV. */
  wrapIv: Uint8Array;
}

/** A record as stored. */
interface StoredRecord {
  iv: Uint8Array;
  data: Uint8Array;
}

// --- IndexedDB -------------------------------------------------------------

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

/**
 * One connection, kept open while the page lives. It closes itself when
 * another tab deletes the database (`wipeVault`), so that deletion is not
 * blocked, and the next call opens a new one.
 */
let connection: Promise<IDBDatabase> | null = null;

function openDb(): Promise<IDBDatabase> {
  if (connection === null) {
    const opening = indexedDB.open(DB_NAME, DB_VERSION);
    opening.onupgradeneeded = () => {
      opening.result.createObjectStore(META);
      opening.result.createObjectStore(RECORDS);
    };
    const opened: Promise<IDBDatabase> = request(opening).then((db) => {
      const forget = () => {
        if (connection === opened) {
          connection = null;
        }
      };
      db.onversionchange = () => {
        db.close();
        forget();
      };
      db.onclose = forget;
      return db;
    });
    opened.catch(() => {
      if (connection === opened) {
        connection = null;
      }
    });
    connection = opened;
  }
  return connection;
}

/**
 * Runs `body` in one transaction over both stores and resolves once the
 * transaction has committed. `body` must issue its requests without waiting
 * for anything but other requests of the same transaction. If it throws,
 * the transaction is aborted: nothing it wrote is kept.
 */
async function transact<T>(mode: IDBTransactionMode, body: (tx: IDBTransaction) => Promise<T>): Promise<T> {
  const db = await openDb();
  const tx = db.transaction([META, RECORDS], mode);
  const done = new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
  try {
    const result = await body(tx);
    await done;
    return result;
  } catch (error) {
    try {
      tx.abort();
    } catch {
      // Already finished or aborted.
    }
    await done.catch(() => undefined);
    throw error;
  }
}

/** The meta record as found (unchecked), or undefined. */
async function readMeta(): Promise<unknown> {
  return transact('readonly', (tx) => request<unknown>(tx.objectStore(META).get(META_KEY)));
}

/**
 * The range of string keys starting with `prefix` (undefined: all keys).
 * Keys compare by UTF-16 code units, so the end is the prefix with its last
 * unit raised by one (dropping trailing U+FFFF units, which cannot be).
 */
function prefixRange(prefix: string): IDBKeyRange | undefined {
  if (prefix === '') {
    return undefined;
  }
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xffff) {
    end -= 1;
  }
  if (end === 0) {
    return IDBKeyRange.lowerBound(prefix);
  }
  const upper = prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
  return IDBKeyRange.bound(prefix, upper, false, true);
}

// --- Checking what was read ----------------------------------------------

function isBytes(value: unknown, length?: number): value is Uint8Array {
  return value instanceof Uint8Array && (length === undefined || value.length === length);
}

/** The owner named by a meta record, or null if it names none. */
function metaOwner(found: unknown): VaultOwner | null {
  if (typeof found !== 'object' || found === null || !('owner' in found)) {
    return null;
  }
  const owner: unknown = found.owner;
  if (typeof owner !== 'object' || owner === null || !('userId' in owner) || !('deviceId' in owner)) {
    return null;
  }
  const { userId, deviceId } = owner;
  if (typeof userId !== 'string' || typeof deviceId !== 'string') {
    return null;
  }
  return { userId, deviceId };
}

/** A meta record checked field by field; VaultError if damaged. */
function parseMeta(found: unknown): StoredMeta {
  const owner = metaOwner(found);
  if (owner === null || typeof found !== 'object' || found === null) {
    throw new VaultError(DAMAGED);
  }
  const meta = found as Partial<Record<keyof StoredMeta, unknown>>;
  if (meta.format !== FORMAT) {
    throw new VaultError(
      'The messages stored in this browser were written by another version of Curbside; reload the page, or ' +
        'sign out and erase this browser’s messages to start over.',
    );
  }
  const { salt, iterations, wrappedKey, wrapIv } = meta;
  if (
    !isBytes(salt, SALT_BYTES) ||
    typeof iterations !== 'number' ||
    !Number.isSafeInteger(iterations) ||
    iterations < ITERATIONS ||
    iterations > MAX_ITERATIONS ||
    !isBytes(wrappedKey) ||
    wrappedKey.length < TAG_BYTES ||
    !isBytes(wrapIv, IV_BYTES)
  ) {
    throw new VaultError(DAMAGED);
  }
  return { format: FORMAT, owner, salt, iterations, wrappedKey, wrapIv };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

// --- Crypto ----------------------------------------------------------------

/** `bytes` as WebCrypto's BufferSource typing wants it (copied only if it must be). */
function buffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(length));
}

function wrapContext(owner: VaultOwner): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${WRAP_CONTEXT}user=${owner.userId}\ndevice=${owner.deviceId}\n`);
}

function recordContext(name: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(RECORD_CONTEXT + name);
}

/**
 * The key-encryption key: PBKDF2-HMAC-SHA-256 of the passphrase (NFC, so
 * the same words typed another way give the same key), non-extractable,
 * good only to wrap and unwrap the data key.
 */
async function deriveKek(passphrase: string, salt: Uint8Array, iterations: number): Promise<CryptoKey> {
  const secret = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(passphrase.normalize('NFC')),
    'PBKDF2',
    false,
    ['deriveKey'],
  );
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: buffer(salt), iterations },
    secret,
    { name: 'AES-GCM', length: 256 },
    false,
    ['wrapKey', 'unwrapKey'],
  );
}

/** Unwraps the data key as non-extractable; VaultError (wrong passphrase) if it does not authenticate. */
async function unwrapDataKey(kek: CryptoKey, meta: StoredMeta): Promise<CryptoKey> {
  let key: CryptoKey;
  try {
    key = await crypto.subtle.unwrapKey(
      'raw',
      buffer(meta.wrappedKey),
      kek,
      { name: 'AES-GCM', iv: buffer(meta.wrapIv), additionalData: wrapContext(meta.owner) },
      { name: 'AES-GCM' },
      false,
      ['encrypt', 'decrypt'],
    );
  } catch {
    throw new VaultError(WRONG_PASSPHRASE);
  }
  if (key.extractable || key.type !== 'secret' || (key.algorithm as AesKeyAlgorithm).length !== 256) {
    throw new VaultError(DAMAGED);
  }
  return key;
}

// --- The vault -------------------------------------------------------------

/** Every vault unlocked in this page, to lock when the store is replaced or erased. */
const openVaults = new Set<OpenVault>();

class OpenVault implements Vault {
  readonly owner: VaultOwner;
  #key: CryptoKey | null;
  /** The salt identifies this vault: a write finding another one was replaced. */
  readonly #salt: Uint8Array;

  constructor(owner: VaultOwner, key: CryptoKey, salt: Uint8Array) {
    this.owner = Object.freeze({ userId: owner.userId, deviceId: owner.deviceId });
    this.#key = key;
    this.#salt = salt;
    openVaults.add(this);
  }

  get locked(): boolean {
    return this.#key === null;
  }

  lock(): void {
    this.#key = null;
    openVaults.delete(this);
  }

  /** The data key; VaultError if locked. */
  #unlocked(): CryptoKey {
    if (this.#key === null) {
      throw new VaultError(LOCKED);
    }
    return this.#key;
  }

  /** Throws (and locks) unless the stored vault is still this one. */
  #checkMeta(found: unknown): void {
    const salt = typeof found === 'object' && found !== null && 'salt' in found ? found.salt : undefined;
    if (!isBytes(salt) || !sameBytes(salt, this.#salt)) {
      this.lock();
      throw new VaultError(REPLACED);
    }
    this.#unlocked();
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    this.#unlocked();
    const [meta, found] = await transact('readonly', (tx) =>
      Promise.all([
        request<unknown>(tx.objectStore(META).get(META_KEY)),
        request<unknown>(tx.objectStore(RECORDS).get(name)),
      ]),
    );
    this.#checkMeta(meta);
    if (found === undefined) {
      return undefined;
    }
    const record = found as Partial<StoredRecord> | null;
    const iv = record?.iv;
    const data = record?.data;
    if (!isBytes(iv, IV_BYTES) || !isBytes(data) || data.length < TAG_BYTES) {
      throw new VaultError(DAMAGED);
    }
    let plain: ArrayBuffer;
    try {
      plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: buffer(iv), additionalData: recordContext(name) },
        this.#unlocked(),
        buffer(data),
      );
    } catch {
      throw new VaultError(DAMAGED);
    }
    // Locked while decrypting: the caller gets nothing.
    this.#unlocked();
    return new Uint8Array(plain);
  }

  async putMany(records: [name: string, value: Uint8Array | null][]): Promise<void> {
    const key = this.#unlocked();
    // Encrypted first: the transaction must not wait for WebCrypto.
    const writes: [name: string, record: StoredRecord | null][] = [];
    for (const [name, value] of records) {
      if (value === null) {
        writes.push([name, null]);
        continue;
      }
      const iv = randomBytes(IV_BYTES);
      const data = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: recordContext(name) },
        key,
        buffer(value),
      );
      writes.push([name, { iv, data: new Uint8Array(data) }]);
    }
    this.#unlocked();
    if (writes.length === 0) {
      return;
    }
    await transact('readwrite', async (tx) => {
      this.#checkMeta(await request<unknown>(tx.objectStore(META).get(META_KEY)));
      const store = tx.objectStore(RECORDS);
      for (const [name, record] of writes) {
        if (record === null) {
          store.delete(name);
        } else {
          store.put(record, name);
        }
      }
    });
  }

  put(name: string, value: Uint8Array): Promise<void> {
    return this.putMany([[name, value]]);
  }

  delete(name: string): Promise<void> {
    return this.putMany([[name, null]]);
  }

  async names(prefix: string): Promise<string[]> {
    this.#unlocked();
    const [meta, keys] = await transact('readonly', (tx) =>
      Promise.all([
        request<unknown>(tx.objectStore(META).get(META_KEY)),
        request(tx.objectStore(RECORDS).getAllKeys(prefixRange(prefix))),
      ]),
    );
    this.#checkMeta(meta);
    return keys
      .filter((key): key is string => typeof key === 'string' && key.startsWith(prefix))
      .sort();
  }
}

function lockAll(): void {
  for (const vault of [...openVaults]) {
    vault.lock();
  }
}

function checkOwner(owner: VaultOwner): void {
  const bad = (id: string) => id === '' || /[\r\n]/.test(id);
  if (bad(owner.userId) || bad(owner.deviceId)) {
    throw new VaultError('The vault needs this browser’s user and device ids; sign in again.');
  }
}

/** The vault's owner if this browser has one, else null. */
export async function vaultOwner(): Promise<VaultOwner | null> {
  return metaOwner(await readMeta());
}

/**
 * Makes a new vault for `owner` under `passphrase`, replacing any vault this
 * browser has (its records are erased in the same transaction).
 */
export async function createVault(passphrase: string, owner: VaultOwner): Promise<Vault> {
  if ([...passphrase].length < MIN_PASSPHRASE) {
    throw new VaultError(`Choose a passphrase of at least ${MIN_PASSPHRASE} characters.`);
  }
  checkOwner(owner);
  const salt = randomBytes(SALT_BYTES);
  const kek = await deriveKek(passphrase, salt, ITERATIONS);
  const wrapIv = randomBytes(IV_BYTES);
  const context = wrapContext(owner);
  // The data key is extractable only to be wrapped; the vault keeps the
  // unwrapped copy, which is not (and unwrapping checks the wrap).
  const extractable = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
  const wrappedKey = new Uint8Array(
    await crypto.subtle.wrapKey('raw', extractable, kek, { name: 'AES-GCM', iv: wrapIv, additionalData: context }),
  );
  const meta: StoredMeta = {
    format: FORMAT,
    owner: { userId: owner.userId, deviceId: owner.deviceId },
    salt,
    iterations: ITERATIONS,
    wrappedKey,
    wrapIv,
  };
  const key = await unwrapDataKey(kek, meta);
  await transact('readwrite', async (tx) => {
    tx.objectStore(RECORDS).clear();
    tx.objectStore(META).put(meta, META_KEY);
  });
  // Vaults open in this page were replaced (their writes would now fail).
  lockAll();
  return new OpenVault(meta.owner, key, salt);
}

/**
 * Unlocks this browser's vault for `owner`. VaultError if there is none, if
 * it belongs to another enrollment, or if the passphrase is wrong.
 */
export async function unlockVault(passphrase: string, owner: VaultOwner): Promise<Vault> {
  const found = await readMeta();
  if (found === undefined) {
    throw new VaultError('This browser has no stored messages to unlock; set a passphrase to start.');
  }
  const meta = parseMeta(found);
  if (meta.owner.userId !== owner.userId || meta.owner.deviceId !== owner.deviceId) {
    throw new VaultError(
      'This browser’s messages belong to another enrollment (another user or device). Sign out and erase ' +
        'this browser’s messages to use it with this one.',
    );
  }
  if (passphrase === '') {
    throw new VaultError(WRONG_PASSPHRASE);
  }
  const kek = await deriveKek(passphrase, meta.salt, meta.iterations);
  const key = await unwrapDataKey(kek, meta);
  return new OpenVault(meta.owner, key, meta.salt);
}

/**
 * Erases the vault: empties both stores (at once, even if another tab
 * holds the database open), then deletes the database. Like any deletion
 * in browser storage this is logical: the old ciphertext may linger on disk
 * until the browser compacts its files, still under the old passphrase.
 */
export async function wipeVault(): Promise<void> {
  lockAll();
  await transact('readwrite', async (tx) => {
    tx.objectStore(RECORDS).clear();
    tx.objectStore(META).clear();
  });
  const db = await connection?.catch(() => null);
  db?.close();
  connection = null;
  await new Promise<void>((resolve, reject) => {
    const deleting = indexedDB.deleteDatabase(DB_NAME);
    deleting.onsuccess = () => resolve();
    deleting.onerror = () => reject(deleting.error ?? new Error('could not delete the stored messages'));
    // Another tab still has it open: it is empty already, and goes when they close.
    deleting.onblocked = () => resolve();
  });
}
