// Assigning a shift of a role (Roles & escalation, administrators): who,
// and from when until when as local date-times in a time zone of the
// administrator's choice (the browser's by default), which become the
// instants the server stores.

import { useMemo, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { PersonPicker } from '../components/PersonPicker';
import type { ClinicalRole, NewShift, Shift, User } from '../types';
import {
  browserZone,
  canonicalZone,
  durationText,
  instantOf,
  knownZones,
  readingOf,
  sameZone,
  zonedText,
} from '../zones';

export const ROLES_PATH = '/v1/admin/roles';
const DAY_MS = 86_400_000;
const LONGEST_SHIFT_DAYS = 31;

/** The shift the form describes, or what is wrong with it. */
type Plan =
  | { kind: 'empty' }
  | { kind: 'bad'; message: string }
  | { kind: 'ok'; startsAt: number; endsAt: number; notes: string[] };

/** A `datetime-local` value in `zone` as an instant, or what is wrong. */
function instantIn(value: string, zone: string, what: 'start' | 'end'): { ms: number; note: string | null } | string {
  const reading = readingOf(value);
  if (reading === null) {
    return `Give the ${what} as a date and a time.`;
  }
  const shown = value.replace('T', ' ');
  const instant = instantOf(zone, reading);
  if (instant.kind === 'skipped') {
    return `${shown} does not exist in ${zone}: the clocks go forward then. Choose another ${what} time.`;
  }
  const note = instant.repeated
    ? `The clocks in ${zone} go back then, so ${shown} happens twice: the shift ${what}s the first time.`
    : null;
  return { ms: instant.ms, note };
}

function planOf(starts: string, ends: string, zone: string): Plan {
  if (starts === '' && ends === '') {
    return { kind: 'empty' };
  }
  if (canonicalZone(zone) === null) {
    return { kind: 'bad', message: `This browser does not know the time zone ${zone}.` };
  }
  const from = instantIn(starts, zone, 'start');
  if (typeof from === 'string') {
    return { kind: 'bad', message: from };
  }
  const until = instantIn(ends, zone, 'end');
  if (typeof until === 'string') {
    return { kind: 'bad', message: until };
  }
  if (until.ms <= from.ms) {
    return { kind: 'bad', message: 'The shift must end after it starts.' };
  }
  if (until.ms - from.ms > LONGEST_SHIFT_DAYS * DAY_MS) {
    return { kind: 'bad', message: `A shift can last at most ${LONGEST_SHIFT_DAYS} days.` };
  }
  const notes = [from.note, until.note].filter((note): note is string => note !== null);
  return { kind: 'ok', startsAt: from.ms, endsAt: until.ms, notes };
}

export function AssignShift({
  roles,
  roleId,
  onRoleChange,
  onAssigned,
}: {
  roles: ClinicalRole[];
  roleId: string | null;
  onRoleChange: (roleId: string) => void;
  onAssigned: () => void;
}) {
  const viewer = browserZone();
  // Some four hundred: made once, not at each keystroke.
  const zoneOptions = useMemo(
    () =>
      knownZones([viewer]).map((name) => (
        <option key={name} value={name}>
          {name}
        </option>
      )),
    [viewer],
  );
  const [person, setPerson] = useState<User | null>(null);
  /** Changed to empty the person picker after a shift is assigned. */
  const [pickerKey, setPickerKey] = useState(0);
  const [zone, setZone] = useState(viewer);
  const [starts, setStarts] = useState('');
  const [ends, setEnds] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [assigned, setAssigned] = useState<string | null>(null);

  const role = roles.find((candidate) => candidate.role_id === roleId) ?? roles[0];
  const plan = planOf(starts, ends, zone);
  const nowMs = Date.now();

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setAssigned(null);
    if (role === undefined) {
      setError('Create a role first.');
      return;
    }
    if (person === null) {
      setError('Choose who holds the role: type their name, then pick them from the list.');
      return;
    }
    if (plan.kind === 'empty') {
      setError('Give the date and time the shift starts and ends.');
      return;
    }
    if (plan.kind === 'bad') {
      setError(plan.message);
      return;
    }
    const body: NewShift = {
      user_id: person.user_id,
      starts_at_ms: plan.startsAt,
      ends_at_ms: plan.endsAt,
      timezone: zone,
    };
    setBusy(true);
    try {
      const shift = await api.sendJson<Shift>('POST', `${ROLES_PATH}/${api.seg(role.role_id)}/shifts`, body);
      const from = zonedText(shift.starts_at_ms, shift.timezone, nowMs);
      const until = zonedText(shift.ends_at_ms, shift.timezone, nowMs);
      setAssigned(`Assigned ${shift.display_name} to ${role.name}: ${from} to ${until}.`);
      setPerson(null);
      setPickerKey((n) => n + 1);
      setStarts('');
      setEnds('');
      onAssigned();
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="shift-assign">
      <h2 id="shift-assign">Assign a shift</h2>
      {role === undefined ? (
        <p>Create a role first; then assign its shifts here.</p>
      ) : (
        <form onSubmit={submit}>
          <div class="grid">
            <div>
              <label for="shift-role">Role</label>
              <select
                id="shift-role"
                value={role.role_id}
                onChange={(event) => onRoleChange(event.currentTarget.value)}
              >
                {roles.map((candidate) => (
                  <option key={candidate.role_id} value={candidate.role_id}>
                    {candidate.name}
                  </option>
                ))}
              </select>
            </div>
            <div>
              <label for="shift-zone">Time zone</label>
              <select
                id="shift-zone"
                aria-describedby="shift-zone-help"
                value={zone}
                onChange={(event) => setZone(event.currentTarget.value)}
              >
                {zoneOptions}
              </select>
              <small id="shift-zone-help">
                The start and end are in this zone, and the shift is shown in it. Yours is {viewer}.
              </small>
            </div>
          </div>
          <PersonPicker key={pickerKey} id="shift-person" label="Person" picked={person} onPick={setPerson} />
          <div class="grid">
            <div>
              <label for="shift-starts">Starts</label>
              <input
                id="shift-starts"
                type="datetime-local"
                aria-describedby="shift-when-help"
                value={starts}
                onInput={(event) => setStarts(event.currentTarget.value)}
              />
            </div>
            <div>
              <label for="shift-ends">Ends</label>
              <input
                id="shift-ends"
                type="datetime-local"
                aria-describedby="shift-when-help"
                value={ends}
                onInput={(event) => setEnds(event.currentTarget.value)}
              />
            </div>
          </div>
          <p id="shift-when-help" class="muted">
            {plan.kind === 'ok' ? (
              <>
                {durationText(plan.endsAt - plan.startsAt)}
                {!sameZone(zone, viewer) && (
                  <>
                    ; your time: {zonedText(plan.startsAt, viewer, nowMs)} to {zonedText(plan.endsAt, viewer, nowMs)}
                  </>
                )}
                .{plan.notes.map((note) => ` ${note}`).join('')}
              </>
            ) : (
              `Dates and times in ${zone}. A shift lasts at most ${LONGEST_SHIFT_DAYS} days.`
            )}
          </p>
          <ErrorText error={error} />
          {assigned !== null && <p role="status">{assigned}</p>}
          <button type="submit" disabled={busy} aria-busy={busy}>
            Assign shift
          </button>
        </form>
      )}
    </section>
  );
}
