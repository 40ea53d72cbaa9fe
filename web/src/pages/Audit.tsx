// Audit: search the log by person (by name), thread, action, outcome and
// time; page through it; export what the filter matches; and verify the
// whole log here in the browser against the audit key pinned in it (see
// `logcheck.ts`), pinning it first if it is not yet.

import { useEffect, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import type { VerifyProgress } from '../audit/verify';
import { ErrorText, NameAndId, Time } from '../components/Bits';
import { PinAuditKey } from '../components/PinAuditKey';
import { auditKeyString, loadDevice, type StoredDevice } from '../device';
import { count, fromLocalInput, isoTime, localTime } from '../format';
import { rememberUsers, useNames } from '../names';
import { checkLog, type LogCheck, rootText } from '../logcheck';
import { recordVerification } from '../state';
import type { AuditPage as Page, Outcome, RecordedEntry, User, UserPage } from '../types';

const PAGE_SIZE = 100;

interface Filter {
  actor?: string;
  resource?: string;
  action?: string;
  outcome?: Outcome;
  since_ms?: number;
  until_ms?: number;
}

export function AuditPage() {
  const [applied, setApplied] = useState<Filter>({});
  const [entries, setEntries] = useState<RecordedEntry[] | null>(null);
  const [nextAfter, setNextAfter] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const search = async (filter: Filter, after: number | null) => {
    setLoading(true);
    setError(null);
    try {
      const page = await api.getJson<Page>('/v1/audit/entries', { ...filter, after, limit: PAGE_SIZE });
      setEntries((shown) => (after === null || shown === null ? page.entries : [...shown, ...page.entries]));
      setNextAfter(page.next_after);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void search({}, null);
  }, []);

  const names = useNames((entries ?? []).flatMap(({ entry }) => [
    entry.actor_user,
    entry.resource_type === 'user' ? entry.resource_id : null,
  ]));

  return (
    <>
      <h1>Audit</h1>
      <Filters
        onSearch={(filter) => {
          setApplied(filter);
          void search(filter, null);
        }}
        busy={loading}
      />
      <ErrorText error={error} />
      <section aria-labelledby="audit-results" aria-busy={loading}>
        <h2 id="audit-results">Entries</h2>
        <p role="status">
          {entries === null
            ? loading
              ? 'Searching…'
              : ''
            : `${count(entries.length)} ${entries.length === 1 ? 'entry' : 'entries'} shown${nextAfter !== null ? '; more match' : ''}.`}
        </p>
        {entries !== null && entries.length > 0 && (
          <div class="table-scroll">
            <table class="striped audit-table">
              <thead>
                <tr>
                  <th scope="col">Seq</th>
                  <th scope="col">Time</th>
                  <th scope="col">Person</th>
                  <th scope="col">Action</th>
                  <th scope="col">Resource</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {entries.map(({ entry }) => (
                  <tr key={entry.seq}>
                    <th scope="row" class="num">
                      {entry.seq}
                    </th>
                    <td>
                      <time dateTime={isoTime(entry.time_ms)}>
                        {localTime(entry.time_ms)}
                        <br />
                        <small>{isoTime(entry.time_ms)}</small>
                      </time>
                    </td>
                    <td>
                      <NameAndId name={names(entry.actor_user)} id={entry.actor_user} />
                    </td>
                    <td>
                      <code>{entry.action}</code>
                    </td>
                    <td>
                      {entry.resource_type}
                      {entry.resource_id !== null && (
                        <>
                          {' '}
                          {entry.resource_type === 'user' ? (
                            <NameAndId name={names(entry.resource_id)} id={entry.resource_id} />
                          ) : (
                            <code class="id">{entry.resource_id}</code>
                          )}
                        </>
                      )}
                    </td>
                    <td class={`outcome-${entry.outcome}`}>{entry.outcome}</td>
                    <td>{entry.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {nextAfter !== null && (
          <button type="button" class="secondary" disabled={loading} onClick={() => void search(applied, nextAfter)}>
            Load more
          </button>
        )}
      </section>
      <Export filter={applied} />
      <Verify />
    </>
  );
}

function Filters({ onSearch, busy }: { onSearch: (filter: Filter) => void; busy: boolean }) {
  const [personText, setPersonText] = useState('');
  const [person, setPerson] = useState<User | null>(null);
  const [matches, setMatches] = useState<User[] | null>(null);
  const [resource, setResource] = useState('');
  const [action, setAction] = useState('');
  const [outcome, setOutcome] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [error, setError] = useState<string | null>(null);

  // Look people up by name as the user types, once they pause.
  useEffect(() => {
    const typed = personText.trim();
    if (person !== null || typed === '') {
      setMatches(null);
      return undefined;
    }
    let cancelled = false;
    const timer = window.setTimeout(() => {
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
  }, [personText, person]);

  const pick = (user: User) => {
    setPerson(user);
    setPersonText(user.display_name);
    setMatches(null);
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const filter: Filter = {};
    let actor = person;
    if (actor === null && personText.trim() !== '') {
      // A name typed but not chosen: use it if it names exactly one person.
      try {
        const page = await api.getJson<UserPage>('/v1/admin/users', { q: personText.trim(), limit: 10 });
        const exact = page.users.filter((user) => user.display_name.toLowerCase() === personText.trim().toLowerCase());
        const only = exact.length === 1 ? exact[0] : page.users.length === 1 ? page.users[0] : undefined;
        if (only === undefined) {
          setError(
            page.users.length === 0
              ? `No one is named “${personText.trim()}”.`
              : 'Several people match that name: choose one from the list.',
          );
          setMatches(page.users);
          return;
        }
        pick(only);
        actor = only;
      } catch (caught) {
        setError(api.messageOf(caught));
        return;
      }
    }
    if (actor !== null) {
      filter.actor = actor.user_id;
    }
    if (resource.trim() !== '') {
      filter.resource = resource.trim();
    }
    if (action.trim() !== '') {
      filter.action = action.trim();
    }
    if (outcome === 'allowed' || outcome === 'denied') {
      filter.outcome = outcome;
    }
    const since = fromLocalInput(from);
    const until = fromLocalInput(to);
    if (since !== undefined) {
      filter.since_ms = since;
    }
    if (until !== undefined) {
      filter.until_ms = until;
    }
    if (since !== undefined && until !== undefined && until <= since) {
      setError('“To” must be after “From”.');
      return;
    }
    onSearch(filter);
  };

  const clear = () => {
    setPerson(null);
    setPersonText('');
    setResource('');
    setAction('');
    setOutcome('');
    setFrom('');
    setTo('');
    setError(null);
    onSearch({});
  };

  return (
    <form class="filters" aria-label="Filter the audit log" onSubmit={submit}>
      <div class="grid">
        <div>
          <label for="audit-person">Person</label>
          <input
            id="audit-person"
            type="search"
            autocomplete="off"
            aria-describedby="audit-person-help"
            value={personText}
            onInput={(event) => {
              setPersonText(event.currentTarget.value);
              setPerson(null);
            }}
          />
          <small id="audit-person-help">
            {person === null ? (
              'Type a name, then choose the person.'
            ) : (
              <>
                Entries by {person.display_name} (<code class="id">{person.user_id}</code>).
              </>
            )}
          </small>
          {matches !== null && (
            <ul class="matches" aria-label="Matching people">
              {matches.length === 0 && <li>No one matches.</li>}
              {matches.map((user) => (
                <li key={user.user_id}>
                  <button type="button" class="secondary outline small" onClick={() => pick(user)}>
                    {user.display_name} <span class="muted">· {user.department}</span>
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div>
          <label for="audit-resource">Thread or other resource id</label>
          <input
            id="audit-resource"
            autocomplete="off"
            spellcheck={false}
            value={resource}
            onInput={(event) => setResource(event.currentTarget.value)}
          />
        </div>
        <div>
          <label for="audit-action">Action</label>
          <input
            id="audit-action"
            autocomplete="off"
            spellcheck={false}
            placeholder="e.g. auth.login"
            value={action}
            onInput={(event) => setAction(event.currentTarget.value)}
          />
        </div>
      </div>
      <div class="grid">
        <div>
          <label for="audit-outcome">Outcome</label>
          <select id="audit-outcome" value={outcome} onChange={(event) => setOutcome(event.currentTarget.value)}>
            <option value="">Any outcome</option>
            <option value="allowed">Allowed</option>
            <option value="denied">Denied</option>
          </select>
        </div>
        <div>
          <label for="audit-from">From</label>
          <input id="audit-from" type="datetime-local" step={1} value={from} onInput={(event) => setFrom(event.currentTarget.value)} />
        </div>
        <div>
          <label for="audit-to">To</label>
          <input id="audit-to" type="datetime-local" step={1} value={to} onInput={(event) => setTo(event.currentTarget.value)} />
        </div>
      </div>
      <ErrorText error={error} />
      <div class="buttons">
        <button type="submit" disabled={busy}>
          Search
        </button>
        <button type="button" class="secondary outline" onClick={clear}>
          Clear filters
        </button>
      </div>
    </form>
  );
}

function stamp(ms: number): string {
  return isoTime(ms).replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function Export({ filter }: { filter: Filter }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const filtered = Object.keys(filter).length > 0;

  const download = async (format: 'csv' | 'jsonl') => {
    setBusy(format);
    setError(null);
    setDone(null);
    try {
      const response = await api.call('GET', '/v1/audit/export', { query: { format, ...filter } });
      const blob = await response.blob();
      const name = `curbside-audit-${stamp(Date.now())}${filtered ? '-filtered' : ''}.${format}`;
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setDone(`Saved ${name}.`);
    } catch (caught) {
      setError(api.messageOf(caught));
    } finally {
      setBusy(null);
    }
  };

  return (
    <section aria-labelledby="audit-export">
      <h2 id="audit-export">Export</h2>
      <p>
        {filtered
          ? 'Exports the entries the current filter matches (a filtered export has gaps, so only the whole log can be verified).'
          : 'Exports the whole log, with its checkpoints.'}
      </p>
      <div class="buttons">
        <button type="button" class="secondary" disabled={busy !== null} aria-busy={busy === 'csv'} onClick={() => void download('csv')}>
          Export CSV
        </button>
        <button
          type="button"
          class="secondary"
          disabled={busy !== null}
          aria-busy={busy === 'jsonl'}
          onClick={() => void download('jsonl')}
        >
          Export JSON Lines
        </button>
      </div>
      <ErrorText error={error} />
      {done !== null && <p role="status">{done}</p>}
    </section>
  );
}

type Outcome_ = LogCheck | { kind: 'error'; message: string };

function Verify() {
  const [running, setRunning] = useState(false);
  const [progress, setProgress] = useState<VerifyProgress>({ entries: 0, lastSeq: null });
  const [total, setTotal] = useState<number | null>(null);
  const [result, setResult] = useState<Outcome_ | null>(null);
  const [stored, setStored] = useState<StoredDevice | null>(null);
  const [storedError, setStoredError] = useState<string | null>(null);
  const [pinnedKeyId, setPinnedKeyId] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => () => abort.current?.abort(), []);

  const reload = () => {
    let cancelled = false;
    loadDevice().then(
      async (found) => {
        const key = found?.auditKey ? await auditKeyString(found.serverId, found.auditKey) : null;
        if (!cancelled) {
          setStored(found);
          setPinnedKeyId(key);
        }
      },
      (caught: unknown) => {
        if (!cancelled) {
          setStoredError(`This browser’s storage could not be read: ${api.messageOf(caught)}`);
        }
      },
    );
    return () => {
      cancelled = true;
    };
  };
  useEffect(reload, []);

  const run = async () => {
    setRunning(true);
    setResult(null);
    setTotal(null);
    setProgress({ entries: 0, lastSeq: null });
    const controller = new AbortController();
    abort.current = controller;
    try {
      // Read again: the record holds the head the last verification kept.
      const current = await loadDevice();
      if (current === null) {
        throw new Error('This browser is no longer enrolled; reload the page.');
      }
      let shownAt = 0;
      const checked = await checkLog(
        current,
        controller.signal,
        (value) => {
          const now = performance.now();
          if (now - shownAt > 100) {
            shownAt = now;
            setProgress({ ...value });
          }
        },
        setTotal,
      );
      if (controller.signal.aborted) {
        return;
      }
      if (checked.kind === 'ok') {
        setProgress({ entries: checked.entries, lastSeq: checked.lastSeq });
        recordVerification({ ok: true, entries: checked.entries, lastSeq: checked.lastSeq, atMs: Date.now() });
        if (checked.kept !== null) {
          setStored({ ...current, verifiedHead: checked.kept });
        }
      } else {
        recordVerification({ ok: false, brokenSeq: checked.seq, message: checked.message, atMs: Date.now() });
      }
      setResult(checked);
    } catch (caught) {
      if (!controller.signal.aborted) {
        setResult({ kind: 'error', message: api.messageOf(caught) });
      }
    } finally {
      if (!controller.signal.aborted) {
        setRunning(false);
      }
    }
  };

  const head = stored?.verifiedHead ?? null;
  return (
    <section aria-labelledby="audit-verify">
      <h2 id="audit-verify">Verify the log</h2>
      <p>
        Downloads the whole log and checks, in this browser, every entry’s hash chain and every signed checkpoint against
        the audit key pinned in this browser, so a row changed, removed or added in the database shows here. The log must
        also extend what this browser verified last, so a log rewound or rewritten since shows too.
      </p>
      <ErrorText error={storedError} />
      {stored !== null && (stored.auditKey === null || stored.auditKey === undefined) ? (
        <article aria-label="Pin the audit key">
          <p role="note" class="notice">
            No audit key is pinned in this browser yet: pin it before verifying the log.
          </p>
          <PinAuditKey device={stored} level={3} onPinned={reload} />
        </article>
      ) : (
        stored !== null &&
        pinnedKeyId !== null && (
          <dl class="pinned-key">
            <dt>Audit key pinned in this browser</dt>
            <dd>
              <code class="id">{pinnedKeyId}</code>
              {typeof stored.auditKeyPinnedAtMs === 'number' && (
                <>
                  {' '}
                  <span class="muted">
                    (pinned <Time ms={stored.auditKeyPinnedAtMs} />)
                  </span>
                </>
              )}
            </dd>
            <dt>Last verified in this browser</dt>
            <dd>
              {head === null ? (
                'never'
              ) : (
                <>
                  {count(head.size)} entries, Merkle root <code class="id">{rootText(head.root)}</code>, key in force{' '}
                  <code class="id">{head.keyId}</code> (<Time ms={head.atMs} relative />)
                </>
              )}
            </dd>
          </dl>
        )
      )}
      <button type="button" onClick={() => void run()} disabled={running} aria-busy={running}>
        Verify the log
      </button>
      {(running || result !== null) && (
        <div class="verify-progress">
          <label for="verify-progress">Verification progress</label>
          {total !== null && total > 0 ? (
            <progress id="verify-progress" max={total} value={Math.min(progress.entries, total)} />
          ) : running ? (
            <progress id="verify-progress" />
          ) : (
            <progress id="verify-progress" max={1} value={1} />
          )}
          <p class="muted">
            {count(progress.entries)} {total !== null ? `of ${count(total)} ` : ''}entries checked
            {progress.lastSeq !== null ? `, up to sequence ${count(progress.lastSeq)}` : ''}.
          </p>
        </div>
      )}
      {result?.kind === 'ok' && (
        <div class="verified">
          <p role="status" class="verdict">
            {result.lastSeq === null
              ? `Verified ${result.entries} entries; the log is empty.`
              : `Verified ${result.entries} entries; the log is intact up to sequence ${result.lastSeq}.`}
          </p>
          <p class="muted">
            Checked against the pinned audit key <code class="id">{result.pinnedKeyId}</code>
            {result.handoversBack > 0 &&
              `, which the log’s first key handed over to in ${result.handoversBack} signed key hand-over${result.handoversBack === 1 ? '' : 's'}`}
            {result.keyId !== result.pinnedKeyId && (
              <>
                ; the key in force now is <code class="id">{result.keyId}</code>, handed over to from the pinned one
              </>
            )}
            {result.treeSize !== null && `; the Merkle tree’s signed checkpoint of ${count(result.treeSize)} entries matches`}
            {result.extended !== null &&
              `; the log extends the ${count(result.extended.size)} entries this browser verified before`}
            .
          </p>
          {result.keepError !== null && (
            <p role="alert" class="error">
              This browser could not remember the verified log ({result.keepError}), so the next verification cannot
              check that the log was not rewound since.
            </p>
          )}
        </div>
      )}
      {result?.kind === 'broken' && (
        <p role="alert" class="verdict broken">
          {result.seq !== null ? `Entry ${result.seq} is broken: ${result.message}` : `The log is broken: ${result.message}`}
        </p>
      )}
      {result?.kind === 'error' && (
        <p role="alert" class="error">
          The log could not be verified: {result.message}
        </p>
      )}
    </section>
  );
}
