// The clinician's screens as hash routes: `#/threads` (the default),
// `#/threads/ID` and `#/new`. Kept apart from the console's routes
// (`../route.ts`): the two apps never run in the same session.

import { useHashRoute } from '../route';

export type ClinicianRoute = { page: 'threads' } | { page: 'thread'; threadId: string } | { page: 'new' };

export const THREADS_HREF = '#/threads';
export const NEW_THREAD_HREF = '#/new';

export function threadHref(threadId: string): string {
  return `#/threads/${encodeURIComponent(threadId)}`;
}

/**
 * The route a hash names; null for a hash that is not a route at all
 * (`#main`, the skip link's target). Any other `#/…`, a console page left
 * in the address bar say, is the thread list.
 */
export function parseRoute(hash: string): ClinicianRoute | null {
  if (hash === '' || hash === '#') {
    return { page: 'threads' };
  }
  if (!hash.startsWith('#/')) {
    return null;
  }
  const [first, second] = hash.slice(2).split('/');
  if (first === 'threads' && second !== undefined && second !== '') {
    try {
      return { page: 'thread', threadId: decodeURIComponent(second) };
    } catch {
      // A malformed escape: not a thread any link of ours made.
      return { page: 'threads' };
    }
  }
  return first === 'new' ? { page: 'new' } : { page: 'threads' };
}

/** A stable key for a route, to notice when the screen changes. */
export function routeKey(route: ClinicianRoute): string {
  return route.page === 'thread' ? `thread/${route.threadId}` : route.page;
}

/** The current route; hashes that are not routes leave it unchanged. */
export function useClinicianRoute(): ClinicianRoute {
  return useHashRoute(parseRoute, { page: 'threads' });
}
