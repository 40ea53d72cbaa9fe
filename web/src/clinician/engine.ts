// The clinician's messenger: this browser as an MLS device in Curbside's
// threads, doing what the CLI's commands do (client-cli/src/conversation)
// for the screens in this folder.
//
// - Everything it knows is kept in the encrypted vault (vault.ts): one
//   record per thread (its MLS state, how far this device processed its
//   log, the decrypted history) and one per unused key package (the
//   private half a welcome is opened with). The MLS state is saved before
//   anything it produced leaves (a message, a commit, key packages), so a
//   closed tab cannot strand keys the server already holds.
// - One piece of work at a time (`serial`): the live socket, the screens
//   and catch-up all change the same states.
// - A thread's log is processed in sequence order, from where this device
//   stopped: others' commits are applied only if they add and remove just
//   the devices declared to the server, and every member is checked
//   against the directory (a different key is an error); an application
//   message's MLS sender must be the device the server names. This
//   device's own messages cannot be decrypted by it (MLS), so it keeps
//   what it sent until the log reaches it; its own commit is applied only
//   once the server accepted it, and only when the log reaches it, after
//   what others sent before it in the old epoch.
// - Live delivery is the WebSocket, opened with a single-use ticket (a
//   browser's WebSocket cannot send an Authorization header, and a token
//   never goes in a URL); nothing depends on it: catch-up reads the log.
// - Files (attachment.ts) are encrypted here and uploaded before the
//   message that carries their keys; a reader downloads, decrypts and
//   checks one only when asked (a preview, a download), and keeps no
//   decrypted file: the vault holds only what opens it, inside the message.
// - Disappearing messages: the thread's lifespan, as the log and the
//   server's summary say, deletes what is older from the vault and the
//   views, at every save, on opening and every few seconds.
// - Urgent messages (clinical.ts): sent with the server's flag, shown with
//   who acknowledged them (the server's word, live); a re-alert is shown
//   above every screen. The server cannot change an MLS group, so it asks
//   member clients to (`GET /v1/membership/pending`): after every catch-up
//   this device commits, in one commit per thread, the adds of devices
//   missing from a group (a member's new device, the backup an escalation
//   reached) and the removals of devices that are no longer members, and
//   passes an escalated urgent message on to the backup, who could not
//   decrypt it (MLS gives newcomers no earlier keys).

import * as api from '../api';
import * as b64 from '../b64';
import * as attachment from './attachment';
import { type ForwardContent, type PendingAdd, type PendingMembership, type UrgentEvent, type UrgentStatus, notifyRealert, readForward, roleViews } from './clinical';
import type { StoredDevice } from '../device';
import type { Me } from '../state';
import * as hex from './hex';
import { lifespanNotice, MAX_LIFESPAN_S } from './lifespan';
import {
  type AttachmentView,
  type ConnectionStatus,
  type LeftInfo,
  type MemberView,
  type MessageKind,
  type MessageView,
  type Messenger,
  type Person,
  type ReceiptsView,
  type RoleView,
  type ThreadView,
  type UrgentAlertView,
  type UrgentView,
} from './model';
import { type Identity, MlsDevice, MlsError, epochOf, groupIdOf, loadPrivatePackage, loadState, members, savePrivatePackage, saveState } from './mls';
import type { Vault } from './vault';
import type { ClinicalRoleList } from '../types';
import type { ClientState } from 'ts-mls';

/** Top up when fewer than this many key packages are left, as the CLI does. */
const KEY_PACKAGES_LOW = 10;
const KEY_PACKAGES_BATCH = 30;
/** Entries asked for per page. */
const PAGE = 100;
/** A message or commit that meets a newer epoch (409) catches up and tries again this often. */
const ATTEMPTS = 5;
/** How often what outlived its thread's lifespan is deleted while the messenger is open. */
const PURGE_EVERY_MS = 5000;
/** The most files one message may carry (the server's limit). */
const MAX_ATTACHMENTS = 20;
/** The longest file name a message may give, in UTF-8 bytes (the server's limit). */
const MAX_NAME_BYTES = 255;
/** How often the server is asked which membership changes this device should commit, besides after each catch-up. */
const PENDING_EVERY_MS = 10_000;
/** How long a thread whose pending change failed is left alone before this device tries again. */
const PENDING_PAUSE_MS = 60_000;

// ---- The API's shapes (curbside_proto::threads and ::identity) ----

interface DirectoryDevice {
  device_id: string;
  device_name: string;
  public_key: string;
}
interface DirectoryEntry {
  user_id: string;
  display_name: string;
  role: string;
  department: string;
  devices: DirectoryDevice[];
}
interface ThreadEntry {
  seq: number;
  kind: 'commit' | 'application' | 'recall' | 'lifespan';
  epoch: number;
  sender_user: string;
  sender_device: string;
  created_at_ms: number;
  body: string;
  change?: { add: string[]; remove: string[] } | null;
  /** For a recall, the message it recalls. */
  recalls?: number | null;
  /** For a `lifespan` entry, the thread's new lifespan (absent: off). */
  lifespan_s?: number | null;
  /** An application message the server's sweep erased (lifespan, retention): its body is empty. */
  purged_at_ms?: number | null;
  /** An urgent message (absent: not urgent). */
  urgent?: boolean;
}
interface MembershipEnded {
  seq: number;
  at_ms: number;
  by_user?: string | null;
  reason: string;
}
interface EntryPage {
  entries: ThreadEntry[];
  last_seq: number;
  ended?: MembershipEnded | null;
}
interface WelcomeItem {
  welcome_id: string;
  thread_id: string;
  epoch: number;
  joined_seq: number;
  welcome: string;
}
interface ThreadSummary {
  thread_id: string;
  epoch: number;
  last_seq: number;
  unread: number;
  /** The thread's lifespan (seconds), absent when off. */
  lifespan_s?: number | null;
}
interface ThreadDetail {
  summary: ThreadSummary;
  members: { user_id: string; device_id: string; delivered_seq: number }[];
  read: { user_id: string; read_seq: number }[];
  /** The thread's urgent messages, newest first (absent from servers before them). */
  urgent?: UrgentStatus[];
}
type ServerEvent =
  | { type: 'entry'; thread_id: string; entry: ThreadEntry }
  | { type: 'welcome'; welcome: WelcomeItem }
  | { type: 'receipt'; thread_id: string; kind: string; user_id: string; device_id: string; seq: number }
  | UrgentEvent;

// ---- What the vault keeps ----

/**
 * A file as a message carries it (`curbside_proto::attachment::AttachmentRef`),
 * kept in this shape in the vault too: the key only ever in the vault and
 * inside MLS messages.
 */
interface AttachmentRef {
  id: string;
  /** 32 bytes, unpadded base64url. */
  key: string;
  /** Of the plaintext, lower-case hex. */
  sha256: string;
  name: string;
  media_type: string;
  size: number;
}

interface StoredMessage {
  seq: number;
  kind: MessageKind;
  text: string;
  senderUserId: string;
  senderName: string;
  /** The server's time of the entry: what a lifespan counts from. */
  atMs: number;
  /** A text message's files (absent in records from before attachments). */
  attachments?: AttachmentRef[];
  /**
   * The thread's lifespan (seconds) when it was written: a lifespan
   * applies to what is written while it is in force, never to older
   * messages (absent or null: it stays).
   */
  lifespanS?: number | null;
  /** An urgent message, as the server flagged its entry (absent: not urgent). */
  urgent?: true;
  /** A `forward`: the urgent message it passes on (its text is `text`). */
  forward?: Forwarded;
}

/** The urgent message a `forward` passes on, as kept. */
interface Forwarded {
  seq: number;
  senderUserId: string;
  senderName: string;
  sentAtMs: number;
}

interface ThreadRecord {
  threadId: string;
  /** The MLS state (base64url of ts-mls's encoding); null once the thread was left. */
  state: string | null;
  /** The last log entry this device processed. */
  processedSeq: number;
  subject: string | null;
  /** Display names of the members' users, by id, as last seen. */
  names: Record<string, string>;
  messages: StoredMessage[];
  /** The epoch of the MLS state held, kept after leaving: a welcome must bring a later one. */
  epoch: number;
  /** What this device sent that the log has not reached yet, by sequence number. */
  own: Record<string, Sent>;
  /**
   * What this device is sending, by the SHA-256 of its ciphertext: kept
   * before it leaves, so a message the server took without the answer
   * reaching this browser is still shown as written when the log brings it.
   */
  sending: Record<string, Sent>;
  /**
   * This device's commit (its bytes), accepted by the server (or
   * unanswered: seq null), waiting for the log to reach it.
   */
  pending: { seq: number | null; epoch: number; commit: string; state: string } | null;
  left: { byUserId: string | null; atMs: number; reason: string } | null;
  /** The highest read receipt sent. */
  readSent: number;
  /** Disappearing messages: seconds, null (or absent, in older records) when off. */
  lifespanS?: number | null;
}

interface Sent {
  kind: MessageKind;
  text: string;
  atMs: number;
  attachments?: AttachmentRef[];
  /** The thread's lifespan when it was sent (see StoredMessage). */
  lifespanS?: number | null;
  /** For a `forward`, what it passes on. */
  forward?: Forwarded;
}

/** A thread this browser has just made or joined, at `epoch`. */
function newRecord(threadId: string, epoch: number): ThreadRecord {
  return {
    threadId,
    state: null,
    processedSeq: 0,
    subject: null,
    names: {},
    messages: [],
    epoch,
    own: {},
    sending: {},
    pending: null,
    left: null,
    readSent: 0,
    lifespanS: null,
  };
}

/**
 * What a lifespan erases: what was written (messages, subjects, and what
 * stands in for them); what happened to the thread (members, lifespans)
 * stays, as the server keeps it.
 */
const EXPIRING: ReadonlySet<MessageKind> = new Set<MessageKind>(['text', 'forward', 'subject', 'undecryptable', 'recalled']);

/** What a user writes (and reads, and is counted unread): text, and an urgent message passed on. */
const WRITTEN: ReadonlySet<MessageKind> = new Set<MessageKind>(['text', 'forward']);

/**
 * Whether a message has outlived the lifespan it was written under at
 * `now` (as the server's sweep erases it: each message by the lifespan in
 * force when it was sent).
 */
function expired(message: { kind: MessageKind; atMs: number; lifespanS?: number | null }, now: number): boolean {
  const lifespan = message.lifespanS ?? null;
  return lifespan !== null && EXPIRING.has(message.kind) && message.atMs < now - lifespan * 1000;
}

/** The SHA-256 of a (base64url) body, hex: how a sent message is found again. */
async function digestOf(body: string): Promise<string> {
  return hex.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(body))));
}

interface StoredKeyPackage {
  publicBytes: string;
  init: string;
  hpke: string;
  lastResort: boolean;
}

const THREAD_PREFIX = 'thread/';
const KEY_PACKAGE_PREFIX = 'kp/';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function pack(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function unpack<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}

/**
 * What travels inside an application message (`curbside_proto::content`).
 * Keys in this order (the CLI's); `attachments` only when there are some,
 * so a message without files is what older clients read.
 */
type Content = { type: 'text'; text: string; attachments?: AttachmentRef[] } | { type: 'subject'; subject: string } | ForwardContent;

const ATTACHMENT_KEYS = 'id,key,media_type,name,sha256,size';

/** A file name a message may give (the server's rule): no path, not empty, at most 255 bytes. */
function isFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[\/\\\0]/.test(name) && encoder.encode(name).length <= MAX_NAME_BYTES;
}

/** An attachment as a message carries it, if it is well formed (`AttachmentRef::is_well_formed`). */
function readAttachment(value: unknown): AttachmentRef | null {
  if (typeof value !== 'object' || value === null || Object.keys(value).sort().join(',') !== ATTACHMENT_KEYS) {
    return null;
  }
  const { id, key, sha256, name, media_type, size } = value as Record<string, unknown>;
  if (
    typeof id !== 'string' ||
    !/^[0-9a-f]{32}$/.test(id) ||
    typeof key !== 'string' ||
    typeof sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(sha256) ||
    typeof name !== 'string' ||
    !isFileName(name) ||
    typeof media_type !== 'string' ||
    typeof size !== 'number' ||
    !Number.isSafeInteger(size) ||
    size < 0
  ) {
    return null;
  }
  try {
    if (b64.decode(key).length !== attachment.KEY_BYTES) {
      return null;
    }
  } catch {
    return null;
  }
  return { id, key, sha256, name, media_type, size };
}

function readContent(bytes: Uint8Array): Content {
  const text = decoder.decode(bytes);
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null) {
      const keys = Object.keys(value).sort().join(',');
      const record = value as Record<string, unknown>;
      if (keys === 'text,type' && record['type'] === 'text' && typeof record['text'] === 'string') {
        return { type: 'text', text: record['text'] };
      }
      const files = record['attachments'];
      if (keys === 'attachments,text,type' && record['type'] === 'text' && typeof record['text'] === 'string' && Array.isArray(files)) {
        // A file that is not well formed could not be opened safely: it is left out.
        const attachments = files.map(readAttachment).filter((file): file is AttachmentRef => file !== null);
        return { type: 'text', text: record['text'], attachments };
      }
      if (keys === 'subject,type' && record['type'] === 'subject' && typeof record['subject'] === 'string') {
        return { type: 'subject', subject: record['subject'] };
      }
      const forward = record['type'] === 'forward' ? readForward(record) : null;
      if (forward !== null) {
        return forward;
      }
    }
  } catch {
    // Not JSON: an older client's plain text.
  }
  return { type: 'text', text };
}

/** The receipt a device signs (`curbside_proto::threads::receipt_message`). */
function receiptMessage(serverId: string, deviceId: string, threadId: string, kind: 'delivered' | 'read', through: number, timeMs: number): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    `curbside receipt v1\nserver=${serverId}\ndevice=${deviceId}\nthread=${threadId}\nkind=${kind}\nthrough=${through}\ntime_ms=${timeMs}\n`,
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The Web Lock one messenger per browser holds (see `openMessenger`). */
const MESSENGER_LOCK = 'curbside-messenger';

/**
 * Opens the messenger on the unlocked vault. One tab at a time: two
 * messengers on one device's state would each fall behind the other's
 * and spend the same keys, so a second tab is refused while the first
 * holds the lock (a Web Lock, released when it closes or the tab goes).
 */
export async function openMessenger(me: Me, device: StoredDevice, vault: Vault): Promise<Messenger> {
  let release: () => void = () => undefined;
  const held = await new Promise<boolean>((resolve) => {
    void navigator.locks.request(MESSENGER_LOCK, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise<void>((done) => (release = done));
    });
  });
  if (!held) {
    throw new Error('Curbside is open in another tab of this browser: use that one, or close it and try again here.');
  }
  try {
    const mls = await MlsDevice.open(me.userId, me.deviceId, device.keyPair);
    const engine = new Engine(me, device, vault, mls, release);
    for (const name of await vault.names(THREAD_PREFIX)) {
      const bytes = await vault.get(name);
      if (bytes !== undefined) {
        const record = unpack<ThreadRecord>(bytes);
        engine.records.set(record.threadId, record);
      }
    }
    engine.start();
    return engine;
  } catch (error) {
    release();
    throw error;
  }
}

class Engine implements Messenger {
  readonly me: Me;
  readonly records = new Map<string, ThreadRecord>();
  private readonly device: StoredDevice;
  private readonly vault: Vault;
  private readonly mls: MlsDevice;
  private readonly listeners = new Set<() => void>();
  private readonly unread = new Map<string, number>();
  private readonly receiptViews = new Map<string, ReceiptsView>();
  private readonly directory = new Map<string, { entry: DirectoryEntry | null; atMs: number }>();
  /** Per thread, its urgent messages by sequence number, as the server last said. */
  private readonly urgentStatus = new Map<string, Map<number, UrgentStatus>>();
  /** Re-alerted urgent messages, by thread and the sequence number acknowledging them acknowledges. */
  private readonly realerts = new Map<string, Omit<UrgentAlertView, 'subject'>>();
  /** A look at the pending membership changes is queued (they come in bursts: one look serves them). */
  private pendingQueued = false;
  /**
   * Threads whose pending change failed, until when they are left alone:
   * each try claims the newcomers' key packages, which a change the
   * server keeps refusing would otherwise use up every few seconds.
   */
  private readonly pendingPaused = new Map<string, number>();
  private queue: Promise<unknown> = Promise.resolve();
  private connection: ConnectionStatus = 'connecting';
  private error: string | null = null;
  private socket: WebSocket | null = null;
  private retryMs = 1000;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private purgeTimer: ReturnType<typeof setInterval> | null = null;
  private pendingTimer: ReturnType<typeof setInterval> | null = null;
  private closed = false;
  /** Lets another tab open a messenger (see `openMessenger`). */
  private readonly releaseLock: () => void;

  constructor(me: Me, device: StoredDevice, vault: Vault, mls: MlsDevice, releaseLock: () => void) {
    this.me = me;
    this.device = device;
    this.vault = vault;
    this.mls = mls;
    this.releaseLock = releaseLock;
  }

  // ---- Messenger: what the screens read ----

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): ConnectionStatus {
    return this.connection;
  }

  lastError(): string | null {
    return this.error;
  }

  threads(): ThreadView[] {
    const views = [...this.records.values()].map((record) => this.view(record));
    const activity = (view: ThreadView) => view.lastActivityMs ?? 0;
    return views.sort((a, b) => Number(a.left !== null) - Number(b.left !== null) || activity(b) - activity(a));
  }

  thread(threadId: string): ThreadView | null {
    const record = this.records.get(threadId);
    return record === undefined ? null : this.view(record);
  }

  messages(threadId: string): MessageView[] {
    const record = this.records.get(threadId);
    if (record === undefined) {
      return [];
    }
    // Expired since the last purge: not shown, even for the seconds until the next one.
    const now = Date.now();
    return record.messages
      .filter((message) => !expired(message, now))
      .map(({ attachments, urgent, forward, ...message }) => ({
        ...message,
        attachments: (attachments ?? []).map((file): AttachmentView => ({ id: file.id, name: file.name, mediaType: file.media_type, size: file.size })),
        mine: message.senderUserId === this.me.userId,
        // A forward always asks for an acknowledgement, of the message it passes on.
        urgent: urgent === true || forward !== undefined ? this.urgentView(record, message.senderUserId, forward ?? null, message.seq) : null,
        forward: forward === undefined ? null : { seq: forward.seq, senderName: forward.senderName, sentAtMs: forward.sentAtMs },
      }));
  }

  /**
   * An urgent message's acknowledgements (for a forward, the original's).
   * Its sender (of the forward, or of the original) is not asked to
   * acknowledge it: the server refuses that.
   */
  private urgentView(record: ThreadRecord, senderUserId: string, forward: Forwarded | null, seq: number): UrgentView {
    const target = forward?.seq ?? seq;
    const status = this.urgentStatus.get(record.threadId)?.get(target);
    const acks = (status?.acks ?? []).map((ack) => ({ userId: ack.user_id, displayName: this.knownName(record, ack.user_id), atMs: ack.at_ms }));
    const sentByMe = [senderUserId, forward?.senderUserId, status?.sender_user].includes(this.me.userId);
    const escalatedTo = status?.escalated_to ?? null;
    return {
      seq: target,
      stage: status?.stage ?? null,
      acks,
      canAcknowledge: record.left === null && !sentByMe && !acks.some((ack) => ack.userId === this.me.userId),
      escalatedToName: escalatedTo === null ? null : this.knownName(record, escalatedTo),
    };
  }

  /** A user's name as this thread knows it, without asking the directory. */
  private knownName(record: ThreadRecord, userId: string): string {
    return userId === this.me.userId ? this.me.displayName : (record.names[userId] ?? 'A colleague');
  }

  alerts(): UrgentAlertView[] {
    const shown: UrgentAlertView[] = [];
    for (const [key, alert] of this.realerts) {
      const record = this.records.get(alert.threadId);
      const acked = this.urgentStatus.get(alert.threadId)?.get(alert.seq)?.acks.some((ack) => ack.user_id === this.me.userId);
      if (record === undefined || record.left !== null || acked === true) {
        this.realerts.delete(key);
        continue;
      }
      shown.push({ ...alert, subject: record.subject });
    }
    return shown;
  }

  members(threadId: string): MemberView[] {
    const record = this.records.get(threadId);
    const state = record === undefined ? null : this.stateOf(record);
    if (record === undefined || state === null) {
      return [];
    }
    const byUser = new Map<string, number>();
    for (const member of members(state)) {
      byUser.set(member.userId, (byUser.get(member.userId) ?? 0) + 1);
    }
    return [...byUser.entries()]
      .map(([userId, devices]) => ({
        userId,
        displayName: userId === this.me.userId ? this.me.displayName : (record.names[userId] ?? 'A former colleague'),
        devices,
        me: userId === this.me.userId,
      }))
      .sort((a, b) => Number(b.me) - Number(a.me) || a.displayName.localeCompare(b.displayName));
  }

  receipts(threadId: string): ReceiptsView | null {
    return this.receiptViews.get(threadId) ?? null;
  }

  async refreshReceipts(threadId: string): Promise<void> {
    const record = this.records.get(threadId);
    if (record === undefined || record.left !== null) {
      return;
    }
    const detail = await api.getJson<ThreadDetail>(`/v1/threads/${api.seg(threadId)}`);
    this.unread.set(threadId, detail.summary.unread);
    const users = new Map<string, { deliveredSeq: number; readSeq: number }>();
    for (const member of detail.members) {
      if (member.user_id === this.me.userId) {
        continue;
      }
      const seen = users.get(member.user_id);
      users.set(member.user_id, {
        deliveredSeq: Math.min(seen?.deliveredSeq ?? Number.MAX_SAFE_INTEGER, member.delivered_seq),
        readSeq: 0,
      });
    }
    for (const read of detail.read) {
      const seen = users.get(read.user_id);
      if (seen !== undefined) {
        seen.readSeq = read.read_seq;
      }
    }
    this.receiptViews.set(threadId, {
      users: [...users.entries()].map(([userId, seqs]) => ({
        userId,
        displayName: record.names[userId] ?? 'A former colleague',
        ...seqs,
      })),
    });
    if (detail.urgent !== undefined) {
      this.urgentStatus.set(threadId, new Map(detail.urgent.map((status) => [status.seq, status])));
      for (const status of detail.urgent) {
        await this.nameUrgent(record, status);
      }
    }
    this.changed();
  }

  /** Learns the names of who acknowledged an urgent message, and of its backup (not always members). */
  private async nameUrgent(record: ThreadRecord, status: UrgentStatus): Promise<void> {
    for (const userId of [...status.acks.map((ack) => ack.user_id), ...(status.escalated_to ? [status.escalated_to] : [])]) {
      await this.nameOf(record, userId);
    }
  }

  async roles(): Promise<RoleView[]> {
    return roleViews(await api.getJson<ClinicalRoleList>('/v1/directory/roles'));
  }

  async acknowledge(threadId: string, seq: number): Promise<void> {
    // Not behind the queue: an acknowledgement changes no MLS state, and
    // should not wait for a catch-up.
    const record = this.current(threadId);
    this.checkOpen();
    const status = await api.sendJson<UrgentStatus>('POST', `/v1/threads/${api.seg(threadId)}/ack`, { seq });
    this.learnUrgent(record, status);
    await this.nameUrgent(record, status);
    this.changed();
  }

  private learnUrgent(record: ThreadRecord, status: UrgentStatus): void {
    const statuses = this.urgentStatus.get(record.threadId) ?? new Map<number, UrgentStatus>();
    statuses.set(status.seq, status);
    this.urgentStatus.set(record.threadId, statuses);
  }

  async searchDirectory(query: string): Promise<Person[]> {
    const page = await api.getJson<{ entries: DirectoryEntry[] }>('/v1/directory', { q: query, limit: 50 });
    return page.entries
      .map((entry) => ({ userId: entry.user_id, displayName: entry.display_name, department: entry.department || null }));
  }

  async safetyNumber(userId: string): Promise<string> {
    const other = await this.lookUp(userId, true);
    const mine = await this.lookUp(this.me.userId, true);
    if (other === null || mine === null) {
      throw new Error('That colleague is not in the directory any more (deactivated?), so there is no safety number to compare.');
    }
    const keys = new Map<string, [string, string, Uint8Array]>();
    for (const entry of [other, mine]) {
      for (const device of entry.devices) {
        keys.set(`${entry.user_id}\n${device.device_id}`, [entry.user_id, device.device_id, b64.decode(device.public_key)]);
      }
    }
    // As the CLI: sorted by user then device (ids are unique), hashed after a label.
    const sorted = [...keys.values()].sort((a, b) => (a[0] === b[0] ? compare(a[1], b[1]) : compare(a[0], b[0])));
    const parts: Uint8Array[] = [encoder.encode('curbside safety number v1\n')];
    for (const [user, device, key] of sorted) {
      parts.push(encoder.encode(user), encoder.encode(device), key);
    }
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', concat(parts)));
    const groups: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      const value = ((digest[i * 4]! << 24) | (digest[i * 4 + 1]! << 16) | (digest[i * 4 + 2]! << 8) | digest[i * 4 + 3]!) >>> 0;
      groups.push(String(value % 100_000).padStart(5, '0'));
    }
    return groups.join(' ');
  }

  // ---- Messenger: what the screens do ----

  createThread(userIds: string[], subject: string, roleIds: string[] = []): Promise<string> {
    return this.serial(async () => {
      const wanted = new Set(userIds);
      if (roleIds.length > 0) {
        // Whoever holds the role at this moment, not when the page listed it.
        const list = await api.getJson<ClinicalRoleList>('/v1/directory/roles');
        for (const roleId of roleIds) {
          const role = list.roles.find((listed) => listed.role_id === roleId);
          if (role === undefined) {
            throw new Error('That role no longer exists: choose another, or colleagues by name.');
          }
          if (role.holder === null) {
            throw new Error(`Nobody holds ${role.name} right now: choose a colleague by name, or another role.`);
          }
          if (role.holder.user_id === this.me.userId && wanted.size === 0 && roleIds.length === 1) {
            throw new Error(`You hold ${role.name} yourself right now: choose a colleague to start a thread with.`);
          }
          wanted.add(role.holder.user_id);
        }
      }
      const colleagues = [...wanted].filter((id) => id !== this.me.userId);
      if (colleagues.length === 0) {
        throw new Error('Choose at least one colleague to start a thread with.');
      }
      // This user's other devices come along, as with the CLI.
      const claimed = await this.claim(this.me.userId, false);
      for (const userId of colleagues) {
        claimed.push(...(await this.claim(userId, true)));
      }
      const threadId = hex.encode(crypto.getRandomValues(new Uint8Array(16)));
      const made = await this.mls.create(
        threadId,
        claimed.map((package_) => package_.keyPackage),
      );
      await api.sendJson('POST', '/v1/threads', {
        thread_id: threadId,
        epoch: made.epoch,
        devices: claimed.map((package_) => package_.identity.deviceId),
        welcome: b64.encode(made.welcome),
      });
      const record = newRecord(threadId, made.epoch);
      record.state = b64.encode(saveState(made.state));
      await this.rememberNames(record, made.state);
      this.records.set(threadId, record);
      await this.saveThread(record);
      const trimmed = subject.trim();
      if (trimmed !== '') {
        await this.sendContent(record, { type: 'subject', subject: trimmed });
      }
      this.changed();
      return threadId;
    });
  }

  async send(threadId: string, text: string, files: File[] = [], urgent = false): Promise<void> {
    const written = text.trim() === '' ? '' : text;
    if (written === '' && files.length === 0) {
      throw new Error('Type a message or attach a file first.');
    }
    if (files.length > MAX_ATTACHMENTS) {
      throw new Error(`A message can carry at most ${MAX_ATTACHMENTS} files.`);
    }
    for (const file of files) {
      if (file.size > attachment.MAX_FILE_BYTES) {
        throw new Error(tooLarge(file.name));
      }
    }
    this.current(threadId);
    // Encrypted and uploaded outside the one-at-a-time queue: a large file
    // does not hold up live delivery. An upload no message names is the
    // server's to clean up.
    const attachments: AttachmentRef[] = [];
    for (const file of files) {
      attachments.push(await this.upload(threadId, file));
    }
    await this.serial(async () => {
      const record = this.current(threadId);
      await this.catchUp(record);
      await this.sendContent(
        record,
        attachments.length === 0 ? { type: 'text', text: written } : { type: 'text', text: written, attachments },
        urgent,
      );
    });
  }

  async openAttachment(threadId: string, seq: number, attachmentId: string): Promise<Uint8Array<ArrayBuffer>> {
    this.checkOpen();
    const record = this.records.get(threadId);
    const now = Date.now();
    const message = record?.messages.find((kept) => kept.seq === seq && !expired(kept, now));
    // The key comes from the vault's copy of the message, never from the screens.
    const file = message?.attachments?.find((kept) => kept.id === attachmentId);
    if (record === undefined || file === undefined) {
      throw new Error('That file is no longer in this thread.');
    }
    let ciphertext: Uint8Array<ArrayBuffer>;
    try {
      ciphertext = await api.getBytes(`/v1/threads/${api.seg(threadId)}/attachments/${api.seg(file.id)}`, attachment.sealedSize(file.size));
    } catch (error) {
      if (error instanceof api.ApiError && error.status === 404) {
        throw new Error('The server no longer has this file: it was recalled or has expired, or it was sent before this browser joined the thread.');
      }
      throw error;
    }
    const plaintext = await attachment.open(b64.decode(file.key), file.sha256, ciphertext);
    if (plaintext.length !== file.size) {
      // The digest matched, so the sender named the wrong size: still not what was described.
      throw new attachment.AttachmentError('the file is not the size its message says');
    }
    this.checkOpen();
    return plaintext;
  }

  setLifespan(threadId: string, lifespanS: number | null): Promise<void> {
    return this.serial(async () => {
      if (lifespanS !== null && (!Number.isSafeInteger(lifespanS) || lifespanS < 1 || lifespanS > MAX_LIFESPAN_S)) {
        throw new Error('Choose a lifespan from one second to ten years, or off.');
      }
      const record = this.current(threadId);
      this.checkOpen();
      await api.sendJson('PUT', `/v1/threads/${api.seg(threadId)}/lifespan`, { lifespan_s: lifespanS });
      // The log's entry changes the record, here as for every member.
      await this.catchUp(record);
    });
  }

  recall(threadId: string, seq: number): Promise<void> {
    return this.serial(async () => {
      const record = this.current(threadId);
      this.checkOpen();
      await api.sendJson('POST', `/v1/threads/${api.seg(threadId)}/recall`, { seq });
      await this.catchUp(record);
    });
  }

  addMember(threadId: string, userId: string): Promise<void> {
    return this.serial(async () => {
      const record = this.current(threadId);
      await this.catchUp(record);
      const state = this.requireState(record);
      if (members(state).some((member) => member.userId === userId)) {
        throw new Error(`${record.names[userId] ?? 'That colleague'} is already in this thread.`);
      }
      const claimed = await this.claim(userId, true);
      await this.commitChange(record, claimed, []);
      if (record.subject !== null) {
        // Newcomers read nothing from before they joined.
        await this.sendContent(record, { type: 'subject', subject: record.subject });
      }
    });
  }

  removeMember(threadId: string, userId: string): Promise<void> {
    return this.serial(async () => {
      if (userId === this.me.userId) {
        throw new Error('To leave a thread, use `curbside thread leave THREAD`; this page removes colleagues.');
      }
      const record = this.current(threadId);
      await this.catchUp(record);
      const leaves = members(this.requireState(record)).filter((member) => member.userId === userId);
      if (leaves.length === 0) {
        throw new Error(`${record.names[userId] ?? 'That colleague'} is not in this thread.`);
      }
      await this.commitChange(record, [], leaves);
    });
  }

  markRead(threadId: string): Promise<void> {
    return this.serial(async () => {
      const record = this.records.get(threadId);
      if (record === undefined || record.left !== null || record.processedSeq <= record.readSent) {
        return;
      }
      const through = record.processedSeq;
      await this.receipt(threadId, 'read', through);
      record.readSent = through;
      this.unread.set(threadId, 0);
      await this.saveThread(record);
      this.changed();
    });
  }

  close(): void {
    if (!this.closed) {
      this.releaseLock();
    }
    this.closed = true;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
    }
    if (this.purgeTimer !== null) {
      clearInterval(this.purgeTimer);
    }
    if (this.pendingTimer !== null) {
      clearInterval(this.pendingTimer);
    }
    this.socket?.close(1000, 'closed');
    this.socket = null;
    this.records.clear();
    this.urgentStatus.clear();
    this.realerts.clear();
    this.listeners.clear();
  }

  // ---- Starting, live delivery ----

  start(): void {
    // What expired while the page was closed goes first (the views never
    // show what has expired, purged yet or not).
    const purge = () => void this.serial(() => this.purgeAll()).catch((error: unknown) => this.fail(error));
    purge();
    void this.serial(() => this.syncAll()).catch((error: unknown) => this.fail(error));
    this.purgeTimer = setInterval(purge, PURGE_EVERY_MS);
    this.pendingTimer = setInterval(() => this.schedulePending(), PENDING_EVERY_MS);
    this.connect();
  }

  /** Deletes what outlived its thread's lifespan, from memory and the vault, and tells the screens. */
  private async purgeAll(): Promise<void> {
    let changed = false;
    for (const record of this.records.values()) {
      if (purgeExpired(record, Date.now())) {
        await this.saveThread(record);
        changed = true;
      }
    }
    if (changed) {
      this.changed();
    }
  }

  /**
   * Takes the server's lifespan for a thread, unless this device has read
   * further in its log than the summary knew; whether it changed.
   */
  private learnLifespan(record: ThreadRecord, summary: ThreadSummary): boolean {
    const lifespan = summary.lifespan_s ?? null;
    if (summary.last_seq < record.processedSeq || lifespan === (record.lifespanS ?? null)) {
      return false;
    }
    record.lifespanS = lifespan;
    return true;
  }

  private connect(): void {
    if (this.closed) {
      return;
    }
    this.connection = 'connecting';
    this.changed();
    void (async () => {
      let ticket: string;
      try {
        ticket = (await api.sendJson<{ ticket: string }>('POST', '/v1/events/ticket')).ticket;
      } catch (error) {
        this.fail(error);
        this.reconnectLater();
        return;
      }
      if (this.closed) {
        return;
      }
      const socket = new WebSocket(`wss://${location.host}/v1/events`, ['curbside.events', `curbside.ticket.${ticket}`]);
      this.socket = socket;
      socket.onopen = () => {
        this.connection = 'live';
        this.retryMs = 1000;
        this.error = null;
        this.changed();
        // What came while the socket was down.
        void this.serial(() => this.syncAll()).catch((error: unknown) => this.fail(error));
      };
      socket.onmessage = (message) => {
        if (typeof message.data === 'string') {
          this.onEvent(JSON.parse(message.data) as ServerEvent);
        }
      };
      socket.onclose = (closing) => {
        if (this.socket !== socket) {
          return;
        }
        this.socket = null;
        this.connection = 'offline';
        this.changed();
        if (closing.code === 4401) {
          // The session was ended: sign-in again is the user's call.
          api.dropSession('Your session was ended. Sign in again to continue.');
          return;
        }
        if (closing.code === 4403) {
          this.error = 'A new messaging policy waits for you: sign in again to read and accept it.';
          this.changed();
          return;
        }
        if (closing.code === 4402) {
          void api.renewSession().then(() => this.connect(), (error: unknown) => this.fail(error));
          return;
        }
        this.reconnectLater();
      };
    })();
  }

  private reconnectLater(): void {
    if (this.closed || !api.signedIn()) {
      return;
    }
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 30_000);
  }

  private onEvent(event: ServerEvent): void {
    const work = async () => {
      switch (event.type) {
        case 'entry': {
          const record = this.records.get(event.thread_id);
          if (record === undefined) {
            await this.joinWelcomes();
          } else if (record.left === null && event.entry.seq > record.processedSeq) {
            await this.catchUp(record);
          }
          this.schedulePending();
          break;
        }
        case 'welcome':
          await this.joinWelcomes();
          this.schedulePending();
          break;
        case 'receipt':
          if (this.records.has(event.thread_id)) {
            await this.refreshReceipts(event.thread_id);
          }
          break;
        case 'acknowledged':
        case 'urgent':
          await this.onUrgentEvent(event);
          break;
      }
    };
    void this.serial(work).catch((error: unknown) => this.fail(error));
  }

  /**
   * Someone acknowledged an urgent message; or nobody did in time, and the
   * server alerted its recipients again (shown above every screen, and as
   * a notification if allowed) or asked a backup in (whom the first member
   * client to see it adds: this one, at once, if it can).
   */
  private async onUrgentEvent(event: UrgentEvent): Promise<void> {
    const record = this.records.get(event.thread_id);
    if (record === undefined || record.left !== null) {
      return;
    }
    if (event.seq > record.processedSeq) {
      await this.catchUp(record);
    }
    const statusOf = () => this.urgentStatus.get(event.thread_id)?.get(event.seq);
    if (statusOf() === undefined) {
      // Not seen yet: the server's whole word on the thread's urgent messages.
      await this.refreshReceipts(event.thread_id);
    }
    let known = statusOf();
    if (known === undefined) {
      // Not listed (yet): what the event says is all there is.
      const sender = record.messages.find((message) => message.seq === event.seq)?.senderUserId ?? '';
      known = { seq: event.seq, sender_user: sender, stage: 'sent', acks: [] };
      this.learnUrgent(record, known);
    }
    if (event.type === 'acknowledged') {
      if (!known.acks.some((ack) => ack.user_id === event.user_id)) {
        known.acks.push({ user_id: event.user_id, at_ms: event.at_ms });
      }
      known.stage = 'acknowledged';
      await this.nameOf(record, event.user_id);
    } else if (known.stage !== 'acknowledged') {
      known.stage = event.stage;
      if (event.backup_user) {
        known.escalated_to = event.backup_user;
        await this.nameOf(record, event.backup_user);
      }
    }
    if (event.type === 'urgent' && event.stage === 'realerted') {
      this.realert(record, event.seq);
    }
    this.changed();
    if (event.type === 'urgent' && event.stage === 'escalated') {
      await this.applyPending();
    }
  }

  /** Alerts the user again to an urgent message they received and have not acknowledged. */
  private realert(record: ThreadRecord, seq: number): void {
    const message = record.messages.find((kept) => kept.seq === seq && WRITTEN.has(kept.kind));
    if (message === undefined || message.senderUserId === this.me.userId || message.forward?.senderUserId === this.me.userId) {
      return;
    }
    const target = message.forward?.seq ?? seq;
    if (this.urgentStatus.get(record.threadId)?.get(target)?.acks.some((ack) => ack.user_id === this.me.userId)) {
      return;
    }
    const key = `${record.threadId}/${target}`;
    this.realerts.set(key, { threadId: record.threadId, seq: target, senderName: message.forward?.senderName ?? message.senderName, atMs: message.forward?.sentAtMs ?? message.atMs });
    notifyRealert(key);
  }

  // ---- Catching up ----

  private async syncAll(): Promise<void> {
    await this.topUpKeyPackages();
    await this.joinWelcomes();
    let after: string | undefined;
    const listed = new Set<string>();
    for (;;) {
      const page = await api.getJson<{ threads: ThreadSummary[]; next?: string | null }>('/v1/threads', {
        limit: 500,
        after,
      });
      for (const summary of page.threads) {
        listed.add(summary.thread_id);
        const record = this.records.get(summary.thread_id);
        if (record !== undefined && record.left === null && summary.last_seq > record.processedSeq) {
          await this.catchUp(record);
        }
        // A lifespan set before this device joined is not in the log it reads.
        if (record !== undefined && record.left === null && this.learnLifespan(record, summary)) {
          await this.saveThread(record);
          this.changed();
        }
        // The server's count, of the entries this catch-up read.
        this.unread.set(summary.thread_id, summary.unread);
      }
      if (page.next === undefined || page.next === null) {
        break;
      }
      after = page.next;
    }
    // Threads the server no longer lists for this device: it was removed
    // or left; the log says how.
    for (const record of this.records.values()) {
      if (record.left === null && !listed.has(record.threadId)) {
        await this.catchUp(record);
      }
    }
    this.error = null;
    this.changed();
    this.schedulePending();
  }

  // ---- Membership the server asks for ----

  /** Queues a look at the pending membership changes, unless one is queued already. */
  private schedulePending(): void {
    if (this.closed || this.pendingQueued) {
      return;
    }
    this.pendingQueued = true;
    void this.serial(async () => {
      this.pendingQueued = false;
      await this.applyPending();
    }).catch((error: unknown) => this.fail(error));
  }

  /**
   * Commits what the server asks of this device's threads: in each, one
   * commit adding the devices missing from the group and removing those
   * that are no longer members. Another member's client may be first (a
   * 409): then the list is read again, as that commit changed it.
   */
  private async applyPending(): Promise<void> {
    for (let round = 1; round <= ATTEMPTS; round += 1) {
      const pending = await api.getJson<PendingMembership>('/v1/membership/pending');
      let overtaken = false;
      for (const item of pending.threads) {
        const record = this.records.get(item.thread_id);
        if (record === undefined || record.left !== null || (this.pendingPaused.get(item.thread_id) ?? 0) > Date.now()) {
          // Not joined yet (its welcome comes first), no longer in it, or failing lately.
          continue;
        }
        try {
          overtaken = !(await this.commitPending(record, item.add, item.remove)) || overtaken;
          this.pendingPaused.delete(item.thread_id);
        } catch (error) {
          // One thread's trouble does not hold up the others'.
          this.pendingPaused.set(item.thread_id, Date.now() + PENDING_PAUSE_MS);
          this.fail(error);
        }
      }
      if (!overtaken) {
        return;
      }
    }
  }

  /**
   * One thread's pending change, once its log is processed up to date:
   * false when another member's commit came first.
   */
  private async commitPending(record: ThreadRecord, adds: PendingAdd[], removes: string[]): Promise<boolean> {
    await this.catchUp(record);
    if (record.left !== null) {
      return true;
    }
    const inGroup = members(this.requireState(record));
    const held = new Set(inGroup.map((member) => member.deviceId));
    const usersInGroup = new Set(inGroup.map((member) => member.userId));
    // What the group already has is not added again; a commit may not remove its own sender.
    // As the CLI does, whatever the server lists: a device is added only if its user is in the
    // group already (a new device of a member), or an escalation asked them in and this browser
    // holds every urgent message it is to pass on to them.
    const missing = adds.filter((add) => {
      if (held.has(add.device_id) || add.device_id === this.me.deviceId) {
        return false;
      }
      const urgent = add.for_urgent_seqs ?? [];
      return urgent.length === 0
        ? usersInGroup.has(add.user_id)
        : urgent.every((seq) => this.forwardOf(record, seq) !== null);
    });
    const leaving = inGroup.filter((member) => removes.includes(member.deviceId) && member.deviceId !== this.me.deviceId);
    const byUser = new Map<string, string[]>();
    for (const add of missing) {
      const devices = byUser.get(add.user_id) ?? [];
      if (!devices.includes(add.device_id)) {
        devices.push(add.device_id);
      }
      byUser.set(add.user_id, devices);
    }
    const claimed: Claimed[] = [];
    for (const [userId, devices] of byUser) {
      // A device with no key package left is added at a later look.
      claimed.push(...(await this.claim(userId, false, devices)));
    }
    if (claimed.length === 0 && leaving.length === 0) {
      return true;
    }
    if (!(await this.commitChange(record, claimed, leaving, false))) {
      return false;
    }
    if (claimed.length === 0) {
      return true;
    }
    if (record.subject !== null) {
      // Newcomers read nothing from before they joined.
      await this.sendContent(record, { type: 'subject', subject: record.subject });
    }
    // An escalation's backup cannot decrypt the urgent message it was asked in for: it is passed on.
    const added = new Set(claimed.map((package_) => package_.identity.deviceId));
    const urgentSeqs = new Set<number | null>(missing.filter((add) => added.has(add.device_id)).flatMap((add) => add.for_urgent_seqs ?? []));
    for (const seq of urgentSeqs) {
      const forward = seq === null ? null : this.forwardOf(record, seq);
      if (forward !== null) {
        // Not urgent to the server: the original's escalation is the one
        // its acknowledgement stops; the copy only shows as urgent.
        await this.sendContent(record, forward);
      }
    }
    return true;
  }

  /** Urgent message `seq` as this browser decrypted it, to pass on; null if it does not hold it. */
  private forwardOf(record: ThreadRecord, seq: number): ForwardContent | null {
    const now = Date.now();
    for (const message of record.messages) {
      if (expired(message, now)) {
        continue;
      }
      if (message.kind === 'text' && message.seq === seq) {
        return { type: 'forward', seq, sender_user: message.senderUserId, sent_at_ms: message.atMs, text: message.text };
      }
      // Passed on to this browser before: passed on again, as it came.
      if (message.kind === 'forward' && message.forward?.seq === seq) {
        return { type: 'forward', seq, sender_user: message.forward.senderUserId, sent_at_ms: message.forward.sentAtMs, text: message.text };
      }
    }
    return null;
  }

  private async topUpKeyPackages(): Promise<void> {
    const count = await api.getJson<{ available: number; last_resort: boolean }>('/v1/key-packages');
    if (count.available >= KEY_PACKAGES_LOW && count.last_resort) {
      return;
    }
    const made: [string, StoredKeyPackage][] = [];
    const packages: string[] = [];
    let lastResort: string | null = null;
    const wanted = count.available >= KEY_PACKAGES_LOW ? 0 : KEY_PACKAGES_BATCH;
    for (let i = 0; i < wanted + (count.last_resort ? 0 : 1); i += 1) {
      const made_ = await this.mls.keyPackage();
      const private_ = savePrivatePackage(made_.privatePackage);
      const isLastResort = i === wanted;
      made.push([
        made_.ref,
        { publicBytes: b64.encode(made_.publicBytes), init: b64.encode(private_.init), hpke: b64.encode(private_.hpke), lastResort: isLastResort },
      ]);
      if (isLastResort) {
        lastResort = b64.encode(made_.publicBytes);
      } else {
        packages.push(b64.encode(made_.publicBytes));
      }
    }
    // A new last-resort package replaces the old one on the server: the
    // old one's private half goes, so no welcome made with it opens again.
    const replaced: [string, null][] = [];
    if (lastResort !== null) {
      for (const name of await this.vault.names(KEY_PACKAGE_PREFIX)) {
        const bytes = await this.vault.get(name);
        if (bytes !== undefined && unpack<StoredKeyPackage>(bytes).lastResort) {
          replaced.push([name, null]);
        }
      }
    }
    // Kept before they leave: a welcome made with one must find its private half.
    await this.vault.putMany([...replaced, ...made.map(([ref, stored]): [string, Uint8Array] => [KEY_PACKAGE_PREFIX + ref, pack(stored)])]);
    await api.sendJson('POST', '/v1/key-packages', { packages, last_resort: lastResort });
  }

  private async joinWelcomes(): Promise<void> {
    const list = await api.getJson<{ welcomes: WelcomeItem[] }>('/v1/welcomes');
    for (const item of list.welcomes) {
      const ack = () => api.send('POST', `/v1/welcomes/${api.seg(item.welcome_id)}/ack`);
      const held = this.records.get(item.thread_id);
      // A welcome to a thread held (or left) at its epoch or later is stale.
      if (held !== undefined && held.epoch >= item.epoch) {
        await ack();
        continue;
      }
      let joined: [ClientState, string, boolean];
      try {
        joined = await this.join(item, held);
      } catch (error) {
        if (!(error instanceof MlsError)) {
          // The directory or the store could not be reached: it stays
          // offered, for the next catch-up.
          throw error;
        }
        // Refused for good (not this browser's package, another thread or
        // epoch than the server says, a member's key unlike the directory's).
        this.fail(new Error(`A welcome to a thread was refused: ${error.message}`));
        await ack();
        continue;
      }
      const [state, ref, lastResort] = joined;
      const record = held ?? newRecord(item.thread_id, epochOf(state));
      await this.rememberNames(record, state);
      record.state = b64.encode(saveState(state));
      record.epoch = epochOf(state);
      record.processedSeq = item.joined_seq;
      record.left = null;
      record.pending = null;
      record.own = {};
      record.sending = {};
      this.records.set(record.threadId, record);
      // The thread and the spent key package change together.
      await this.vault.putMany([
        [THREAD_PREFIX + record.threadId, pack(record)],
        ...(lastResort ? [] : [[KEY_PACKAGE_PREFIX + ref, null] as [string, null]]),
      ]);
      await ack();
      this.changed();
      await this.catchUp(record);
      // A lifespan set before it joined is not in the log it reads from
      // here: the thread's summary says. If it cannot be had now, the next
      // catch-up of every thread learns it.
      const detail = await api.getJson<ThreadDetail>(`/v1/threads/${api.seg(record.threadId)}`).catch(() => null);
      if (detail !== null && this.learnLifespan(record, detail.summary)) {
        await this.saveThread(record);
        this.changed();
      }
    }
  }

  /**
   * Joins from a welcome with the key package it names, if it is for the
   * thread and epoch the server says, later than what this browser held,
   * and its members match the directory: the state, the package's
   * reference, and whether it was the last-resort one (kept, as the server
   * may hand it out again).
   */
  private async join(item: WelcomeItem, held: ThreadRecord | undefined): Promise<[ClientState, string, boolean]> {
    const { welcome, refs } = this.mls.welcomeRefs(b64.decode(item.welcome));
    for (const ref of refs) {
      const bytes = await this.vault.get(KEY_PACKAGE_PREFIX + ref);
      if (bytes === undefined) {
        continue;
      }
      const stored = unpack<StoredKeyPackage>(bytes);
      const state = await this.mls.join(
        welcome,
        b64.decode(stored.publicBytes),
        loadPrivatePackage({ init: b64.decode(stored.init), hpke: b64.decode(stored.hpke) }),
      );
      // The welcome's own word, not the server's.
      if (groupIdOf(state) !== item.thread_id || epochOf(state) !== item.epoch) {
        throw new MlsError('the welcome is for another thread or epoch than the server says');
      }
      if (held !== undefined && epochOf(state) <= held.epoch) {
        throw new MlsError('the welcome would bring the thread back to an earlier epoch');
      }
      await this.checkMembers(state);
      return [state, ref, stored.lastResort];
    }
    throw new MlsError('the welcome was made for a key package this browser does not hold');
  }

  /** Processes the thread's log from where this device stopped. */
  private async catchUp(record: ThreadRecord): Promise<void> {
    if (record.left !== null) {
      return;
    }
    const from = record.processedSeq;
    for (;;) {
      const page = await api.getJson<EntryPage>(`/v1/threads/${api.seg(record.threadId)}/entries`, {
        after: record.processedSeq,
        limit: PAGE,
      });
      try {
        for (const entry of page.entries) {
          if (page.ended !== undefined && page.ended !== null && entry.seq >= page.ended.seq && entry.kind === 'commit' && entry.sender_device !== this.me.deviceId) {
            // The commit that removed this device: nothing after it is ours.
            record.processedSeq = entry.seq;
            break;
          }
          await this.process(record, entry);
        }
      } finally {
        // What was processed is kept even when an entry stops the catch-up.
        await this.saveThread(record);
        this.changed();
      }
      const ended = page.ended;
      if (ended !== undefined && ended !== null && record.processedSeq >= ended.seq) {
        record.left = { byUserId: ended.by_user ?? null, atMs: ended.at_ms, reason: ended.reason };
        if (ended.by_user) {
          await this.nameOf(record, ended.by_user);
        }
        record.state = null;
        record.pending = null;
        await this.saveThread(record);
        this.changed();
        return;
      }
      if (page.entries.length < PAGE) {
        break;
      }
    }
    if (record.processedSeq > from) {
      await this.receipt(record.threadId, 'delivered', record.processedSeq).catch((error: unknown) => this.fail(error));
    }
  }

  /**
   * Processes one entry. Everything that may fail (applying, checking the
   * directory) comes before the record changes, and the new state and the
   * mark move together, so a failure leaves the record as it was.
   */
  private async process(record: ThreadRecord, entry: ThreadEntry): Promise<void> {
    if (entry.seq !== record.processedSeq + 1) {
      throw new Error('the thread’s log skipped an entry; reload the page');
    }
    if (entry.kind === 'recall') {
      // No MLS message: the server's word that a sender took back one of
      // their own messages (anyone else's it could only hide, which it can
      // do anyway by not serving it). The text is forgotten here too.
      for (const message of record.messages) {
        if (message.seq === entry.recalls && WRITTEN.has(message.kind) && message.senderUserId === entry.sender_user) {
          message.kind = 'recalled';
          message.text = '';
          // Their keys too: the files cannot be opened from here again.
          delete message.attachments;
          delete message.forward;
        }
      }
      record.processedSeq = entry.seq;
      return;
    }
    const at = { seq: entry.seq, atMs: entry.created_at_ms };
    if (entry.kind === 'lifespan') {
      // No MLS message: the server's word, as for a recall (it could
      // delete the messages without saying so anyway). Counted from each
      // message's time on the server.
      const lifespan = entry.lifespan_s ?? null;
      record.lifespanS = lifespan;
      const name = await this.nameOf(record, entry.sender_user);
      this.record(record, { ...at, kind: 'lifespan', text: lifespanNotice(name, lifespan), senderUserId: entry.sender_user }, name);
      record.processedSeq = entry.seq;
      return;
    }
    if (entry.kind === 'application' && entry.purged_at_ms !== undefined && entry.purged_at_ms !== null) {
      // Erased by the server's sweep (the lifespan, the organisation's
      // retention): nothing to decrypt, nothing to show.
      delete record.own[String(entry.seq)];
      record.processedSeq = entry.seq;
      return;
    }
    const state = this.requireState(record);
    if (entry.kind === 'application' && entry.body === '') {
      // Recalled before this browser read it: its ciphertext is gone (the
      // recall entry after it says so). Its place is kept for that.
      this.record(record, { ...at, kind: 'text', text: '', senderUserId: entry.sender_user }, await this.nameOf(record, entry.sender_user));
      delete record.own[String(entry.seq)];
      record.processedSeq = entry.seq;
      return;
    }
    if (entry.sender_device === this.me.deviceId && entry.kind === 'application') {
      const hash = await digestOf(entry.body);
      const sent = record.own[String(entry.seq)] ?? record.sending[hash];
      delete record.own[String(entry.seq)];
      delete record.sending[hash];
      if (sent === undefined) {
        // MLS gives the sender no way to read its own message again.
        this.record(record, { ...at, kind: 'undecryptable', text: 'a message this browser sent and did not keep', senderUserId: this.me.userId });
      } else if (!(sent.kind === 'subject' && !this.newSubject(record, sent.text))) {
        this.record(record, {
          ...at,
          kind: sent.kind,
          text: sent.text,
          senderUserId: this.me.userId,
          ...withFiles(sent.attachments),
          ...urgentOf(entry),
          ...(sent.forward === undefined ? {} : { forward: sent.forward }),
        });
      }
    } else if (entry.sender_device === this.me.deviceId) {
      const pending = record.pending;
      if (pending === null || (pending.seq !== null && pending.seq !== entry.seq) || pending.epoch !== entry.epoch || pending.commit !== entry.body) {
        throw new Error('this browser’s own commit in the log is not the one it made; it is out of step with this thread');
      }
      await this.applied(record, state, loadState(b64.decode(pending.state)), entry);
      record.pending = null;
    } else if (entry.kind === 'commit') {
      const next = await this.mls.applyCommit(state, b64.decode(entry.body), entry.sender_device, entry.change ?? { add: [], remove: [] });
      await this.checkMembers(next);
      await this.applied(record, state, next, entry);
    } else {
      const name = await this.nameOf(record, entry.sender_user);
      try {
        const { state: next, plaintext, sender } = await this.mls.decrypt(state, b64.decode(entry.body));
        if (sender.deviceId !== entry.sender_device || sender.userId !== entry.sender_user) {
          throw new MlsError('the message’s MLS sender is not the device the server names');
        }
        this.setState(record, next);
        const content = readContent(plaintext);
        if (content.type === 'subject') {
          if (this.newSubject(record, content.subject)) {
            this.record(record, { ...at, kind: 'subject', text: content.subject, senderUserId: entry.sender_user }, name);
          }
        } else {
          if (content.type === 'forward') {
            const forward = await this.forwarded(record, content);
            this.record(record, { ...at, kind: 'forward', text: content.text, senderUserId: entry.sender_user, ...urgentOf(entry), forward }, name);
          } else {
            this.record(record, { ...at, kind: 'text', text: content.text, senderUserId: entry.sender_user, ...withFiles(content.attachments), ...urgentOf(entry) }, name);
          }
          // Until the next list from the server says otherwise.
          this.unread.set(record.threadId, (this.unread.get(record.threadId) ?? 0) + 1);
        }
      } catch (error) {
        // Kept as such; the thread goes on.
        this.record(record, { ...at, kind: 'undecryptable', text: `This message could not be decrypted (${api.messageOf(error)}).`, senderUserId: entry.sender_user }, name);
      }
    }
    record.processedSeq = entry.seq;
  }

  /** A commit took effect: who was added and removed, in words, then the new state. */
  private async applied(record: ThreadRecord, before: ClientState, after: ClientState, entry: { seq: number; sender_user: string; created_at_ms: number }): Promise<void> {
    await this.rememberNames(record, after);
    const users = (state: ClientState) => new Set(members(state).map((member) => member.userId));
    const was = users(before);
    const now = users(after);
    const by = await this.nameOf(record, entry.sender_user);
    const changes: [MessageKind, string][] = [];
    for (const userId of now) {
      if (!was.has(userId)) {
        changes.push(['added', `${by} added ${await this.nameOf(record, userId)}`]);
      }
    }
    for (const userId of was) {
      if (!now.has(userId)) {
        changes.push(['removed', `${by} removed ${await this.nameOf(record, userId)}`]);
      }
    }
    for (const [kind, text] of changes) {
      this.record(record, { seq: entry.seq, atMs: entry.created_at_ms, kind, text, senderUserId: entry.sender_user }, by);
    }
    this.setState(record, after);
  }

  /** A forward's original, as kept (its sender's name as this thread knows it). */
  private async forwarded(record: ThreadRecord, content: ForwardContent): Promise<Forwarded> {
    return { seq: content.seq, senderUserId: content.sender_user, senderName: await this.nameOf(record, content.sender_user), sentAtMs: content.sent_at_ms };
  }

  private setState(record: ThreadRecord, state: ClientState): void {
    record.state = b64.encode(saveState(state));
    record.epoch = epochOf(state);
  }

  // ---- Sending ----

  private async sendContent(record: ThreadRecord, content: Content, urgent = false): Promise<void> {
    const forward = content.type === 'forward' ? await this.forwarded(record, content) : null;
    for (let attempt = 1; ; attempt += 1) {
      const { state, ciphertext } = await this.mls.encrypt(this.requireState(record), pack(content));
      const body = b64.encode(ciphertext);
      const hash = await digestOf(body);
      const lifespanS = record.lifespanS ?? null;
      const sent: Sent =
        content.type === 'subject'
          ? { kind: 'subject', text: content.subject, atMs: Date.now(), lifespanS }
          : forward !== null
            ? { kind: 'forward', text: content.text, atMs: Date.now(), lifespanS, forward }
            : { kind: 'text', text: content.text, atMs: Date.now(), lifespanS, ...withFiles(content.type === 'text' ? content.attachments : undefined) };
      // Saved before it leaves: a spent key is never used twice, and the
      // text is found again if the answer is lost.
      this.setState(record, state);
      record.sending[hash] = sent;
      await this.saveThread(record);
      this.checkOpen();
      try {
        const files = content.type === 'text' ? (content.attachments ?? []) : [];
        const appended = await api.sendJson<{ seq: number }>('POST', `/v1/threads/${api.seg(record.threadId)}/messages`, {
          epoch: epochOf(state),
          ciphertext: body,
          // The uploads it carries, for the server to delete with it (recall, expiry).
          ...(files.length === 0 ? {} : { attachments: files.map((file) => file.id) }),
          ...(urgent ? { urgent: true } : {}),
        });
        delete record.sending[hash];
        record.own[String(appended.seq)] = sent;
        await this.saveThread(record);
        await this.catchUp(record);
        this.changed();
        return;
      } catch (error) {
        if (error instanceof api.ApiError && error.status !== 0) {
          // Refused: it is not in the log.
          delete record.sending[hash];
          await this.saveThread(record);
          if (error.status === 409 && attempt < ATTEMPTS) {
            // A commit moved the thread on: read it, then send again.
            await this.catchUp(record);
            continue;
          }
        }
        throw error;
      }
    }
  }

  /** Encrypts a file under a fresh key and uploads the ciphertext: what a message needs to carry it. */
  private async upload(threadId: string, file: File): Promise<AttachmentRef> {
    const plaintext = new Uint8Array(await file.arrayBuffer());
    if (plaintext.length > attachment.MAX_FILE_BYTES) {
      throw new Error(tooLarge(file.name));
    }
    const sealed = await attachment.seal(plaintext);
    this.checkOpen();
    const uploaded = await api.sendBytes<{ attachment_id: string; size: number }>(
      'POST',
      `/v1/threads/${api.seg(threadId)}/attachments`,
      new Blob([sealed.ciphertext], { type: 'application/octet-stream' }),
    );
    if (!/^[0-9a-f]{32}$/.test(uploaded.attachment_id)) {
      throw new Error('The server answered the upload with an id that is not one.');
    }
    return {
      id: uploaded.attachment_id,
      key: b64.encode(sealed.key),
      sha256: sealed.sha256,
      name: fileName(file.name),
      media_type: file.type === '' ? 'application/octet-stream' : file.type,
      size: plaintext.length,
    };
  }

  /**
   * Commits adding and removing these devices; a 409 (another commit came
   * first) catches up and tries again, unless `retry` is false: then it
   * resolves to false, for the caller to see what changed.
   */
  private async commitChange(record: ThreadRecord, add: Claimed[], remove: (Identity & { leaf: number })[], retry = true): Promise<boolean> {
    for (let attempt = 1; ; attempt += 1) {
      const state = this.requireState(record);
      const leaves = remove.map((member) => members(state).find((now) => now.deviceId === member.deviceId)?.leaf).filter((leaf): leaf is number => leaf !== undefined);
      const made = await this.mls.commit(
        state,
        add.map((claimed) => claimed.keyPackage),
        leaves,
      );
      const change = { add: add.map((claimed) => claimed.identity.deviceId), remove: remove.map((member) => member.deviceId) };
      const commit = b64.encode(made.commit);
      record.pending = { seq: null, epoch: epochOf(state), commit, state: b64.encode(saveState(made.state)) };
      await this.saveThread(record);
      this.checkOpen();
      try {
        const appended = await api.sendJson<{ seq: number }>('POST', `/v1/threads/${api.seg(record.threadId)}/commits`, {
          epoch: epochOf(state),
          commit,
          change,
          welcome: made.welcome === null ? null : b64.encode(made.welcome),
        });
        record.pending.seq = appended.seq;
        await this.saveThread(record);
        // Messages others sent in the old epoch come first; the log then reaches the commit.
        await this.catchUp(record);
        this.changed();
        return true;
      } catch (error) {
        if (error instanceof api.ApiError && error.status !== 0) {
          // The server said no: the commit is dropped.
          record.pending = null;
          await this.saveThread(record);
          if (error.status === 409 && !retry) {
            await this.catchUp(record);
            return false;
          }
          if (error.status === 409 && attempt < ATTEMPTS) {
            await this.catchUp(record);
            continue;
          }
        }
        // No answer: it stays pending; the next catch-up applies it if the log holds it.
        throw error;
      }
    }
  }

  private async receipt(threadId: string, kind: 'delivered' | 'read', through: number): Promise<void> {
    this.checkOpen();
    const timeMs = Date.now();
    const signature = new Uint8Array(
      await crypto.subtle.sign(
        { name: 'Ed25519' },
        this.device.keyPair.privateKey,
        receiptMessage(this.device.serverId, this.me.deviceId, threadId, kind, through, timeMs),
      ),
    );
    await api.send('POST', `/v1/threads/${api.seg(threadId)}/${kind}`, { seq: through, time_ms: timeMs, signature: b64.encode(signature) });
  }

  // ---- The directory ----

  /**
   * Key packages for each device of a user (or only `devices`, when
   * given), each checked against the directory.
   */
  private async claim(userId: string, required: boolean, devices?: string[]): Promise<Claimed[]> {
    const entry = await this.lookUp(userId, true);
    if (entry === null) {
      if (devices !== undefined) {
        // Deactivated since the server listed them: no one to add.
        return [];
      }
      throw new Error('No active user has that id: mistyped, or the user was deactivated.');
    }
    const answer = await api.sendJson<{ packages: { device_id: string; key_package: string }[]; without_packages: string[] }>(
      'POST',
      '/v1/key-packages/claim',
      devices === undefined ? { user_id: userId } : { user_id: userId, devices },
    );
    const claimed: Claimed[] = [];
    for (const item of answer.packages) {
      const { keyPackage, identity } = await this.mls.readKeyPackage(b64.decode(item.key_package));
      const listed = entry.devices.find((device) => device.device_id === item.device_id);
      if (
        listed === undefined ||
        (devices !== undefined && !devices.includes(item.device_id)) ||
        identity.userId !== userId ||
        identity.deviceId !== item.device_id ||
        !sameBytes(identity.publicKey, b64.decode(listed.public_key))
      ) {
        throw new MlsError(`a key package for ${entry.display_name}’s device does not match the directory; tell your administrator`);
      }
      claimed.push({ keyPackage, identity });
    }
    if (required && claimed.length === 0) {
      throw new Error(`${entry.display_name} has no device ready for new threads yet (none has signed in since enrolling). Try again once they have.`);
    }
    return claimed;
  }

  /**
   * Every member against the directory: a key that differs from the
   * directory's is an error; a user or device no longer listed is left
   * for a member to remove (as the CLI warns).
   */
  private async checkMembers(state: ClientState): Promise<void> {
    for (const member of members(state)) {
      const entry = await this.lookUp(member.userId, false);
      const listed = entry?.devices.find((device) => device.device_id === member.deviceId);
      if (listed !== undefined && !sameBytes(b64.decode(listed.public_key), member.publicKey)) {
        throw new MlsError(`${entry?.display_name ?? 'a member'}’s device key in this thread differs from the directory’s: do not use this thread, and tell your administrator`);
      }
    }
  }

  /** A directory entry, kept a minute (fresh when `fresh`); null for no active user. */
  private async lookUp(userId: string, fresh: boolean): Promise<DirectoryEntry | null> {
    const kept = this.directory.get(userId);
    if (kept !== undefined && !fresh && Date.now() - kept.atMs < 60_000) {
      return kept.entry;
    }
    let entry: DirectoryEntry | null;
    try {
      entry = await api.getJson<DirectoryEntry>(`/v1/directory/users/${api.seg(userId)}`);
    } catch (error) {
      if (error instanceof api.ApiError && error.status === 404) {
        entry = null;
      } else {
        throw error;
      }
    }
    this.directory.set(userId, { entry, atMs: Date.now() });
    return entry;
  }

  private async nameOf(record: ThreadRecord, userId: string): Promise<string> {
    if (userId === this.me.userId) {
      return this.me.displayName;
    }
    const known = record.names[userId];
    if (known !== undefined) {
      return known;
    }
    // Never fails: a name is not worth stopping a catch-up for.
    const entry = await this.lookUp(userId, false).catch(() => undefined);
    if (entry === undefined) {
      return 'A colleague';
    }
    const name = entry?.display_name ?? 'A former colleague';
    if (entry !== null) {
      record.names[userId] = name;
    }
    return name;
  }

  private async rememberNames(record: ThreadRecord, state: ClientState): Promise<void> {
    for (const member of members(state)) {
      await this.nameOf(record, member.userId);
    }
  }

  // ---- Records ----

  /**
   * Takes a subject the log brought; whether it changed the thread's (it
   * is sent again with every add, for the newcomers, and shown only when
   * it is new).
   */
  private newSubject(record: ThreadRecord, subject: string): boolean {
    const changed = record.subject !== subject;
    record.subject = subject;
    return changed;
  }

  private record(record: ThreadRecord, message: Omit<StoredMessage, 'senderName'>, senderName?: string): void {
    // Stamped with the lifespan in force at this point of the log.
    record.messages.push({
      lifespanS: record.lifespanS ?? null,
      ...message,
      senderName: senderName ?? (message.senderUserId === this.me.userId ? this.me.displayName : 'A colleague'),
    });
  }

  private view(record: ThreadRecord): ThreadView {
    const state = this.stateOf(record);
    const others = state === null ? Object.keys(record.names) : [...new Set(members(state).map((member) => member.userId))];
    const memberNames = others
      .filter((userId) => userId !== this.me.userId)
      .map((userId) => record.names[userId] ?? 'A former colleague')
      .sort((a, b) => a.localeCompare(b));
    const now = Date.now();
    const shown = record.messages.filter((message) => !expired(message, now));
    const last = shown[shown.length - 1];
    const lastText = [...shown].reverse().find((message) => WRITTEN.has(message.kind));
    let left: LeftInfo | null = null;
    if (record.left !== null) {
      left = {
        byName: record.left.byUserId === null ? null : (record.names[record.left.byUserId] ?? (record.left.byUserId === this.me.userId ? this.me.displayName : null)),
        atMs: record.left.atMs,
        reason: record.left.reason,
      };
    }
    return {
      threadId: record.threadId,
      subject: record.subject,
      memberNames,
      unread: this.unreadOf(record),
      lastActivityMs: last?.atMs ?? null,
      preview: lastText === undefined ? null : previewOf(lastText),
      left,
      lifespanS: record.lifespanS ?? null,
    };
  }

  /**
   * Messages from others not yet read: the server counts every entry
   * after the user's read receipt (commits and subjects too, and knows
   * what another device of theirs read); this browser counts the others'
   * messages after its own receipt. The smaller is right on both counts.
   */
  private unreadOf(record: ThreadRecord): number {
    const now = Date.now();
    const here = record.messages.filter(
      (message) => WRITTEN.has(message.kind) && message.senderUserId !== this.me.userId && message.seq > record.readSent && !expired(message, now),
    ).length;
    return Math.min(this.unread.get(record.threadId) ?? here, here);
  }

  private stateOf(record: ThreadRecord): ClientState | null {
    return record.state === null ? null : loadState(b64.decode(record.state));
  }

  private requireState(record: ThreadRecord): ClientState {
    const state = this.stateOf(record);
    if (state === null) {
      throw new Error('You are no longer in this thread.');
    }
    return state;
  }

  private current(threadId: string): ThreadRecord {
    const record = this.records.get(threadId);
    if (record === undefined) {
      throw new Error('This browser does not hold that thread.');
    }
    if (record.left !== null) {
      throw new Error('You are no longer in this thread.');
    }
    return record;
  }

  /**
   * Saves a thread's record. Once the messenger is closed (locked, signed
   * out) nothing is saved and nothing more leaves: work under way stops
   * here, before it could send what it did not save.
   */
  private async saveThread(record: ThreadRecord): Promise<void> {
    this.checkOpen();
    // What has expired is never written back.
    purgeExpired(record, Date.now());
    await this.vault.put(THREAD_PREFIX + record.threadId, pack(record));
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new Error('Your messages were locked; unlock them to go on.');
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private fail(error: unknown): void {
    if (this.closed) {
      return;
    }
    this.error = api.messageOf(error);
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) {
      listener();
    }
  }
}

interface Claimed {
  keyPackage: import('ts-mls').KeyPackage;
  identity: Identity;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The server's urgent flag of an entry, as an optional field (records of other messages stay as they were). */
function urgentOf(entry: ThreadEntry): { urgent?: true } {
  return entry.urgent === true ? { urgent: true } : {};
}

/** A message's files, as an optional field: none is no field (records stay as they were). */
function withFiles(attachments: AttachmentRef[] | undefined): { attachments?: AttachmentRef[] } {
  return attachments === undefined || attachments.length === 0 ? {} : { attachments };
}

/** The newest message's first line for the thread list, or its files when it has no text. */
function previewOf(message: StoredMessage): string {
  const line = message.text.split('\n')[0] ?? '';
  const files = message.attachments ?? [];
  if (line.trim() !== '' || files.length === 0) {
    return line;
  }
  return files.length === 1 ? `Attachment: ${files[0]!.name}` : `${files.length} attachments`;
}

/**
 * Deletes from a thread's record what outlived its lifespan: messages,
 * and what this device sent that the log has not brought back yet (the
 * server erases those too). Whether anything went.
 */
function purgeExpired(record: ThreadRecord, now: number): boolean {
  const before = record.messages.length;
  record.messages = record.messages.filter((message) => !expired(message, now));
  let changed = record.messages.length !== before;
  for (const kept of [record.own, record.sending]) {
    for (const [name, sent] of Object.entries(kept)) {
      if (expired(sent, now)) {
        delete kept[name];
        changed = true;
      }
    }
  }
  return changed;
}

/** A file's name as a message may give it: no path separators or control characters, at most 255 bytes, the extension kept. */
function fileName(name: string): string {
  let clean = name.replace(/[\/\\\u0000-\u001f\u007f]/g, '_').trim();
  if (clean === '' || clean === '.' || clean === '..') {
    clean = 'file';
  }
  if (encoder.encode(clean).length <= MAX_NAME_BYTES) {
    return clean;
  }
  const dot = clean.lastIndexOf('.');
  const extension = dot > 0 && clean.length - dot <= 16 ? clean.slice(dot) : '';
  let stem = [...clean.slice(0, clean.length - extension.length)];
  while (stem.length > 0 && encoder.encode(stem.join('') + extension).length > MAX_NAME_BYTES) {
    stem = stem.slice(0, -1);
  }
  return stem.join('') + extension;
}

function tooLarge(name: string): string {
  return `“${name}” is larger than 100 MB, the most a file sent here may be.`;
}
