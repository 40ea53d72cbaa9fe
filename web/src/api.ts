// The HTTP API, same origin, JSON both ways. The session's bearer token
// lives only in this module's memory: never in storage or a cookie, so it
// is gone when the tab closes, on sign-out and on idle logoff.

import type { LoggedIn } from './types';

/** An error answer: the server's code and its message for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

interface Session {
  token: string;
  sessionId: string;
  expiresAtMs: number;
}

let session: Session | null = null;
/**
 * Counts sessions started and dropped: a renewal, or a request's 401,
 * applies only to the session that was current when it began.
 */
let generation = 0;
/** Signs in again with this browser's key (see `device.ts`). */
let renew: (() => Promise<LoggedIn>) | null = null;
let renewing: Promise<void> | null = null;
let lastRequestAtMs = 0;
const signedOutListeners = new Set<(why: string | null) => void>();

/** Starts a session; `again` signs in anew when the token nears expiry. */
export function startSession(loggedIn: LoggedIn, again: () => Promise<LoggedIn>): void {
  generation += 1;
  session = {
    token: loggedIn.token,
    sessionId: loggedIn.session_id,
    expiresAtMs: loggedIn.expires_at_ms,
  };
  renew = again;
  renewing = null;
  lastRequestAtMs = Date.now();
}

/** Whether a session is open. */
export function signedIn(): boolean {
  return session !== null;
}

/** When the last request was sent (Unix ms). */
export function lastRequestAt(): number {
  return lastRequestAtMs;
}

/** When the session's token expires (Unix ms), if signed in. */
export function sessionExpiresAt(): number | null {
  return session?.expiresAtMs ?? null;
}

/** Calls `listener` whenever the session is dropped, with why (or null). */
export function onSignedOut(listener: (why: string | null) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

/** Drops the token (it is forgotten, not stored anywhere) and tells the app. */
export function dropSession(why: string | null): void {
  if (session === null) {
    return;
  }
  generation += 1;
  session = null;
  renew = null;
  renewing = null;
  for (const listener of signedOutListeners) {
    listener(why);
  }
}

/** Ends a session on the server with its token (best effort). */
async function logout(token: string): Promise<void> {
  try {
    await fetch('/v1/auth/logout', {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    // The session ends on the server by itself when idle or expired.
  }
}

/** Ends the session on the server (best effort), then drops it. */
export async function signOut(why: string | null): Promise<void> {
  const ending = session;
  dropSession(why);
  if (ending !== null) {
    await logout(ending.token);
  }
}

/**
 * Signs in anew before the token expires (only while the user is active),
 * then ends the session it replaces. A renewal that finishes after its
 * session was dropped or replaced (sign-out, idle logoff, a new sign-in)
 * changes nothing but ends the session it made; it rejects only if the
 * session it was to renew is still the current one.
 */
export async function renewSession(): Promise<void> {
  if (session === null || renew === null) {
    return;
  }
  if (renewing !== null) {
    return renewing;
  }
  const again = renew;
  const started = generation;
  const replaced = session;
  let renewal: Promise<void> | null = null;
  renewal = (async () => {
    try {
      let loggedIn: LoggedIn;
      try {
        loggedIn = await again();
      } catch (error) {
        if (generation === started) {
          throw error;
        }
        // The session it was to renew is gone already.
        return;
      }
      if (generation === started && session === replaced) {
        startSession(loggedIn, again);
        void logout(replaced.token);
      } else {
        void logout(loggedIn.token);
      }
    } finally {
      if (renewing === renewal) {
        renewing = null;
      }
    }
  })();
  renewing = renewal;
  return renewal;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

/** `path` with `query`'s non-empty values. */
export function withQuery(path: string, query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') {
      params.set(name, String(value));
    }
  }
  const text = params.toString();
  return text === '' ? path : `${path}?${text}`;
}

/** A path segment, percent-encoded. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText}.`.replace(' .', '.');
  try {
    const body: unknown = await response.json();
    const detail =
      typeof body === 'object' && body !== null && 'error' in body ? (body as { error: unknown }).error : body;
    if (typeof detail === 'object' && detail !== null) {
      const fields = detail as { code?: unknown; message?: unknown };
      if (typeof fields.message === 'string' && fields.message !== '') {
        message = fields.message;
      }
      if (typeof fields.code === 'string') {
        code = fields.code;
      }
    }
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

interface CallOptions {
  query?: Query;
  body?: unknown;
  /** A binary body (`application/octet-stream`), instead of `body`. */
  bytes?: Blob;
  /** Whether the session's token is sent (default true). */
  auth?: boolean;
  signal?: AbortSignal;
}

/**
 * Sends a request and returns the response if it succeeded (2xx);
 * otherwise throws an `ApiError` carrying the server's message. A 401 on
 * a signed-in request means the session has ended (idle, ended by an
 * administrator, account deactivated): the app goes back to sign-in.
 */
export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  return attempt(method, path, options, true);
}

async function attempt(method: string, path: string, options: CallOptions, retry: boolean): Promise<Response> {
  const auth = options.auth ?? true;
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (auth) {
    if (session === null) {
      throw new ApiError(401, 'signed_out', 'You are signed out; sign in again.');
    }
    if (session.expiresAtMs - Date.now() < 60_000) {
      await renewSession();
    }
    if (session === null) {
      throw new ApiError(401, 'signed_out', 'You are signed out; sign in again.');
    }
    headers['Authorization'] = `Bearer ${session.token}`;
  }
  const sentWith = generation;
  const init: RequestInit = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  } else if (options.bytes !== undefined) {
    // A Blob is sent with its Content-Length, and can be sent again on retry.
    headers['Content-Type'] = 'application/octet-stream';
    init.body = options.bytes;
  }
  if (options.signal !== undefined) {
    init.signal = options.signal;
  }
  let response: Response;
  try {
    if (auth) {
      lastRequestAtMs = Date.now();
    }
    response = await fetch(withQuery(path, options.query), init);
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') {
      throw error;
    }
    throw new ApiError(0, 'network', 'The server could not be reached; check the connection and try again.');
  }
  if (response.ok) {
    return response;
  }
  const error = await errorOf(response);
  if (auth && response.status === 401) {
    if (generation !== sentWith) {
      // Sent with a session renewed (and ended) since: the server refused
      // it before acting, so send it once more with the session now open.
      if (retry && session !== null) {
        return attempt(method, path, options, false);
      }
    } else {
      dropSession(error.message);
    }
  }
  throw error;
}

/** `GET` a JSON answer. */
export async function getJson<T>(path: string, query?: Query, auth = true): Promise<T> {
  const options: CallOptions = { auth };
  if (query !== undefined) {
    options.query = query;
  }
  const response = await call('GET', path, options);
  return (await response.json()) as T;
}

/** A request with a JSON body (or none), answered with JSON. */
export async function sendJson<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
  const response = await call(method, path, body === undefined ? { auth } : { body, auth });
  return (await response.json()) as T;
}

/** A request with a binary body (a Blob, `application/octet-stream`), answered with JSON. */
export async function sendBytes<T>(method: string, path: string, bytes: Blob): Promise<T> {
  const response = await call(method, path, { bytes });
  return (await response.json()) as T;
}

/** `GET` a binary answer, whole. */
export async function getBytes(path: string, maxBytes?: number): Promise<Uint8Array<ArrayBuffer>> {
  const response = await call('GET', path);
  // Never more than the caller expects is taken in.
  const announced = Number(response.headers.get('content-length') ?? 'NaN');
  if (maxBytes !== undefined && Number.isFinite(announced) && announced > maxBytes) {
    await response.body?.cancel();
    throw new Error('The server sent more than the file the message names; it was not opened.');
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (maxBytes !== undefined && bytes.length > maxBytes) {
    throw new Error('The server sent more than the file the message names; it was not opened.');
  }
  return bytes;
}

/** A request answered with no content (204). */
export async function send(method: string, path: string, body?: unknown, query?: Query): Promise<void> {
  const options: CallOptions = {};
  if (body !== undefined) {
    options.body = body;
  }
  if (query !== undefined) {
    options.query = query;
  }
  await call(method, path, options);
}

/** The message to show for any error. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
