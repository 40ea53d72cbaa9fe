// Roles & escalation: on-call roles ("Cardiology on-call"), the shifts
// they are held in and the handoffs between them, and each department's
// escalation policy for urgent messages nobody acknowledges.
// Administrators create roles, assign and cancel shifts and set the
// policies; auditors read them.

import { useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading, Time } from '../components/Bits';
import { Confirm } from '../components/Confirm';
import { useNames } from '../names';
import { canWrite, type Me } from '../state';
import type {
  ClinicalRole,
  ClinicalRoleList,
  EscalationPolicies,
  EscalationPolicy,
  NewClinicalRole,
  Shift,
} from '../types';
import { browserZone, sameZone, zonedText } from '../zones';
import { ANY_DEPARTMENT, DEPARTMENT_MAX, ESCALATION_PATH, PolicyTable, SetPolicy } from './Escalation';
import { useLoad } from './Policy';
import { AssignShift, ROLES_PATH } from './Shifts';

const ROLE_NAME_MAX = 100;

/** Who holds the role at `at`: of the shifts on then, the one that started last. */
function holderAt(shifts: readonly Shift[], at: number): Shift | null {
  let holder: Shift | null = null;
  for (const shift of shifts) {
    const on = shift.starts_at_ms <= at && at < shift.ends_at_ms;
    if (on && (holder === null || shift.starts_at_ms >= holder.starts_at_ms)) {
      holder = shift;
    }
  }
  return holder;
}

interface Handoff {
  /** Who held the role before its holder (or, with none, last), and until when. */
  before: { shift: Shift; until: number } | null;
  /** Who holds it next and from when; `gapFrom` when no one holds it in between. */
  next: { shift: Shift; from: number; gapFrom: number | null } | null;
}

/** The handoffs around `nowMs`, from the role's shifts. */
function handoffOf(role: ClinicalRole, nowMs: number): Handoff {
  const holder = role.holder;
  const others = role.shifts.filter((shift) => shift.shift_id !== holder?.shift_id);
  const since = holder?.starts_at_ms ?? nowMs;
  let before: Handoff['before'] = null;
  const handing = holderAt(others, since - 1);
  if (handing !== null) {
    before = { shift: handing, until: since };
  } else {
    for (const shift of others) {
      if (shift.ends_at_ms <= since && (before === null || shift.ends_at_ms > before.until)) {
        before = { shift, until: shift.ends_at_ms };
      }
    }
  }

  let next: Handoff['next'] = null;
  let gapFrom: number | null = null;
  const changes = [...new Set(role.shifts.flatMap((shift) => [shift.starts_at_ms, shift.ends_at_ms]))]
    .filter((at) => at > nowMs)
    .sort((a, b) => a - b);
  for (const at of changes) {
    const then = holderAt(role.shifts, at);
    if (then === null) {
      if (holder !== null && gapFrom === null) {
        gapFrom = at;
      }
    } else if (then.shift_id !== holder?.shift_id) {
      next = { shift: then, from: at, gapFrom };
      break;
    }
  }
  return { before, next };
}

/** Where a shift stands at `nowMs`. */
function shiftStatus(shift: Shift, role: ClinicalRole, nowMs: number): string {
  if (shift.ends_at_ms <= nowMs) {
    return 'Over';
  }
  if (shift.starts_at_ms > nowMs) {
    return 'Coming';
  }
  return role.holder?.shift_id === shift.shift_id ? 'Holds the role' : 'On shift (overlapped)';
}

/** The name of a shift's Cancel button: whose, and from when. */
function cancelLabel(shift: Shift, nowMs: number): string {
  return `Cancel the shift of ${shift.display_name} from ${zonedText(shift.starts_at_ms, shift.timezone, nowMs)}`;
}

/** An instant in the shift's own time zone, and in the viewer's when it differs. */
function When({ ms, zone, nowMs }: { ms: number; zone: string; nowMs: number }) {
  const viewer = browserZone();
  const iso = new Date(ms).toISOString();
  return (
    <span class="when">
      <time dateTime={iso} title={`${iso} (${zone})`}>
        {zonedText(ms, zone, nowMs)}
      </time>
      {!sameZone(zone, viewer) && <span class="your-time muted"> ({zonedText(ms, viewer, nowMs)} your time)</span>}
    </span>
  );
}

export function RolesPage({ me }: { me: Me }) {
  const [rolesReload, setRolesReload] = useState(0);
  const [policiesReload, setPoliciesReload] = useState(0);
  const roles = useLoad<ClinicalRoleList>(ROLES_PATH, rolesReload);
  const policies = useLoad<EscalationPolicies>(ESCALATION_PATH, policiesReload);
  const admin = canWrite(me);
  /** The role the shift form assigns (set by a role's button, or a new role). */
  const [shiftRoleId, setShiftRoleId] = useState<string | null>(null);
  /** The policy loaded into the form to change it; `n` starts the form afresh. */
  const [editing, setEditing] = useState<{ policy: EscalationPolicy | null; n: number }>({ policy: null, n: 0 });

  const roleList = roles.kind === 'ok' ? roles.value.roles : [];
  const policyList = policies.kind === 'ok' ? policies.value.policies : [];
  const names = useNames(policyList.map((policy) => (policy.backup.kind === 'user' ? policy.backup.user_id : null)));
  const departments = [
    ...new Set([
      ...roleList.map((role) => role.department),
      ...policyList.map((policy) => policy.department).filter((department) => department !== ANY_DEPARTMENT),
    ]),
  ].sort();
  const viewer = browserZone();

  return (
    <>
      <h1>Roles & escalation</h1>
      <p>
        On-call roles such as “Cardiology on-call” are held in shifts, so a message to the role reaches whoever holds it
        at the time; an urgent message nobody acknowledges is alerted again, then escalated to a backup, as its
        recipients’ department’s policy says.
        {!admin && ' Administrators change these; as an auditor you can read them.'}
      </p>
      {admin && (
        <datalist id="known-departments">
          {departments.map((department) => (
            <option key={department} value={department} />
          ))}
        </datalist>
      )}
      <section aria-labelledby="roles">
        <h2 id="roles">Roles</h2>
        <p>
          Where shifts overlap, the one that started last holds the role: that is how a handoff is planned. Times are
          shown in each shift’s own time zone, and in yours ({viewer}) where it differs.
        </p>
        {roles.kind === 'loading' && <Loading what="the roles" />}
        {roles.kind === 'error' && <ErrorText error={roles.message} />}
        {roles.kind === 'ok' && (
          <RoleCards
            list={roles.value}
            admin={admin}
            onCancelled={() => setRolesReload((n) => n + 1)}
            onAssign={(role) => {
              setShiftRoleId(role.role_id);
              document.getElementById('shift-person')?.focus();
            }}
          />
        )}
      </section>
      {admin && (
        <CreateRole
          onCreated={(role) => {
            setShiftRoleId(role.role_id);
            setRolesReload((n) => n + 1);
          }}
        />
      )}
      {admin && roles.kind === 'ok' && (
        <AssignShift
          roles={roleList}
          roleId={shiftRoleId}
          onRoleChange={setShiftRoleId}
          onAssigned={() => setRolesReload((n) => n + 1)}
        />
      )}
      <section aria-labelledby="escalation">
        <h2 id="escalation">Escalation policies</h2>
        <p>
          When no recipient acknowledges an urgent message, they are alerted again after the re-alert time, and the
          message escalates to the backup after the escalation time, both counted from sending. A backup role reaches
          whoever holds it at that moment. A department without a policy of its own follows the one for every other
          department (<code>*</code>).
        </p>
        {policies.kind === 'loading' && <Loading what="the escalation policies" />}
        {policies.kind === 'error' && <ErrorText error={policies.message} />}
        {policies.kind === 'ok' && (
          <PolicyTable
            policies={policyList}
            roles={roleList}
            names={names}
            admin={admin}
            onChange={(policy) => setEditing((current) => ({ policy, n: current.n + 1 }))}
          />
        )}
      </section>
      {admin && (
        <SetPolicy
          key={editing.n}
          initial={editing.policy}
          roles={roleList}
          onSaved={() => setPoliciesReload((n) => n + 1)}
        />
      )}
    </>
  );
}

function RoleCards({
  list,
  admin,
  onCancelled,
  onAssign,
}: {
  list: ClinicalRoleList;
  admin: boolean;
  onCancelled: () => void;
  onAssign: (role: ClinicalRole) => void;
}) {
  const [cancelling, setCancelling] = useState<{ role: ClinicalRole; shift: Shift } | null>(null);
  const [cancelled, setCancelled] = useState<string | null>(null);
  const nowMs = list.now_ms;

  return (
    <>
      <p class="muted">
        As of <Time ms={nowMs} />.
      </p>
      {cancelled !== null && <p role="status">{cancelled}</p>}
      {list.roles.length === 0 ? (
        <p>No role has been created.</p>
      ) : (
        list.roles.map((role) => (
          <RoleCard
            key={role.role_id}
            role={role}
            nowMs={nowMs}
            admin={admin}
            onAssign={() => onAssign(role)}
            onCancel={(shift) => {
              setCancelled(null);
              setCancelling({ role, shift });
            }}
          />
        ))
      )}
      {cancelling !== null && (
        <Confirm
          title="Cancel this shift?"
          confirmLabel="Cancel shift"
          onClose={() => setCancelling(null)}
          onConfirm={async () => {
            const { role, shift } = cancelling;
            await api.send('DELETE', `${ROLES_PATH}/${api.seg(role.role_id)}/shifts/${api.seg(shift.shift_id)}`);
            setCancelled(`Cancelled ${shift.display_name}’s shift as ${role.name}.`);
            onCancelled();
          }}
        >
          <p>
            <span class="person-name">{cancelling.shift.display_name}</span>’s shift as{' '}
            <span class="role-name">{cancelling.role.name}</span>, from{' '}
            <When ms={cancelling.shift.starts_at_ms} zone={cancelling.shift.timezone} nowMs={nowMs} /> until{' '}
            <When ms={cancelling.shift.ends_at_ms} zone={cancelling.shift.timezone} nowMs={nowMs} /> (
            {cancelling.shift.timezone}).
          </p>
          {cancelling.role.holder?.shift_id === cancelling.shift.shift_id && (
            <p>
              They hold the role now. Cancelling the shift hands it at once to whoever else is on shift, if anyone;
              otherwise no one holds it until the next shift starts.
            </p>
          )}
        </Confirm>
      )}
    </>
  );
}

function RoleCard({
  role,
  nowMs,
  admin,
  onAssign,
  onCancel,
}: {
  role: ClinicalRole;
  nowMs: number;
  admin: boolean;
  onAssign: () => void;
  onCancel: (shift: Shift) => void;
}) {
  const titleId = `role-${role.role_id}`;
  const holder = role.holder;
  const { before, next } = handoffOf(role, nowMs);

  return (
    <article class="role-card" aria-labelledby={titleId}>
      <header>
        <h3 id={titleId} class="role-name">
          {role.name}
        </h3>
        <span class="muted">{role.department}</span>
      </header>
      <dl class="handoff">
        <div>
          <dt>Now</dt>
          <dd>
            {holder === null ? (
              'No one holds this role now.'
            ) : (
              <>
                <span class="person-name">{holder.display_name}</span>, until{' '}
                <When ms={holder.ends_at_ms} zone={holder.timezone} nowMs={nowMs} />
              </>
            )}
          </dd>
        </div>
        <div>
          <dt>Before</dt>
          <dd>
            {before === null ? (
              <span class="muted">No one</span>
            ) : (
              <>
                <span class="person-name">{before.shift.display_name}</span>, until{' '}
                <When ms={before.until} zone={before.shift.timezone} nowMs={nowMs} />
              </>
            )}
          </dd>
        </div>
        <div>
          <dt>Next</dt>
          <dd>
            {next === null ? (
              <span class="muted">No shift planned</span>
            ) : (
              <>
                {next.gapFrom !== null && (
                  <>
                    No one from <When ms={next.gapFrom} zone={holder?.timezone ?? next.shift.timezone} nowMs={nowMs} />,
                    then{' '}
                  </>
                )}
                <span class="person-name">{next.shift.display_name}</span>, from{' '}
                <When ms={next.from} zone={next.shift.timezone} nowMs={nowMs} />
              </>
            )}
          </dd>
        </div>
      </dl>
      {role.shifts.length === 0 ? (
        <p>No shift is planned.</p>
      ) : (
        <div class="table-scroll">
          <table class="striped shifts">
            <caption class="visually-hidden">Shifts of {role.name}, in start order</caption>
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">From</th>
                <th scope="col">Until</th>
                <th scope="col">Time zone</th>
                <th scope="col">Status</th>
                {admin && (
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {role.shifts.map((shift) => (
                <tr key={shift.shift_id}>
                  <th scope="row">
                    <span class="person-name">{shift.display_name}</span>
                  </th>
                  <td>
                    <When ms={shift.starts_at_ms} zone={shift.timezone} nowMs={nowMs} />
                  </td>
                  <td>
                    <When ms={shift.ends_at_ms} zone={shift.timezone} nowMs={nowMs} />
                  </td>
                  <td>{shift.timezone}</td>
                  <td>{shiftStatus(shift, role, nowMs)}</td>
                  {admin && (
                    <td>
                      {shift.ends_at_ms > nowMs && (
                        <button
                          type="button"
                          class="secondary outline small"
                          aria-label={cancelLabel(shift, nowMs)}
                          onClick={() => onCancel(shift)}
                        >
                          Cancel
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {admin && (
        <footer>
          <button
            type="button"
            class="secondary outline small"
            aria-label={`Assign a shift of ${role.name}`}
            onClick={onAssign}
          >
            Assign a shift
          </button>
        </footer>
      )}
    </article>
  );
}

function CreateRole({ onCreated }: { onCreated: (role: ClinicalRole) => void }) {
  const [name, setName] = useState('');
  const [department, setDepartment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<string | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setCreated(null);
    const body: NewClinicalRole = { name: name.trim(), department: department.trim() };
    if (body.name === '') {
      setError('Give the role a name, such as “Cardiology on-call”.');
      return;
    }
    if ([...body.name].length > ROLE_NAME_MAX) {
      setError(`A role’s name can be at most ${ROLE_NAME_MAX} characters.`);
      return;
    }
    if (body.department === '') {
      setError('Give the department the role belongs to.');
      return;
    }
    setBusy(true);
    try {
      const role = await api.sendJson<ClinicalRole>('POST', ROLES_PATH, body);
      setCreated(`Created the role ${role.name}.`);
      setName('');
      setDepartment('');
      onCreated(role);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="role-create">
      <h2 id="role-create">Create a role</h2>
      <form onSubmit={submit}>
        <div class="grid">
          <div>
            <label for="role-name">Name</label>
            <input
              id="role-name"
              autocomplete="off"
              maxLength={ROLE_NAME_MAX}
              aria-describedby="role-name-help"
              value={name}
              onInput={(event) => setName(event.currentTarget.value)}
            />
            <small id="role-name-help">Unique, whatever the case; at most {ROLE_NAME_MAX} characters.</small>
          </div>
          <div>
            <label for="role-department">Department</label>
            <input
              id="role-department"
              autocomplete="off"
              list="known-departments"
              maxLength={DEPARTMENT_MAX}
              aria-describedby="role-department-help"
              value={department}
              onInput={(event) => setDepartment(event.currentTarget.value)}
            />
            <small id="role-department-help">
              Written as people’s departments are; that department’s escalation policy applies to the role.
            </small>
          </div>
        </div>
        <ErrorText error={error} />
        {created !== null && <p role="status">{created}</p>}
        <button type="submit" disabled={busy} aria-busy={busy}>
          Create role
        </button>
      </form>
    </section>
  );
}
