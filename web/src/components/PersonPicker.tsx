// Choosing one person by name, as the Audit page's filter does: the people
// whose name or department matches what is typed (once the typing pauses),
// each a button that picks them.

import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import { rememberUsers } from '../names';
import type { User, UserPage } from '../types';
import { ErrorText } from './Bits';

interface Props {
  /** The input's id (its help text's is `${id}-help`). */
  id: string;
  label: string;
  picked: User | null;
  onPick: (user: User | null) => void;
}

export function PersonPicker({ id, label, picked, onPick }: Props) {
  const [text, setText] = useState(picked?.display_name ?? '');
  const [matches, setMatches] = useState<User[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const typed = text.trim();
    if (picked !== null || typed === '') {
      setMatches(null);
      return undefined;
    }
    let cancelled = false;
    const timer = window.setTimeout(() => {
      setError(null);
      api.getJson<UserPage>('/v1/admin/users', { q: typed, limit: 10 }).then(
        (page) => {
          if (!cancelled) {
            rememberUsers(page.users);
            setMatches(page.users);
          }
        },
        (caught: unknown) => {
          if (!cancelled) {
            setError(api.messageOf(caught));
          }
        },
      );
    }, 250);
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [text, picked]);

  return (
    <>
      <label for={id}>{label}</label>
      <input
        id={id}
        type="search"
        autocomplete="off"
        aria-describedby={`${id}-help`}
        value={text}
        onInput={(event) => {
          setText(event.currentTarget.value);
          if (picked !== null) {
            onPick(null);
          }
        }}
      />
      <small id={`${id}-help`}>
        {picked === null ? (
          'Type a name, then choose the person.'
        ) : (
          <>
            Chosen: <span class="person-name">{picked.display_name}</span> ({picked.department},{' '}
            <code class="id">{picked.user_id}</code>).
          </>
        )}
      </small>
      <ErrorText error={error} />
      {matches !== null && (
        <ul class="matches" aria-label="Matching people">
          {matches.length === 0 && <li>No one matches.</li>}
          {matches.map((user) => (
            <li key={user.user_id}>
              <button
                type="button"
                class="secondary outline small"
                onClick={() => {
                  setText(user.display_name);
                  setMatches(null);
                  onPick(user);
                }}
              >
                {user.display_name} <span class="muted">· {user.department}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
