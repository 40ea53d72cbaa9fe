// Retention & holds: the organisation-wide maximum age of thread content,
// and the legal holds that suspend every purge of a thread's content, or
// of every thread a person is or was in. Administrators change both;
// auditors read them.

import { useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading, NameAndId, Time } from '../components/Bits';
import { Confirm } from '../components/Confirm';
import { PersonPicker } from '../components/PersonPicker';
import { count } from '../format';
import { useNames } from '../names';
import { canWrite, type Me } from '../state';
import type { Hold, HoldList, HoldScope, NewHold, RetentionPolicy, User } from '../types';
import { useLoad } from './Policy';

const DAY_S = 86_400;
/** The server's year, as for a thread's lifespan: 365 days. */
const YEAR_S = 365 * DAY_S;
const LONGEST_YEARS = 100;

const THREAD_ID = /^[0-9a-f]{32}$/;
const REASON_MAX = 500;

type Unit = 'days' | 'years';

/** A maximum age as people read it: "10 years", "90 days". */
function ageText(seconds: number): string {
  const [amount, unit]: [number, string] =
    seconds % YEAR_S === 0
      ? [seconds / YEAR_S, 'year']
      : seconds % DAY_S === 0
        ? [seconds / DAY_S, 'day']
        : seconds % 3600 === 0
          ? [seconds / 3600, 'hour']
          : [seconds, 'second'];
  return `${count(amount)} ${unit}${amount === 1 ? '' : 's'}`;
}

function policyText(maxAgeS: number | null): string {
  return maxAgeS === null
    ? 'Off — thread content is kept until its thread’s own lifespan or a recall removes it.'
    : `Thread content older than ${ageText(maxAgeS)} is purged.`;
}

export function RetentionPage({ me }: { me: Me }) {
  const [retentionReload, setRetentionReload] = useState(0);
  const [holdsReload, setHoldsReload] = useState(0);
  const retention = useLoad<RetentionPolicy>('/v1/admin/retention', retentionReload);
  const holds = useLoad<HoldList>('/v1/admin/holds', holdsReload);
  const admin = canWrite(me);

  const names = useNames([
    retention.kind === 'ok' ? retention.value.updated_by : null,
    ...(holds.kind === 'ok'
      ? holds.value.holds.flatMap((hold) => [
          hold.placed_by,
          hold.lifted_by,
          hold.scope === 'user' ? hold.target_id : null,
        ])
      : []),
  ]);

  return (
    <>
      <h1>Retention & holds</h1>
      <p>
        How long thread content (messages and their attachments) is kept, and the legal holds that keep it regardless.
        {!admin && ' Administrators change these; as an auditor you can read them.'}
      </p>
      <section aria-labelledby="retention-policy">
        <h2 id="retention-policy">Retention policy</h2>
        <p>
          The organisation-wide maximum age of thread content. The server’s sweep permanently deletes older content in
          every thread, unless a legal hold covers it. A thread with a shorter lifespan of its own (disappearing
          messages) loses its content sooner.
        </p>
        {retention.kind === 'loading' && <Loading what="the retention policy" />}
        {retention.kind === 'error' && <ErrorText error={retention.message} />}
        {retention.kind === 'ok' && (
          <>
            <p>
              <strong>{policyText(retention.value.max_age_s)}</strong>
            </p>
            <p class="muted">
              {retention.value.updated_at_ms === null ? (
                'No one has changed it: off is the default.'
              ) : (
                <>
                  Last changed <Time ms={retention.value.updated_at_ms} /> by{' '}
                  <NameAndId name={names(retention.value.updated_by)} id={retention.value.updated_by} />.
                </>
              )}
            </p>
            {admin && (
              <ChangeRetention
                current={retention.value.max_age_s}
                onSaved={() => setRetentionReload((n) => n + 1)}
              />
            )}
          </>
        )}
      </section>
      <section aria-labelledby="holds">
        <h2 id="holds">Legal holds</h2>
        <p>
          A hold suspends every purge of the content it covers — its thread’s lifespan, the retention policy, and the
          erasure of recalled messages — until it is lifted. It covers one thread, or every thread a person is or was a
          member of.
        </p>
        {holds.kind === 'loading' && <Loading what="the holds" />}
        {holds.kind === 'error' && <ErrorText error={holds.message} />}
        {holds.kind === 'ok' && (
          <HoldTable
            holds={holds.value.holds}
            names={names}
            admin={admin}
            onLifted={() => setHoldsReload((n) => n + 1)}
          />
        )}
      </section>
      {admin && <PlaceHold onPlaced={() => setHoldsReload((n) => n + 1)} />}
    </>
  );
}

/** The amount and unit a maximum age is shown with in the form. */
function formOf(maxAgeS: number | null): { amount: string; unit: Unit } {
  if (maxAgeS === null) {
    return { amount: '', unit: 'years' };
  }
  return maxAgeS % YEAR_S === 0
    ? { amount: String(maxAgeS / YEAR_S), unit: 'years' }
    : { amount: String(maxAgeS / DAY_S), unit: 'days' };
}

function ChangeRetention({ current, onSaved }: { current: number | null; onSaved: () => void }) {
  const initial = formOf(current);
  const [on, setOn] = useState(current !== null);
  const [amount, setAmount] = useState(initial.amount);
  const [unit, setUnit] = useState<Unit>(initial.unit);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  /** A maximum age to confirm: turning retention on, or shortening it. */
  const [confirming, setConfirming] = useState<number | null>(null);

  const save = async (maxAgeS: number | null) => {
    const policy = await api.sendJson<RetentionPolicy>('PUT', '/v1/admin/retention', { max_age_s: maxAgeS });
    setSaved(`Saved. ${policyText(policy.max_age_s)}`);
    onSaved();
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setSaved(null);
    let maxAgeS: number | null = null;
    if (on) {
      const typed = amount.trim();
      const longest = unit === 'years' ? LONGEST_YEARS : (LONGEST_YEARS * YEAR_S) / DAY_S;
      if (!/^[0-9]+$/.test(typed) || Number(typed) < 1) {
        setError('Give the maximum age as a whole number of days or years, at least 1.');
        return;
      }
      if (Number(typed) > longest) {
        setError(`The maximum age can be at most ${LONGEST_YEARS} years (${count(longest)} ${unit}).`);
        return;
      }
      maxAgeS = Number(typed) * (unit === 'years' ? YEAR_S : DAY_S);
    }
    if (maxAgeS === current) {
      setSaved('Nothing to save: that is the current policy.');
      return;
    }
    if (maxAgeS !== null && (current === null || maxAgeS < current)) {
      setConfirming(maxAgeS);
      return;
    }
    setBusy(true);
    try {
      await save(maxAgeS);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <form onSubmit={submit} aria-labelledby="retention-change">
        <h3 id="retention-change">Change the retention policy</h3>
        <fieldset>
          <legend>Retention</legend>
          <label>
            <input type="radio" name="retention" checked={!on} onChange={() => setOn(false)} />
            Off: keep thread content until its thread’s lifespan or a recall removes it
          </label>
          <label>
            <input type="radio" name="retention" checked={on} onChange={() => setOn(true)} />
            Purge thread content older than a maximum age
          </label>
        </fieldset>
        <div class="grid">
          <div>
            <label for="retention-amount">Maximum age</label>
            <input
              id="retention-amount"
              type="number"
              inputMode="numeric"
              min={1}
              max={unit === 'years' ? LONGEST_YEARS : (LONGEST_YEARS * YEAR_S) / DAY_S}
              step={1}
              disabled={!on}
              aria-describedby="retention-amount-help"
              value={amount}
              onInput={(event) => setAmount(event.currentTarget.value)}
            />
            <small id="retention-amount-help">From 1 day to {LONGEST_YEARS} years; a year is 365 days.</small>
          </div>
          <div>
            <label for="retention-unit">Unit</label>
            <select
              id="retention-unit"
              disabled={!on}
              value={unit}
              onChange={(event) => setUnit(event.currentTarget.value === 'days' ? 'days' : 'years')}
            >
              <option value="years">Years</option>
              <option value="days">Days</option>
            </select>
          </div>
        </div>
        <ErrorText error={error} />
        {saved !== null && <p role="status">{saved}</p>}
        <button type="submit" disabled={busy} aria-busy={busy}>
          Save retention policy
        </button>
      </form>
      {confirming !== null && (
        <Confirm
          title={`Purge thread content older than ${ageText(confirming)}?`}
          confirmLabel={current === null ? 'Turn on retention' : 'Shorten retention'}
          onClose={() => setConfirming(null)}
          onConfirm={() => save(confirming)}
        >
          <p>
            At the next sweep, the server permanently deletes every message and attachment older than{' '}
            {ageText(confirming)}, in every thread, unless it is under a legal hold. No one can recover it afterwards.
          </p>
          {current !== null && <p>Until now, thread content has been kept for {ageText(current)}.</p>}
        </Confirm>
      )}
    </>
  );
}

/** What a hold covers, in words: the person's name (or id), or the thread. */
function targetText(hold: Hold, names: (id: string | null | undefined) => string | null): string {
  return hold.scope === 'user' ? (names(hold.target_id) ?? `person ${hold.target_id}`) : `thread ${hold.target_id}`;
}

function HoldTable({
  holds,
  names,
  admin,
  onLifted,
}: {
  holds: Hold[];
  names: (id: string | null | undefined) => string | null;
  admin: boolean;
  onLifted: () => void;
}) {
  const [lifting, setLifting] = useState<Hold | null>(null);
  const [lifted, setLifted] = useState<string | null>(null);

  return (
    <>
      {lifted !== null && <p role="status">{lifted}</p>}
      {holds.length === 0 ? (
        <p>No hold has been placed.</p>
      ) : (
        <div class="table-scroll">
          <table class="striped">
            <caption class="visually-hidden">Legal holds, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Scope</th>
                <th scope="col">Held</th>
                <th scope="col">Reason</th>
                <th scope="col">Placed</th>
                <th scope="col">Status</th>
                {admin && (
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {holds.map((hold) => (
                <tr key={hold.hold_id}>
                  <td>{hold.scope === 'user' ? 'Person' : 'Thread'}</td>
                  <th scope="row">
                    {hold.scope === 'user' ? (
                      <NameAndId name={names(hold.target_id)} id={hold.target_id} />
                    ) : (
                      <code class="id">{hold.target_id}</code>
                    )}
                  </th>
                  <td class="hold-reason">{hold.reason}</td>
                  <td>
                    <Time ms={hold.placed_at_ms} /> by <NameAndId name={names(hold.placed_by)} id={hold.placed_by} />
                  </td>
                  <td>
                    {hold.lifted_at_ms === null ? (
                      <strong>Active</strong>
                    ) : (
                      <>
                        Lifted <Time ms={hold.lifted_at_ms} /> by{' '}
                        <NameAndId name={names(hold.lifted_by)} id={hold.lifted_by} />
                      </>
                    )}
                  </td>
                  {admin && (
                    <td>
                      {hold.lifted_at_ms === null && (
                        <button
                          type="button"
                          class="secondary outline small"
                          aria-label={`Lift the hold on ${targetText(hold, names)}`}
                          onClick={() => {
                            setLifted(null);
                            setLifting(hold);
                          }}
                        >
                          Lift
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
      {lifting !== null && (
        <Confirm
          title="Lift this legal hold?"
          confirmLabel="Lift hold"
          onClose={() => setLifting(null)}
          onConfirm={async () => {
            await api.sendJson<Hold>('POST', `/v1/admin/holds/${api.seg(lifting.hold_id)}/lift`);
            setLifted(`Lifted the hold on ${targetText(lifting, names)}.`);
            onLifted();
          }}
        >
          <p>
            The hold on {targetText(lifting, names)}, placed <Time ms={lifting.placed_at_ms} />:{' '}
            <q class="hold-reason">{lifting.reason}</q>
          </p>
          <p>
            The purges it suspended resume at the next sweep: content past its thread’s lifespan or the retention
            policy, and recalled messages, are then permanently deleted, unless another hold still covers them. A lifted
            hold stays listed and cannot be put back; place a new one instead.
          </p>
        </Confirm>
      )}
    </>
  );
}

function PlaceHold({ onPlaced }: { onPlaced: () => void }) {
  const [scope, setScope] = useState<HoldScope>('user');
  const [person, setPerson] = useState<User | null>(null);
  /** Changed to empty the person picker after a hold is placed. */
  const [pickerKey, setPickerKey] = useState(0);
  const [thread, setThread] = useState('');
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [placed, setPlaced] = useState<string | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setPlaced(null);
    let hold: NewHold;
    let target: string;
    if (scope === 'user') {
      if (person === null) {
        setError('Choose the person to hold: type their name, then pick them from the list.');
        return;
      }
      hold = { scope, target_id: person.user_id, reason: reason.trim() };
      target = person.display_name;
    } else {
      const id = thread.trim();
      if (!THREAD_ID.test(id)) {
        setError('A thread id is 32 characters, each 0–9 or a–f (lower case).');
        return;
      }
      hold = { scope, target_id: id, reason: reason.trim() };
      target = `thread ${id}`;
    }
    if (hold.reason === '') {
      setError('Give the reason for the hold.');
      return;
    }
    setBusy(true);
    try {
      await api.sendJson<Hold>('POST', '/v1/admin/holds', hold);
      setPlaced(`Placed a hold on ${target}.`);
      setPerson(null);
      setPickerKey((n) => n + 1);
      setThread('');
      setReason('');
      onPlaced();
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="hold-place">
      <h2 id="hold-place">Place a legal hold</h2>
      <form onSubmit={submit}>
        <fieldset>
          <legend>What to hold</legend>
          <label>
            <input type="radio" name="hold-scope" checked={scope === 'user'} onChange={() => setScope('user')} />
            A person: every thread they are or were a member of
          </label>
          <label>
            <input type="radio" name="hold-scope" checked={scope === 'thread'} onChange={() => setScope('thread')} />
            One thread
          </label>
        </fieldset>
        {scope === 'user' ? (
          <PersonPicker key={pickerKey} id="hold-person" label="Person" picked={person} onPick={setPerson} />
        ) : (
          <>
            <label for="hold-thread">Thread id</label>
            <input
              id="hold-thread"
              autocomplete="off"
              spellcheck={false}
              aria-describedby="hold-thread-help"
              value={thread}
              onInput={(event) => setThread(event.currentTarget.value)}
            />
            <small id="hold-thread-help">32 characters, 0–9 and a–f, as the audit log and the CLI show it.</small>
          </>
        )}
        <label for="hold-reason">Reason</label>
        <input
          id="hold-reason"
          autocomplete="off"
          maxLength={REASON_MAX}
          aria-describedby="hold-reason-help"
          value={reason}
          onInput={(event) => setReason(event.currentTarget.value)}
        />
        <small id="hold-reason-help">
          Which matter it is for, and at whose request (a case or request reference), on one line: shown with the
          hold to administrators and auditors. At most {REASON_MAX} characters.
        </small>
        <ErrorText error={error} />
        {placed !== null && <p role="status">{placed}</p>}
        <button type="submit" disabled={busy} aria-busy={busy}>
          Place hold
        </button>
      </form>
    </section>
  );
}
