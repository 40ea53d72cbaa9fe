// People: search and page through users, and (administrators) add one.

import { useEffect, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading } from '../components/Bits';
import { roleName, statusName } from '../format';
import { rememberUsers } from '../names';
import { href, navigate } from '../route';
import { canWrite, type Me } from '../state';
import { ROLES, type NewUser, type Role, type User, type UserPage } from '../types';

const PAGE_SIZE = 25;

export function PeoplePage({ me }: { me: Me }) {
  const [typed, setTyped] = useState('');
  const [query, setQuery] = useState('');
  const [role, setRole] = useState('');
  const [status, setStatus] = useState('');
  // The `after` cursor of each page up to the one shown.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<UserPage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [reload, setReload] = useState(0);

  // Search as the user types, once they pause.
  useEffect(() => {
    const timer = window.setTimeout(() => {
      setQuery(typed.trim());
      setCursors([null]);
    }, 300);
    return () => window.clearTimeout(timer);
  }, [typed]);

  const after = cursors[cursors.length - 1] ?? null;
  useEffect(() => {
    let cancelled = false;
    setLoading(true);
    setError(null);
    api
      .getJson<UserPage>('/v1/admin/users', { q: query, role, status, after, limit: PAGE_SIZE })
      .then(
        (value) => {
          if (!cancelled) {
            rememberUsers(value.users);
            setPage(value);
            setLoading(false);
          }
        },
        (caught: unknown) => {
          if (!cancelled) {
            setError(api.messageOf(caught));
            setLoading(false);
          }
        },
      );
    return () => {
      cancelled = true;
    };
  }, [query, role, status, after, reload]);

  const pageNumber = cursors.length;

  return (
    <>
      <h1>People</h1>
      <form class="filters" aria-label="Find people" onSubmit={(event) => event.preventDefault()}>
        <div class="grid">
          <div>
            <label for="people-q">Search by name or department</label>
            <input id="people-q" type="search" value={typed} onInput={(event) => setTyped(event.currentTarget.value)} />
          </div>
          <div>
            <label for="people-role">Role</label>
            <select
              id="people-role"
              value={role}
              onChange={(event) => {
                setRole(event.currentTarget.value);
                setCursors([null]);
              }}
            >
              <option value="">Any role</option>
              {ROLES.map((value) => (
                <option key={value} value={value}>
                  {roleName(value)}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="people-status">Status</label>
            <select
              id="people-status"
              value={status}
              onChange={(event) => {
                setStatus(event.currentTarget.value);
                setCursors([null]);
              }}
            >
              <option value="">Any status</option>
              <option value="active">Active</option>
              <option value="deactivated">Deactivated</option>
            </select>
          </div>
        </div>
      </form>
      <ErrorText error={error} />
      <section aria-labelledby="people-results" aria-busy={loading}>
        <h2 id="people-results" class="visually-hidden">
          Results
        </h2>
        {page === null ? (
          loading && <Loading what="people" />
        ) : page.users.length === 0 ? (
          <p>No one matches.</p>
        ) : (
          <div class="table-scroll">
            <table class="striped">
              <caption class="visually-hidden">People, page {pageNumber}</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Department</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {page.users.map((user) => (
                  <tr key={user.user_id}>
                    <th scope="row">
                      <a href={href('people-detail', user.user_id)}>{user.display_name}</a>
                    </th>
                    <td>{roleName(user.role)}</td>
                    <td>{user.department}</td>
                    <td>{statusName(user.status)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <nav aria-label="Pages of people" class="pager">
          <button
            type="button"
            class="secondary"
            disabled={cursors.length <= 1 || loading}
            onClick={() => setCursors(cursors.slice(0, -1))}
          >
            Previous
          </button>
          <span>Page {pageNumber}</span>
          <button
            type="button"
            class="secondary"
            disabled={!page?.next || loading}
            onClick={() => page?.next && setCursors([...cursors, page.next])}
          >
            Next
          </button>
        </nav>
      </section>
      {canWrite(me) && <CreateUser onCreated={() => setReload((n) => n + 1)} />}
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('clinician');
  const [department, setDepartment] = useState('');
  const [licence, setLicence] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const nameInput = useRef<HTMLInputElement>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body: NewUser = { display_name: name.trim(), role, department: department.trim() };
    if (licence.trim() !== '') {
      body.licence_number = licence.trim();
    }
    try {
      const user = await api.sendJson<User>('POST', '/v1/admin/users', body);
      rememberUsers([user]);
      onCreated();
      navigate(href('people-detail', user.user_id));
    } catch (caught) {
      setError(api.messageOf(caught));
      setBusy(false);
      nameInput.current?.focus();
    }
  };

  return (
    <section aria-labelledby="create-user">
      <h2 id="create-user">Add a person</h2>
      <form onSubmit={submit}>
        <div class="grid">
          <div>
            <label for="new-name">Display name</label>
            <input
              id="new-name"
              ref={nameInput}
              required
              maxLength={100}
              value={name}
              onInput={(event) => setName(event.currentTarget.value)}
            />
          </div>
          <div>
            <label for="new-role">Role</label>
            <select id="new-role" value={role} onChange={(event) => setRole(event.currentTarget.value as Role)}>
              {ROLES.map((value) => (
                <option key={value} value={value}>
                  {roleName(value)}
                </option>
              ))}
            </select>
          </div>
        </div>
        <div class="grid">
          <div>
            <label for="new-department">Department</label>
            <input
              id="new-department"
              required
              maxLength={100}
              value={department}
              onInput={(event) => setDepartment(event.currentTarget.value)}
            />
          </div>
          <div>
            <label for="new-licence">Licence number (optional)</label>
            <input
              id="new-licence"
              maxLength={64}
              value={licence}
              onInput={(event) => setLicence(event.currentTarget.value)}
            />
          </div>
        </div>
        <ErrorText error={error} />
        <button type="submit" disabled={busy} aria-busy={busy}>
          Create user
        </button>
      </form>
    </section>
  );
}
