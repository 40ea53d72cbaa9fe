// Starting a thread: a subject, an on-call role (whoever holds it when the
// thread starts) and the colleagues found in the directory, then "Start
// thread" (the messenger makes the MLS group and welcomes their devices)
// and on to the new thread.

import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading } from '../components/Bits';
import { navigate } from '../route';
import { ShortTime } from './bits';
import { DirectorySearch } from './DirectorySearch';
import type { Messenger, Person, RoleView } from './model';
import { threadHref } from './route';

export function NewThreadPage({ messenger }: { messenger: Messenger }) {
  const [subject, setSubject] = useState('');
  const [chosen, setChosen] = useState<Person[]>([]);
  const [roles, setRoles] = useState<RoleView[] | null>(null);
  const [rolesError, setRolesError] = useState<string | null>(null);
  const [roleId, setRoleId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let shown = true;
    messenger.roles().then(
      (found) => shown && setRoles(found),
      (caught: unknown) => shown && setRolesError(`The on-call roles could not be read: ${api.messageOf(caught)}`),
    );
    return () => {
      shown = false;
    };
  }, [messenger]);

  const role = roles?.find((listed) => listed.roleId === roleId) ?? null;
  const exclude = new Set([messenger.me.userId, ...chosen.map((person) => person.userId)]);

  const start = async () => {
    if (subject.trim() === '') {
      setError('Give the thread a subject.');
      return;
    }
    if (chosen.length === 0 && role === null) {
      setError('Add at least one colleague, or choose a role.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // The role is resolved by the messenger, to whoever holds it at this moment.
      const threadId = await messenger.createThread(
        chosen.map((person) => person.userId),
        subject.trim(),
        role === null ? [] : [role.roleId],
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

      <section aria-labelledby="new-thread-role">
        <h2 id="new-thread-role">Start with a role</h2>
        <ErrorText error={rolesError} />
        {roles === null && rolesError === null && <Loading what="the on-call roles" />}
        {roles !== null && roles.length === 0 && <p class="muted">No on-call roles are set up; your administrator makes them.</p>}
        {roles !== null && roles.length > 0 && (
          <>
            <label for="new-thread-role-choice">Role</label>
            <select
              id="new-thread-role-choice"
              aria-describedby="new-thread-role-help"
              value={roleId}
              disabled={busy}
              onChange={(event) => setRoleId(event.currentTarget.value)}
            >
              <option value="">No role</option>
              {roles.map((listed) => (
                <option key={listed.roleId} value={listed.roleId}>
                  {roleOption(listed)}
                </option>
              ))}
            </select>
            <small id="new-thread-role-help">
              Whoever holds the role when you start the thread joins it, besides any colleagues you add below.
            </small>
            {role !== null && <RoleShifts role={role} />}
          </>
        )}
      </section>

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
        {role !== null && (
          <p>
            Whoever holds <span class="person-name">{role.name}</span> when you start it
            {role.holder === null ? ' (nobody right now)' : ` (now ${role.holder.displayName})`}.
          </p>
        )}
        {chosen.length === 0 ? (
          role === null && <p class="muted">No one yet: choose a role, or find colleagues above and add them.</p>
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

/** A role in the list: its name, department and who holds it now. */
function roleOption(role: RoleView): string {
  const department = role.department === '' ? '' : ` (${role.department})`;
  return `${role.name}${department}: ${role.holder === null ? 'nobody right now' : `${role.holder.displayName} now`}`;
}

/** Who holds the chosen role now, until when, and whose shift is next. */
function RoleShifts({ role }: { role: RoleView }) {
  return (
    <p class="role-shifts">
      {role.holder === null ? (
        <>Nobody holds {role.name} right now.</>
      ) : (
        <>
          Held now by <span class="person-name">{role.holder.displayName}</span>, until <ShortTime ms={role.holder.endsAtMs} />.
        </>
      )}{' '}
      {role.next === null ? (
        <>No next shift is planned.</>
      ) : (
        <>
          Next: <span class="person-name">{role.next.displayName}</span>, from <ShortTime ms={role.next.startsAtMs} /> to{' '}
          <ShortTime ms={role.next.endsAtMs} />.
        </>
      )}
    </p>
  );
}
