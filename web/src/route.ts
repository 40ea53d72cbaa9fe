// Hash routes (`#/people/ID`), so the server needs to serve only
// `/admin/` and its assets. A hash that does not start with `#/` (the skip
// link's `#main`) is not a route.

import { useEffect, useState } from 'preact/hooks';

export type PageName = 'overview' | 'people' | 'people-detail' | 'audit' | 'policy' | 'roles' | 'retention';

export interface Route {
  page: PageName;
  /** The user shown by `people-detail`. */
  userId?: string;
}

const SIMPLE: Record<string, PageName> = {
  overview: 'overview',
  people: 'people',
  audit: 'audit',
  policy: 'policy',
  roles: 'roles',
  retention: 'retention',
};

export function parseRoute(hash: string): Route | null {
  if (!hash.startsWith('#/')) {
    return null;
  }
  const parts = hash.slice(2).split('/');
  const first = parts[0] ?? '';
  if (first === 'people' && parts[1] !== undefined && parts[1] !== '') {
    return { page: 'people-detail', userId: decodeURIComponent(parts[1]) };
  }
  const page = SIMPLE[first];
  return page ? { page } : { page: 'overview' };
}

export function href(page: PageName, userId?: string): string {
  if (page === 'people-detail') {
    return `#/people/${encodeURIComponent(userId ?? '')}`;
  }
  return `#/${page}`;
}

export function navigate(to: string): void {
  window.location.hash = to;
}

/** The current route; hashes that are not routes leave it unchanged. */
export function useRoute(): Route {
  return useHashRoute(parseRoute, { page: 'overview' });
}

/**
 * The route `parse` reads from the page's hash (`fallback` when it reads
 * none at first), following the hash as it changes; a hash that is not a
 * route (the skip link's `#main`) leaves it unchanged.
 */
export function useHashRoute<T>(parse: (hash: string) => T | null, fallback: T): T {
  const [route, setRoute] = useState<T>(() => parse(window.location.hash) ?? fallback);
  useEffect(() => {
    const changed = () => {
      const next = parse(window.location.hash);
      if (next !== null) {
        setRoute(next);
      }
    };
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, [parse]);
  return route;
}
