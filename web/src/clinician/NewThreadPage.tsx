// Starting a thread: a subject, the colleagues found in the directory,
// then "Start thread" (the messenger makes the MLS group and welcomes
// their devices) and on to the new thread.

import { useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { navigate } from '../route';
import { DirectorySearch } from './DirectorySearch';
import type { Messenger, Person } from './model';
import { threadHref } from './route';

export function NewThreadPage({ messenger }: { messenger: Messenger }) {
  const [subject, setSubject] = useState('');
  const [chosen, setChosen] = useState<Person[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const exclude = new Set([messenger.me.userId, ...chosen.map((person) => person.userId)]);

  const start = async () => {
    if (subject.trim() === '') {
      setError('Give the thread a subject.');
      return;
    }
    if (chosen.length === 0) {
      setError('Add at least one colleague.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const threadId = await messenger.createThread(
        chosen.map((person) => person.userId),
        subject.trim(),
      );
      navigate(threadHref(threadId));
    } catch (caught) {
      setError(api.messageOf(caught));
      setBusy(false);
    }
  };

  return (
    <>
      <h1>New thread</h1>
      <label for="new-thread-subject">Subject</label>
      <input
        id="new-thread-subject"
        required
        maxLength={200}
        autocomplete="off"
        aria-describedby="new-thread-subject-help"
        value={subject}
        onInput={(event) => setSubject(event.currentTarget.value)}
      />
      <small id="new-thread-subject-help">
        Members see it; it is encrypted like the messages. Keep patient identifiers to the minimum the policy allows.
      </small>

      <section aria-labelledby="new-thread-find">
        <h2 id="new-thread-find">Colleagues</h2>
        <DirectorySearch
          messenger={messenger}
          id="new-thread-search"
          label="Find colleagues"
          exclude={exclude}
          onAdd={(person) => setChosen((list) => [...list, person])}
        />
      </section>

      <section aria-labelledby="new-thread-chosen">
        <h2 id="new-thread-chosen">In this thread</h2>
        {chosen.length === 0 ? (
          <p class="muted">No one yet: find colleagues above and add them.</p>
        ) : (
          <ul class="people-list">
            {chosen.map((person) => (
              <li key={person.userId}>
                <span id={`chosen-${person.userId}`} class="person-name">
                  {person.displayName}
                </span>
                <button
                  type="button"
                  class="secondary outline small"
                  aria-describedby={`chosen-${person.userId}`}
                  disabled={busy}
                  onClick={() => setChosen((list) => list.filter((other) => other.userId !== person.userId))}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
        )}
      </section>

      <ErrorText error={error} />
      <button type="button" disabled={busy} aria-busy={busy} onClick={() => void start()}>
        Start thread
      </button>
    </>
  );
}
