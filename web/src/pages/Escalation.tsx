// Escalation policies (Roles & escalation): for each department, how long
// an urgent message may go unacknowledged before its recipients are
// alerted again and before it escalates to a backup (a role's holder, or
// one person). Administrators set them; auditors read them.

import { useEffect, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, NameAndId } from '../components/Bits';
import { PersonPicker } from '../components/PersonPicker';
import { count } from '../format';
import { rememberUsers } from '../names';
import type { Backup, ClinicalRole, EscalationPolicy, User } from '../types';
import { durationText } from '../zones';

export const ESCALATION_PATH = '/v1/admin/escalation';
/** The department of the policy for every department without its own. */
export const ANY_DEPARTMENT = '*';
export const DEPARTMENT_MAX = 100;
/** The longest re-alert or escalation time: a day. */
const LONGEST_ESCALATION_S = 86_400;

type Names = (id: string | null | undefined) => string | null;

/** A policy's department as people read it. */
function departmentText(department: string): string {
  return department === ANY_DEPARTMENT ? 'every other department' : department;
}

/** Whom a policy escalates to, in words. */
function BackupText({ backup, roles, names }: { backup: Backup; roles: ClinicalRole[]; names: Names }) {
  if (backup.kind === 'user') {
    return <NameAndId name={names(backup.user_id)} id={backup.user_id} />;
  }
  const role = roles.find((candidate) => candidate.role_id === backup.role_id);
  return role === undefined ? (
    <>
      Whoever holds the role <code class="id">{backup.role_id}</code>
    </>
  ) : (
    <>
      Whoever holds <span class="role-name">{role.name}</span>
    </>
  );
}

export function PolicyTable({
  policies,
  roles,
  names,
  admin,
  onChange,
}: {
  policies: EscalationPolicy[];
  roles: ClinicalRole[];
  names: Names;
  admin: boolean;
  onChange: (policy: EscalationPolicy) => void;
}) {
  if (policies.length === 0) {
    return <p>No escalation policy has been set.</p>;
  }
  return (
    <div class="table-scroll">
      <table class="striped">
        <caption class="visually-hidden">Escalation policies, by department</caption>
        <thead>
          <tr>
            <th scope="col">Department</th>
            <th scope="col">Re-alert after</th>
            <th scope="col">Escalate after</th>
            <th scope="col">Backup</th>
            {admin && (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {policies.map((policy) => (
            <tr key={policy.department}>
              <th scope="row">
                {policy.department === ANY_DEPARTMENT ? (
                  <>
                    Every other department (<code>*</code>)
                  </>
                ) : (
                  policy.department
                )}
              </th>
              <td>{durationText(policy.realert_after_s * 1000)}</td>
              <td>{durationText(policy.escalate_after_s * 1000)}</td>
              <td>
                <BackupText backup={policy.backup} roles={roles} names={names} />
              </td>
              {admin && (
                <td>
                  <button
                    type="button"
                    class="secondary outline small"
                    aria-label={`Change the policy for ${departmentText(policy.department)}`}
                    onClick={() => onChange(policy)}
                  >
                    Change
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Whole seconds from 1 to a day, or null. */
function secondsOf(text: string): number | null {
  const typed = text.trim();
  if (!/^[0-9]+$/.test(typed)) {
    return null;
  }
  const seconds = Number(typed);
  return seconds >= 1 && seconds <= LONGEST_ESCALATION_S ? seconds : null;
}

export function SetPolicy({
  initial,
  roles,
  onSaved,
}: {
  /** A policy to change, or null for a new one. */
  initial: EscalationPolicy | null;
  roles: ClinicalRole[];
  onSaved: () => void;
}) {
  const [department, setDepartment] = useState(initial?.department ?? '');
  const [realert, setRealert] = useState(initial === null ? '' : String(initial.realert_after_s));
  const [escalate, setEscalate] = useState(initial === null ? '' : String(initial.escalate_after_s));
  const [kind, setKind] = useState<Backup['kind']>(initial?.backup.kind ?? 'role');
  const [roleId, setRoleId] = useState(initial?.backup.kind === 'role' ? initial.backup.role_id : '');
  const [person, setPerson] = useState<User | null>(null);
  /** Changed to show a person fetched for the picker, or to empty it. */
  const [pickerKey, setPickerKey] = useState(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const realertInput = useRef<HTMLInputElement>(null);

  // Changing a policy: its backup person, for the picker; focus on the form.
  useEffect(() => {
    if (initial === null) {
      return undefined;
    }
    realertInput.current?.focus();
    const backup = initial.backup;
    if (backup.kind !== 'user') {
      return undefined;
    }
    let cancelled = false;
    api.getJson<User>(`/v1/admin/users/${api.seg(backup.user_id)}`).then(
      (user) => {
        if (!cancelled) {
          rememberUsers([user]);
          setPerson(user);
          setPickerKey((n) => n + 1);
        }
      },
      (caught: unknown) => !cancelled && setError(api.messageOf(caught)),
    );
    return () => {
      cancelled = true;
    };
  }, [initial]);

  const role = roles.find((candidate) => candidate.role_id === roleId) ?? roles[0];
  const realertS = secondsOf(realert);
  const escalateS = secondsOf(escalate);

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setSaved(null);
    const typedDepartment = department.trim();
    if (typedDepartment === '') {
      setError(`Give the department, or ${ANY_DEPARTMENT} for every department without a policy of its own.`);
      return;
    }
    if (realertS === null) {
      setError(`Give the re-alert time as a whole number of seconds, from 1 to ${count(LONGEST_ESCALATION_S)}.`);
      return;
    }
    if (escalateS === null) {
      setError(`Give the escalation time as a whole number of seconds, from 2 to ${count(LONGEST_ESCALATION_S)}.`);
      return;
    }
    if (escalateS <= realertS) {
      setError(
        `The escalation time must be more than the re-alert time (${durationText(realertS * 1000)}): ` +
          'recipients are alerted again before the message escalates.',
      );
      return;
    }
    let backup: Backup;
    if (kind === 'role') {
      if (role === undefined) {
        setError('There is no role to escalate to: create one, or choose a person.');
        return;
      }
      backup = { kind: 'role', role_id: role.role_id };
    } else {
      if (person === null) {
        setError('Choose the backup person: type their name, then pick them from the list.');
        return;
      }
      backup = { kind: 'user', user_id: person.user_id };
    }
    const policy: EscalationPolicy = {
      department: typedDepartment,
      realert_after_s: realertS,
      escalate_after_s: escalateS,
      backup,
    };
    setBusy(true);
    try {
      const answer = await api.sendJson<EscalationPolicy>('PUT', ESCALATION_PATH, policy);
      setSaved(`Saved the escalation policy for ${departmentText(answer.department)}.`);
      onSaved();
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="escalation-set">
      <h2 id="escalation-set">Set an escalation policy</h2>
      <p>A department’s new policy replaces the one it has.</p>
      <form onSubmit={submit}>
        <label for="escalation-department">Department</label>
        <input
          id="escalation-department"
          autocomplete="off"
          list="known-departments"
          maxLength={DEPARTMENT_MAX}
          aria-describedby="escalation-department-help"
          value={department}
          onInput={(event) => setDepartment(event.currentTarget.value)}
        />
        <small id="escalation-department-help">
          The recipients’ department, as people’s departments are written; {ANY_DEPARTMENT} for every department
          without a policy of its own.
        </small>
        <div class="grid">
          <div>
            <label for="escalation-realert">Re-alert after (seconds)</label>
            <input
              id="escalation-realert"
              ref={realertInput}
              type="number"
              inputMode="numeric"
              min={1}
              max={LONGEST_ESCALATION_S}
              step={1}
              aria-describedby="escalation-realert-help"
              value={realert}
              onInput={(event) => setRealert(event.currentTarget.value)}
            />
            <small id="escalation-realert-help">
              {realertS === null
                ? `From 1 to ${count(LONGEST_ESCALATION_S)} (a day).`
                : `${durationText(realertS * 1000)} without an acknowledgement.`}
            </small>
          </div>
          <div>
            <label for="escalation-escalate">Escalate after (seconds)</label>
            <input
              id="escalation-escalate"
              type="number"
              inputMode="numeric"
              min={2}
              max={LONGEST_ESCALATION_S}
              step={1}
              aria-describedby="escalation-escalate-help"
              value={escalate}
              onInput={(event) => setEscalate(event.currentTarget.value)}
            />
            <small id="escalation-escalate-help">
              {escalateS === null
                ? `More than the re-alert time, at most ${count(LONGEST_ESCALATION_S)}.`
                : `${durationText(escalateS * 1000)} after sending.`}
            </small>
          </div>
        </div>
        <fieldset>
          <legend>Backup</legend>
          <label>
            <input type="radio" name="escalation-backup" checked={kind === 'role'} onChange={() => setKind('role')} />
            Whoever holds a role
          </label>
          <label>
            <input type="radio" name="escalation-backup" checked={kind === 'user'} onChange={() => setKind('user')} />
            A person
          </label>
        </fieldset>
        {kind === 'role' ? (
          roles.length === 0 ? (
            <p>No role has been created yet: create one above, or choose a person.</p>
          ) : (
            <>
              <label for="escalation-role">Backup role</label>
              <select
                id="escalation-role"
                value={role?.role_id ?? ''}
                onChange={(event) => setRoleId(event.currentTarget.value)}
              >
                {roles.map((candidate) => (
                  <option key={candidate.role_id} value={candidate.role_id}>
                    {candidate.name}
                  </option>
                ))}
              </select>
            </>
          )
        ) : (
          <PersonPicker
            key={pickerKey}
            id="escalation-person"
            label="Backup person"
            picked={person}
            onPick={setPerson}
          />
        )}
        <ErrorText error={error} />
        {saved !== null && <p role="status">{saved}</p>}
        <button type="submit" disabled={busy} aria-busy={busy}>
          Save escalation policy
        </button>
      </form>
    </section>
  );
}
