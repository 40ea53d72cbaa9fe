// What the console remembers between pages, in memory only.

import type { Role } from './types';

/** The last verification of the whole log in this browser. */
export type Verified =
  | { ok: true; entries: number; lastSeq: number | null; atMs: number }
  | { ok: false; brokenSeq: number | null; message: string; atMs: number };

let lastVerified: Verified | null = null;

export function lastVerification(): Verified | null {
  return lastVerified;
}

export function recordVerification(verified: Verified | null): void {
  lastVerified = verified;
}

/** Who is signed in. */
export interface Me {
  userId: string;
  displayName: string;
  role: Role;
  deviceId: string;
}

export function canWrite(me: Me): boolean {
  return me.role === 'admin';
}

export function canReview(me: Me): boolean {
  return me.role === 'admin' || me.role === 'auditor';
}
