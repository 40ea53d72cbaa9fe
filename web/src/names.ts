// Names beside ids: each user id is looked up once per sign-in
// (`GET /v1/admin/users/{id}`, itself an audited read) and remembered.

import { useEffect, useState } from 'preact/hooks';

import * as api from './api';
import type { User } from './types';

/** A user id as the server makes them; nothing else is looked up. */
const USER_ID = /^[0-9a-f]{32}$/;

const known = new Map<string, string | null>();
const pending = new Map<string, Promise<void>>();
const listeners = new Set<() => void>();

api.onSignedOut(() => {
  known.clear();
  pending.clear();
});

/** Remembers names already at hand (from a list of users). */
export function rememberUsers(users: readonly User[]): void {
  for (const user of users) {
    known.set(user.user_id, user.display_name);
  }
}

function lookUp(userId: string): Promise<void> {
  let loading = pending.get(userId);
  if (loading === undefined) {
    loading = api
      .getJson<User>(`/v1/admin/users/${api.seg(userId)}`)
      .then(
        (user) => {
          known.set(userId, user.display_name);
        },
        () => {
          known.set(userId, null);
        },
      )
      .finally(() => {
        pending.delete(userId);
        for (const listener of listeners) {
          listener();
        }
      });
    pending.set(userId, loading);
  }
  return loading;
}

/** The name of a user, if known. */
export function nameOf(userId: string | null | undefined): string | null {
  return userId ? (known.get(userId) ?? null) : null;
}

/** Looks up the names of `ids` (a few at a time) and re-renders as they come. */
export function useNames(ids: readonly (string | null | undefined)[]): (id: string | null | undefined) => string | null {
  const [, setVersion] = useState(0);
  const wanted = [...new Set(ids.filter((id): id is string => typeof id === 'string' && USER_ID.test(id)))]
    .filter((id) => !known.has(id))
    .sort();
  const key = wanted.join(',');
  useEffect(() => {
    const changed = () => setVersion((version) => version + 1);
    listeners.add(changed);
    return () => {
      listeners.delete(changed);
    };
  }, []);
  useEffect(() => {
    let cancelled = false;
    const queue = [...wanted];
    const worker = async () => {
      while (!cancelled && queue.length > 0) {
        const id = queue.shift();
        if (id !== undefined) {
          await lookUp(id);
        }
      }
    };
    void Promise.all([worker(), worker(), worker(), worker()]);
    return () => {
      cancelled = true;
    };
  }, [key]);
  return nameOf;
}
