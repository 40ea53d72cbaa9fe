// What the clinician's screens see of their threads: the `Messenger`
// (engine.ts) decrypts with MLS and keeps everything in the encrypted
// vault (vault.ts); the screens only read these views and call its
// methods. Nothing here is sent to the server in the clear except what
// the API already sees (ids, sequence numbers, ciphertext).

import type { Me } from '../state';

/** A colleague, as the directory lists them. */
export interface Person {
  userId: string;
  displayName: string;
  department: string | null;
}

/** How this device's membership of a thread ended. */
export interface LeftInfo {
  /** Who ended it (a member's commit), if known. */
  byName: string | null;
  atMs: number;
  /** `removed`, `left`, `deactivated`, `device_removed`. */
  reason: string;
}

export interface ThreadView {
  threadId: string;
  /** The subject, decrypted locally; null until one arrived. */
  subject: string | null;
  /** The other members' display names (users, not devices), sorted. */
  memberNames: string[];
  unread: number;
  /** When the newest entry this device read was made (ms), if any. */
  lastActivityMs: number | null;
  /** The newest text message's first line, for the list. */
  preview: string | null;
  left: LeftInfo | null;
  /**
   * Disappearing messages: how long (seconds) a message is kept after it
   * was sent, here and on the server; null when off.
   */
  lifespanS: number | null;
}

export type MessageKind = 'text' | 'forward' | 'subject' | 'added' | 'removed' | 'lifespan' | 'undecryptable' | 'recalled';

/** Where an urgent message stands (`curbside_proto::clinical::UrgentStage`). */
export type UrgentStage = 'sent' | 'realerted' | 'escalated' | 'acknowledged';

/** One user's acknowledgement of an urgent message. */
export interface AckView {
  userId: string;
  displayName: string;
  atMs: number;
}

/** An urgent message's acknowledgements, as the server last said. */
export interface UrgentView {
  /**
   * The urgent message acknowledging this one acknowledges: the message
   * itself, or for one passed on (`forward`), the original.
   */
  seq: number;
  /** Null until the server's word arrived. */
  stage: UrgentStage | null;
  /** Who acknowledged it, in order. */
  acks: AckView[];
  /** Whether the user may acknowledge it: a recipient (not its sender) who has not yet. */
  canAcknowledge: boolean;
  /** The backup its escalation asked in, if any. */
  escalatedToName: string | null;
}

/** The urgent message a `forward` passes on to a backup who joined after it. */
export interface ForwardView {
  /** The original's entry (what acknowledging it acknowledges). */
  seq: number;
  senderName: string;
  /** When the original was sent (the server's time). */
  sentAtMs: number;
}

/** An urgent message nobody acknowledged in time, which the server re-alerted: shown above every screen. */
export interface UrgentAlertView {
  threadId: string;
  subject: string | null;
  /** The urgent message acknowledging it acknowledges. */
  seq: number;
  senderName: string;
  atMs: number;
}

/** Someone's shift of a role. */
export interface ShiftView {
  userId: string;
  displayName: string;
  startsAtMs: number;
  endsAtMs: number;
}

/** An on-call role ("Cardiology on-call"), who holds it now and who next. */
export interface RoleView {
  roleId: string;
  name: string;
  department: string;
  holder: ShiftView | null;
  /** The next shift to start, if one is planned. */
  next: ShiftView | null;
}

/**
 * A file a message carries, as the screens see it: what the sender said
 * it is. Its key and digest stay in the messenger, which opens it.
 */
export interface AttachmentView {
  /** The server's id of its ciphertext. */
  id: string;
  /** The file's name, as the sender's device gave it (text, never a path here). */
  name: string;
  mediaType: string;
  /** Plaintext bytes. */
  size: number;
}

export interface MessageView {
  /** The thread log's sequence number. */
  seq: number;
  kind: MessageKind;
  /**
   * `text`: the message as written (several lines allowed); `forward`:
   * an urgent message passed on (`forward` says whose, and when); `subject`:
   * the new subject; `added`/`removed`: a sentence ("Dr. Ana Alvarez added
   * Dr. Cal Chen"), as is `lifespan` ("Dr. Ana Alvarez set messages to
   * disappear after 1 hour"); `undecryptable`: why; `recalled`: nothing
   * (its sender took it back: the text and files are gone from the server
   * and from here). A text may be empty when the message carries files.
   */
  text: string;
  /** The files a `text` message carries (none for the other kinds). */
  attachments: AttachmentView[];
  senderUserId: string;
  senderName: string;
  atMs: number;
  mine: boolean;
  /** For an urgent message (and every `forward`): its acknowledgements; null otherwise. */
  urgent: UrgentView | null;
  /** For a `forward`: the message passed on. */
  forward: ForwardView | null;
}

/** A member user of a thread, by the MLS group (checked against the directory). */
export interface MemberView {
  userId: string;
  displayName: string;
  /** How many of their devices are in the group. */
  devices: number;
  me: boolean;
}

/** Receipts of a thread, as the server last reported them. */
export interface ReceiptsView {
  /** Per other user: the lowest sequence all their devices processed, and what they read. */
  users: { userId: string; displayName: string; deliveredSeq: number; readSeq: number }[];
}

export type ConnectionStatus = 'connecting' | 'live' | 'offline';

export interface Messenger {
  readonly me: Me;
  /** Calls `listener` after every change of what the views below return. */
  subscribe(listener: () => void): () => void;
  status(): ConnectionStatus;
  /** The last error of background work (live delivery, catch-up), or null. */
  lastError(): string | null;
  /** Threads, most recently active first; threads left come last. */
  threads(): ThreadView[];
  thread(threadId: string): ThreadView | null;
  /** The thread's history, oldest first. */
  messages(threadId: string): MessageView[];
  members(threadId: string): MemberView[];
  receipts(threadId: string): ReceiptsView | null;
  refreshReceipts(threadId: string): Promise<void>;
  /** Active colleagues whose name or department contains `query`. */
  searchDirectory(query: string): Promise<Person[]>;
  /** The on-call roles, who holds each now and who next. */
  roles(): Promise<RoleView[]>;
  /**
   * Starts a thread with these users (ids), and whoever holds these roles
   * at this moment (read again from the server here: nobody holding one
   * is an error that names it), and subject; resolves to its id.
   */
  createThread(userIds: string[], subject: string, roleIds?: string[]): Promise<string>;
  /**
   * Sends a message: the text (may be empty when there are files) and
   * the files, each encrypted here and uploaded before the message that
   * carries its key. Files over MAX_FILE_BYTES (attachment.ts) are refused.
   * An urgent one is to be acknowledged by its recipients; the server
   * alerts them again, then asks a backup in, when nobody does.
   */
  send(threadId: string, text: string, files?: File[], urgent?: boolean): Promise<void>;
  /** Acknowledges an urgent message (by its `UrgentView.seq`). */
  acknowledge(threadId: string, seq: number): Promise<void>;
  /** Urgent messages re-alerted that the user has not acknowledged, newest last. */
  alerts(): UrgentAlertView[];
  /**
   * One of a message's files, downloaded, decrypted and checked against
   * the SHA-256 its message names (else it throws, and nothing is
   * returned). Never kept: the bytes are the caller's to show or save.
   */
  openAttachment(threadId: string, seq: number, attachmentId: string): Promise<Uint8Array<ArrayBuffer>>;
  /** Sets how long the thread's messages are kept (seconds), or null to keep them. */
  setLifespan(threadId: string, lifespanS: number | null): Promise<void>;
  /** Recalls ("deletes for everyone") one of the user's own messages. */
  recall(threadId: string, seq: number): Promise<void>;
  addMember(threadId: string, userId: string): Promise<void>;
  removeMember(threadId: string, userId: string): Promise<void>;
  /** Marks the thread read up to its newest entry (a read receipt). */
  markRead(threadId: string): Promise<void>;
  /** Six groups of five digits, the same as `curbside safety-number USER`. */
  safetyNumber(userId: string): Promise<string>;
  /** Stops live delivery and forgets the decrypted state in memory. */
  close(): void;
}
