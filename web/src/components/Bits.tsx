// Small pieces every page uses.

import { ago, isoTime, localTime } from '../format';

export function ErrorText({ error }: { error: string | null }) {
  return error === null ? null : (
    <p role="alert" class="error">
      {error}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return <p aria-busy="true">Loading {what}…</p>;
}

/** A time: local, with its ISO form for machines and on hover. */
export function Time({ ms, relative = false }: { ms: number; relative?: boolean }) {
  const iso = isoTime(ms);
  return (
    <time dateTime={iso} title={iso}>
      {localTime(ms)}
      {relative ? ` (${ago(ms)})` : ''}
    </time>
  );
}

/** A user's name with their id beside it. */
export function NameAndId({ name, id }: { name: string | null; id: string | null }) {
  if (id === null || id === '') {
    return <span class="muted">—</span>;
  }
  return (
    <span class="name-and-id">
      {name !== null ? <span class="person-name">{name}</span> : <span class="muted">(unknown)</span>}{' '}
      <code class="id">{id}</code>
    </span>
  );
}
