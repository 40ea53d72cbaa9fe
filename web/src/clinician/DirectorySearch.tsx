// Finding colleagues in the directory, to start a thread with them or add
// them to one. Searches only when asked (each search is a request the
// server audits), and offers an "Add" button per colleague found.

import { useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import type { Messenger, Person } from './model';

interface Props {
  messenger: Messenger;
  /** The search input's id (also the prefix of the ids inside). */
  id: string;
  /** The search input's label. */
  label: string;
  /** Whom not to offer: the user, and whoever is in or chosen already. */
  exclude: ReadonlySet<string>;
  /** Adds a colleague; a failure's message is shown here. */
  onAdd: (person: Person) => Promise<void> | void;
}

export function DirectorySearch({ messenger, id, label, exclude, onAdd }: Props) {
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<{ query: string; people: Person[] } | null>(null);
  const [searching, setSearching] = useState(false);
  const [adding, setAdding] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [said, setSaid] = useState('');

  const search = async (event: Event) => {
    event.preventDefault();
    const wanted = query.trim();
    if (wanted === '') {
      return;
    }
    setSearching(true);
    setError(null);
    setSaid('');
    try {
      const people = await messenger.searchDirectory(wanted);
      setFound({ query: wanted, people });
      const offered = people.filter((person) => !exclude.has(person.userId)).length;
      setSaid(offered === 1 ? '1 colleague found.' : `${offered} colleagues found.`);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setSearching(false);
    }
  };

  const add = async (person: Person) => {
    setAdding(person.userId);
    setError(null);
    try {
      await onAdd(person);
      // Done with this search: what it found is no longer the question.
      setFound(null);
      setQuery('');
      setSaid(`${person.displayName} added.`);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setAdding(null);
    }
  };

  const shown = found?.people.filter((person) => !exclude.has(person.userId)) ?? [];

  return (
    <div class="directory-search">
      <form onSubmit={search}>
        <label for={id}>{label}</label>
        <div role="group">
          <input
            id={id}
            type="search"
            required
            autocomplete="off"
            aria-describedby={`${id}-help`}
            value={query}
            onInput={(event) => setQuery(event.currentTarget.value)}
          />
          <button type="submit" disabled={searching} aria-busy={searching}>
            Search
          </button>
        </div>
        <small id={`${id}-help`}>A name or a department.</small>
      </form>
      {/* Always present, so that what it says next is announced. */}
      <p role="status" class="muted">
        {said}
      </p>
      <ErrorText error={error} />
      {found !== null && shown.length === 0 && <p>No one else matches “{found.query}”.</p>}
      {shown.length > 0 && (
        <ul class="people-list" aria-label={`Colleagues matching “${found?.query ?? ''}”`}>
          {shown.map((person) => (
            <li key={person.userId}>
              <span id={`${id}-${person.userId}`}>
                <span class="person-name">{person.displayName}</span>
                {person.department !== null && <span class="muted"> · {person.department}</span>}
              </span>
              <button
                type="button"
                class="small"
                aria-describedby={`${id}-${person.userId}`}
                disabled={adding !== null}
                aria-busy={adding === person.userId}
                onClick={() => void add(person)}
              >
                Add
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
