// The clinical workflow as the messenger (engine.ts) meets it on the wire
// (`curbside_proto::clinical`): urgent messages and their
// acknowledgements, the changes of membership the server asks member
// clients to commit, and on-call roles. Priority is metadata the server
// sees (it escalates by it); what an urgent message says is as encrypted
// as any other message, and so is a `forward` passing one on.

import type { ClinicalRoleList, Shift } from '../types';
import type { RoleView, ShiftView, UrgentStage } from './model';

/** One user's acknowledgement (`Ack`). */
export interface Ack {
  user_id: string;
  at_ms: number;
}

/** An urgent message of a thread, as `GET /v1/threads/{id}` and `POST .../ack` give it. */
export interface UrgentStatus {
  seq: number;
  sender_user: string;
  stage: UrgentStage;
  acks: Ack[];
  escalated_to?: string | null;
}

/** A device the server asks member clients to add (`PendingAdd`). */
export interface PendingAdd {
  user_id: string;
  device_id: string;
  /** An escalation asked its user in: the urgent message to pass on to them. */
  for_urgent_seqs?: number[];
}

/** `GET /v1/membership/pending`: per thread of this device, what to commit. */
export interface PendingMembership {
  threads: { thread_id: string; add: PendingAdd[]; remove: string[] }[];
}

/** The live events of the clinical workflow (`Event::Acknowledged`, `Event::Urgent`). */
export type UrgentEvent =
  | { type: 'acknowledged'; thread_id: string; seq: number; user_id: string; at_ms: number }
  | { type: 'urgent'; thread_id: string; seq: number; stage: 'realerted' | 'escalated'; backup_user?: string | null };

/** `Content::Forward`: an urgent message passed on to a backup whom its escalation asked in. */
export interface ForwardContent {
  type: 'forward';
  seq: number;
  sender_user: string;
  sent_at_ms: number;
  text: string;
}

/** A decrypted object that is a well-formed `forward`, or null. */
export function readForward(record: Record<string, unknown>): ForwardContent | null {
  const { type, seq, sender_user, sent_at_ms, text } = record;
  if (
    Object.keys(record).sort().join(',') !== 'sender_user,sent_at_ms,seq,text,type' ||
    type !== 'forward' ||
    typeof seq !== 'number' ||
    !Number.isSafeInteger(seq) ||
    seq < 1 ||
    typeof sender_user !== 'string' ||
    !/^[0-9a-f]{32}$/.test(sender_user) ||
    typeof sent_at_ms !== 'number' ||
    !Number.isSafeInteger(sent_at_ms) ||
    typeof text !== 'string'
  ) {
    return null;
  }
  // Keys in the CLI's order (serde's: the tag, then the fields).
  return { type: 'forward', seq, sender_user, sent_at_ms, text };
}

function shiftView(shift: Shift): ShiftView {
  return { userId: shift.user_id, displayName: shift.display_name, startsAtMs: shift.starts_at_ms, endsAtMs: shift.ends_at_ms };
}

/** The roles as the screens show them: who holds each at the server's `now_ms`, and whose shift starts next. */
export function roleViews(list: ClinicalRoleList): RoleView[] {
  return list.roles.map((role) => {
    const next = role.shifts.find((shift) => shift.starts_at_ms > list.now_ms && shift.shift_id !== role.holder?.shift_id);
    return {
      roleId: role.role_id,
      name: role.name,
      department: role.department,
      holder: role.holder === null ? null : shiftView(role.holder),
      next: next === undefined ? null : shiftView(next),
    };
  });
}

/**
 * A browser notification for a re-alert, if the user allowed them: no
 * subject, name or text (a notification may show on a locked screen, and
 * stays in the system's list).
 */
export function notifyRealert(tag: string): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') {
    return;
  }
  try {
    new Notification('Curbside', { body: 'An urgent message is waiting for your acknowledgement.', tag });
  } catch {
    // Some browsers allow notifications only from a service worker: the page's alert is there anyway.
  }
}
