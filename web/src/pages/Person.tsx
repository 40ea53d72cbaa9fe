// One person: their details (administrators edit them), deactivation,
// enrollment codes, devices and active sessions.

import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading, Time } from '../components/Bits';
import { Confirm } from '../components/Confirm';
import { Qr } from '../components/Qr';
import { ago, roleName, statusName } from '../format';
import { rememberUsers } from '../names';
import { href } from '../route';
import { canWrite, type Me } from '../state';
import {
  ROLES,
  type DeviceList,
  type EnrollmentCodeIssued,
  type OutstandingCodes,
  type Role,
  type SessionList,
  type User,
  type UserUpdate,
} from '../types';

function userPath(userId: string, rest = ''): string {
  return `/v1/admin/users/${api.seg(userId)}${rest}`;
}

export function PersonPage({ me, userId }: { me: Me; userId: string }) {
  const [user, setUser] = useState<User | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.getJson<User>(userPath(userId)).then(
      (value) => {
        rememberUsers([value]);
        setUser(value);
      },
      (caught: unknown) => setError(api.messageOf(caught)),
    );
  }, [userId]);

  const changed = (value: User) => {
    rememberUsers([value]);
    setUser(value);
  };

  if (user === null) {
    return (
      <>
        <h1>Person</h1>
        <p>
          <a href={href('people')}>Back to people</a>
        </p>
        {error === null ? <Loading what="this person" /> : <ErrorText error={error} />}
      </>
    );
  }
  const admin = canWrite(me);
  return (
    <>
      <p class="back">
        <a href={href('people')}>Back to people</a>
      </p>
      <h1>{user.display_name}</h1>
      <p class="subtitle">
        {roleName(user.role)} · {user.department} · <span class={`status-${user.status}`}>{statusName(user.status)}</span>
      </p>
      {admin ? <EditUser user={user} me={me} onChanged={changed} /> : <ReadUser user={user} />}
      {admin && <Status user={user} me={me} onChanged={changed} />}
      {admin && <Codes user={user} />}
      {admin && <Devices user={user} me={me} />}
      {admin && <Sessions user={user} me={me} />}
    </>
  );
}

function ReadUser({ user }: { user: User }) {
  return (
    <section aria-labelledby="person-details">
      <h2 id="person-details">Details</h2>
      <table>
        <tbody>
          <tr>
            <th scope="row">Display name</th>
            <td>{user.display_name}</td>
          </tr>
          <tr>
            <th scope="row">Role</th>
            <td>{roleName(user.role)}</td>
          </tr>
          <tr>
            <th scope="row">Department</th>
            <td>{user.department}</td>
          </tr>
          <tr>
            <th scope="row">Licence number</th>
            <td>{user.licence_number ?? '—'}</td>
          </tr>
          <tr>
            <th scope="row">Status</th>
            <td>{statusName(user.status)}</td>
          </tr>
          <tr>
            <th scope="row">User id</th>
            <td>
              <code class="id">{user.user_id}</code>
            </td>
          </tr>
          <tr>
            <th scope="row">Created</th>
            <td>
              <Time ms={user.created_at_ms} />
            </td>
          </tr>
          <tr>
            <th scope="row">Last changed</th>
            <td>
              <Time ms={user.updated_at_ms} />
            </td>
          </tr>
        </tbody>
      </table>
    </section>
  );
}

function EditUser({ user, me, onChanged }: { user: User; me: Me; onChanged: (user: User) => void }) {
  const self = user.user_id === me.userId;
  const [name, setName] = useState(user.display_name);
  const [role, setRole] = useState<Role>(user.role);
  const [department, setDepartment] = useState(user.department);
  const [licence, setLicence] = useState(user.licence_number ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    const update: UserUpdate = {};
    if (name.trim() !== user.display_name) {
      update.display_name = name.trim();
    }
    if (role !== user.role) {
      update.role = role;
    }
    if (department.trim() !== user.department) {
      update.department = department.trim();
    }
    if (licence.trim() !== (user.licence_number ?? '')) {
      if (licence.trim() === '') {
        setError('A licence number cannot be removed once recorded, only changed.');
        return;
      }
      update.licence_number = licence.trim();
    }
    if (Object.keys(update).length === 0) {
      setSaved('Nothing to save: no field was changed.');
      return;
    }
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const value = await api.sendJson<User>('PATCH', userPath(user.user_id), update);
      onChanged(value);
      setSaved('Saved.');
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="person-details">
      <h2 id="person-details">Details</h2>
      <p class="muted">
        User id <code class="id">{user.user_id}</code> · created <Time ms={user.created_at_ms} /> · last changed{' '}
        <Time ms={user.updated_at_ms} />
      </p>
      <form onSubmit={submit}>
        <div class="grid">
          <div>
            <label for="edit-name">Display name</label>
            <input
              id="edit-name"
              required
              maxLength={100}
              value={name}
              onInput={(event) => setName(event.currentTarget.value)}
            />
          </div>
          <div>
            <label for="edit-role">Role</label>
            <select
              id="edit-role"
              value={role}
              disabled={self}
              aria-describedby={self ? 'edit-role-help' : undefined}
              onChange={(event) => setRole(event.currentTarget.value as Role)}
            >
              {ROLES.map((value) => (
                <option key={value} value={value}>
                  {roleName(value)}
                </option>
              ))}
            </select>
            {self && <small id="edit-role-help">You cannot change your own role; another administrator can.</small>}
          </div>
        </div>
        <div class="grid">
          <div>
            <label for="edit-department">Department</label>
            <input
              id="edit-department"
              required
              maxLength={100}
              value={department}
              onInput={(event) => setDepartment(event.currentTarget.value)}
            />
          </div>
          <div>
            <label for="edit-licence">Licence number</label>
            <input
              id="edit-licence"
              maxLength={64}
              value={licence}
              onInput={(event) => setLicence(event.currentTarget.value)}
            />
          </div>
        </div>
        <ErrorText error={error} />
        {saved !== null && <p role="status">{saved}</p>}
        <button type="submit" disabled={busy} aria-busy={busy}>
          Save changes
        </button>
      </form>
    </section>
  );
}

function Status({ user, me, onChanged }: { user: User; me: Me; onChanged: (user: User) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const active = user.status === 'active';
  const self = user.user_id === me.userId;
  return (
    <section aria-labelledby="person-status">
      <h2 id="person-status">Status</h2>
      {active ? (
        <p>
          {user.display_name} is active.
          {self && ' You cannot deactivate your own account; another administrator can.'}
        </p>
      ) : (
        <p>{user.display_name} is deactivated: they cannot sign in and are in no thread.</p>
      )}
      {done !== null && <p role="status">{done}</p>}
      {!self && (
        <button type="button" class={active ? 'danger' : ''} onClick={() => setConfirming(true)}>
          {active ? 'Deactivate' : 'Reactivate'}
        </button>
      )}
      {confirming && (
        <Confirm
          title={active ? `Deactivate ${user.display_name}?` : `Reactivate ${user.display_name}?`}
          confirmLabel={active ? 'Deactivate' : 'Reactivate'}
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            const action = active ? 'deactivate' : 'reactivate';
            const value = await api.sendJson<User>('POST', userPath(user.user_id, `/${action}`));
            onChanged(value);
            setDone(active ? `${user.display_name} was deactivated.` : `${user.display_name} is active again.`);
          }}
        >
          {active ? (
            <p>
              Their sessions end at once (the command line’s next command fails), their devices leave every thread, and
              their unused enrollment codes stop working. You can reactivate them later; they will need to be added to
              threads again.
            </p>
          ) : (
            <p>They can sign in again with their enrolled devices. They are not put back in any thread.</p>
          )}
        </Confirm>
      )}
    </section>
  );
}

function Codes({ user }: { user: User }) {
  const [issued, setIssued] = useState<EnrollmentCodeIssued | null>(null);
  const [codes, setCodes] = useState<OutstandingCodes | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<string | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    api.getJson<OutstandingCodes>(userPath(user.user_id, '/enrollment-codes')).then(setCodes, (caught: unknown) =>
      setError(api.messageOf(caught)),
    );
  }, [user.user_id, user.status, reload]);

  const issue = async () => {
    setBusy(true);
    setError(null);
    setCopied(null);
    try {
      setIssued(await api.sendJson<EnrollmentCodeIssued>('POST', userPath(user.user_id, '/enrollment-codes')));
      setReload((n) => n + 1);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    if (issued === null) {
      return;
    }
    try {
      await navigator.clipboard.writeText(issued.code);
      setCopied('Copied to the clipboard.');
    } catch {
      setCopied('The browser would not copy it; select the code and copy it by hand.');
    }
  };

  return (
    <section aria-labelledby="person-codes">
      <h2 id="person-codes">Enrollment codes</h2>
      <p>
        A one-time code enrolls one device (the command line, or a browser for this console). A new code withdraws the
        older ones.
      </p>
      {user.status === 'active' ? (
        <button type="button" onClick={issue} disabled={busy} aria-busy={busy}>
          Issue enrollment code
        </button>
      ) : (
        <p>Reactivate {user.display_name} to issue a code.</p>
      )}
      <ErrorText error={error} />
      {issued !== null && (
        <article class="issued-code" aria-labelledby="issued-code-title">
          <h3 id="issued-code-title">New enrollment code for {user.display_name}</h3>
          <p>
            It is shown only now: hand it to {user.display_name} in person or over a trusted channel. It expires{' '}
            <Time ms={issued.expires_at_ms} /> ({ago(issued.expires_at_ms)}).
            {issued.revoked > 0 &&
              ` It replaces ${issued.revoked} earlier code${issued.revoked === 1 ? '' : 's'}, which no longer work${issued.revoked === 1 ? 's' : ''}.`}
          </p>
          <div class="code-and-qr">
            <div>
              <label for="issued-code">New enrollment code</label>
              <input id="issued-code" class="code" readOnly value={issued.code} onFocus={(event) => event.currentTarget.select()} />
              <button type="button" class="secondary" onClick={copy}>
                Copy code
              </button>
              {copied !== null && <p role="status">{copied}</p>}
            </div>
            <Qr text={issued.code} label={`QR code of the enrollment code for ${user.display_name}`} />
          </div>
        </article>
      )}
      <h3>Unused codes</h3>
      {codes === null ? (
        error === null && <Loading what="codes" />
      ) : codes.codes.length === 0 ? (
        <p>None outstanding.</p>
      ) : (
        <div class="table-scroll">
          <table class="striped">
            <thead>
              <tr>
                <th scope="col">Code id</th>
                <th scope="col">Issued</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {codes.codes.map((code) => (
                <tr key={code.code_id}>
                  <th scope="row">
                    <code class="id">{code.code_id}</code>
                  </th>
                  <td>
                    <Time ms={code.created_at_ms} />
                  </td>
                  <td>
                    <Time ms={code.expires_at_ms} />
                  </td>
                  <td>
                    <button
                      type="button"
                      class="secondary outline small"
                      aria-label={`Revoke code ${code.code_id}`}
                      onClick={() => setRevoking(code.code_id)}
                    >
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoking !== null && (
        <Confirm
          title="Revoke this enrollment code?"
          confirmLabel="Revoke"
          onClose={() => setRevoking(null)}
          onConfirm={async () => {
            await api.send('DELETE', userPath(user.user_id, `/enrollment-codes/${api.seg(revoking)}`));
            if (issued?.code_id === revoking) {
              setIssued(null);
            }
            setReload((n) => n + 1);
          }}
        >
          <p>
            Code <code class="id">{revoking}</code> will stop working at once.
          </p>
        </Confirm>
      )}
    </section>
  );
}

function Devices({ user, me }: { user: User; me: Me }) {
  const [devices, setDevices] = useState<DeviceList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [removing, setRemoving] = useState<{ id: string; name: string } | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    api.getJson<DeviceList>(userPath(user.user_id, '/devices')).then(setDevices, (caught: unknown) =>
      setError(api.messageOf(caught)),
    );
  }, [user.user_id, reload]);

  return (
    <section aria-labelledby="person-devices">
      <h2 id="person-devices">Devices</h2>
      <ErrorText error={error} />
      {devices === null ? (
        error === null && <Loading what="devices" />
      ) : devices.devices.length === 0 ? (
        <p>No enrolled devices.</p>
      ) : (
        <div class="table-scroll">
          <table class="striped">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Device id</th>
                <th scope="col">Enrolled</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {devices.devices.map((device) => (
                <tr key={device.device_id}>
                  <th scope="row">
                    {device.device_name}
                    {device.device_id === me.deviceId && <span class="muted"> (this browser)</span>}
                  </th>
                  <td>
                    <code class="id">{device.device_id}</code>
                  </td>
                  <td>
                    <Time ms={device.created_at_ms} />
                  </td>
                  <td>
                    <button
                      type="button"
                      class="secondary outline small"
                      aria-label={`Remove device ${device.device_name}`}
                      onClick={() => setRemoving({ id: device.device_id, name: device.device_name })}
                    >
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {removing !== null && (
        <Confirm
          title={`Remove the device “${removing.name}”?`}
          confirmLabel="Remove device"
          onClose={() => setRemoving(null)}
          onConfirm={async () => {
            await api.send('DELETE', userPath(user.user_id, `/devices/${api.seg(removing.id)}`));
            setReload((n) => n + 1);
          }}
        >
          <p>
            Its sessions end and it leaves every thread. It cannot sign in again; a new enrollment code is needed to
            enroll it anew.
            {removing.id === me.deviceId && ' This is the browser you are using: you will be signed out.'}
          </p>
        </Confirm>
      )}
    </section>
  );
}

function Sessions({ user, me }: { user: User; me: Me }) {
  const [sessions, setSessions] = useState<SessionList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [ending, setEnding] = useState<{ id: string; device: string } | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    api.getJson<SessionList>(userPath(user.user_id, '/sessions')).then(setSessions, (caught: unknown) =>
      setError(api.messageOf(caught)),
    );
  }, [user.user_id, user.status, reload]);

  return (
    <section aria-labelledby="person-sessions">
      <div class="page-head">
        <h2 id="person-sessions">Active sessions</h2>
        <button type="button" class="secondary outline small" onClick={() => setReload((n) => n + 1)}>
          Refresh sessions
        </button>
      </div>
      <ErrorText error={error} />
      {sessions === null ? (
        error === null && <Loading what="sessions" />
      ) : sessions.sessions.length === 0 ? (
        <p>No active sessions.</p>
      ) : (
        <div class="table-scroll">
          <table class="striped">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Signed in</th>
                <th scope="col">Last seen</th>
                <th scope="col">Expires</th>
                <th scope="col">Address</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {sessions.sessions.map((session) => (
                <tr key={session.session_id}>
                  <th scope="row">
                    {session.device_name}
                    {session.device_id === me.deviceId && <span class="muted"> (this browser)</span>}
                  </th>
                  <td>
                    <Time ms={session.created_at_ms} />
                  </td>
                  <td>
                    <Time ms={session.last_seen_at_ms} relative />
                  </td>
                  <td>
                    <Time ms={session.expires_at_ms} />
                  </td>
                  <td>{session.client_address ?? <span class="muted">unknown</span>}</td>
                  <td>
                    <button
                      type="button"
                      class="secondary outline small"
                      aria-label={`End session on ${session.device_name}`}
                      onClick={() => setEnding({ id: session.session_id, device: session.device_name })}
                    >
                      End session
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {ending !== null && (
        <Confirm
          title={`End the session of “${ending.device}”?`}
          confirmLabel="End session"
          onClose={() => setEnding(null)}
          onConfirm={async () => {
            await api.send('POST', userPath(user.user_id, `/sessions/${api.seg(ending.id)}/end`));
            setReload((n) => n + 1);
          }}
        >
          <p>Its next request is refused; the device can sign in again (remove the device to stop that).</p>
        </Confirm>
      )}
    </section>
  );
}
