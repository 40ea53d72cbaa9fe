// Idle logoff. After IDLE_MS without the user touching the page (a key, a
// click or tap, a scroll wheel) the token is dropped and the sign-in screen
// shown, as the server ends a session idle that long. While the user is
// active the session is kept: the token is renewed by signing in again
// with this browser's key shortly before it expires, and a quiet
// `GET /v1/me` keeps the server from ending a session whose user is busy
// in the page without sending requests (writing a policy, say).

import * as api from './api';

/**
 * The server's default `session_idle_seconds` (15 minutes,
 * `config::DEFAULT_SESSION_IDLE`); the API does not publish the configured
 * value, so a server set shorter ends the session first (the next request
 * gets 401 and the console returns to sign-in with the server's message).
 */
export const IDLE_MS = 15 * 60 * 1000;
/** How often the clock is checked. */
const TICK_MS = 10_000;
/** Requests at least this far apart while active keep the server session. */
const KEEPALIVE_MS = 5 * 60 * 1000;
/** Renew the token when it has less than this left. */
const RENEW_BEFORE_MS = 2 * 60 * 1000;

const ACTIVITY_EVENTS = ['keydown', 'pointerdown', 'wheel', 'touchstart'] as const;

let lastActivityMs = Date.now();
let idleHandler: (() => void) | null = null;

/** Whether the user has been idle too long (checked before counting new activity). */
function idleTooLong(now: number): boolean {
  return api.signedIn() && now - lastActivityMs >= IDLE_MS;
}

function touch(): void {
  const now = Date.now();
  // A key pressed on a screen left alone (or a laptop woken from sleep
  // before the timer ran) must not revive a session that should have ended.
  if (idleTooLong(now)) {
    idleHandler?.();
  }
  lastActivityMs = now;
}

/** Starts watching; `onIdle` runs once the user has been idle too long. */
export function watchIdle(onIdle: () => void): () => void {
  idleHandler = onIdle;
  lastActivityMs = Date.now();
  for (const name of ACTIVITY_EVENTS) {
    document.addEventListener(name, touch, { capture: true, passive: true });
  }
  const timer = window.setInterval(() => {
    if (!api.signedIn()) {
      return;
    }
    const now = Date.now();
    if (idleTooLong(now)) {
      onIdle();
      return;
    }
    const expires = api.sessionExpiresAt();
    if (expires !== null && expires - now < RENEW_BEFORE_MS) {
      api.renewSession().catch(() => api.signOut('Your session could not be renewed; sign in again.'));
      return;
    }
    const lastRequest = api.lastRequestAt();
    if (now - lastRequest >= KEEPALIVE_MS && lastActivityMs > lastRequest) {
      api.getJson('/v1/me').catch(() => undefined);
    }
  }, TICK_MS);
  return () => {
    idleHandler = null;
    window.clearInterval(timer);
    for (const name of ACTIVITY_EVENTS) {
      document.removeEventListener(name, touch, { capture: true });
    }
  };
}
