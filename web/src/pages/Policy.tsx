// Policy: the organisation's messaging policy, versioned. Administrators
// publish new versions; everyone reads the current one; clinicians accept
// it (they must before using threads); the console lists who has not.

import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading, NameAndId, Time } from '../components/Bits';
import { Confirm } from '../components/Confirm';
import { count } from '../format';
import { rememberUsers, useNames } from '../names';
import { href } from '../route';
import { canReview, canWrite, type Me } from '../state';
import type { PolicyPending, PolicyState, PolicyVersion, PolicyVersions } from '../types';

/** A section's data, or why it is not shown (403: not this role's). */
type Loaded<T> = { kind: 'loading' } | { kind: 'ok'; value: T } | { kind: 'hidden' } | { kind: 'error'; message: string };

/** Loads `path` (none if null) again whenever `reload` changes. */
export function useLoad<T>(path: string | null, reload: number): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ kind: 'loading' });
  useEffect(() => {
    if (path === null) {
      setState({ kind: 'hidden' });
      return undefined;
    }
    let cancelled = false;
    api.getJson<T>(path).then(
      (value) => !cancelled && setState({ kind: 'ok', value }),
      (caught: unknown) => {
        if (!cancelled) {
          const forbidden = caught instanceof api.ApiError && caught.status === 403;
          setState(forbidden ? { kind: 'hidden' } : { kind: 'error', message: api.messageOf(caught) });
        }
      },
    );
    return () => {
      cancelled = true;
    };
  }, [path, reload]);
  return state;
}

export function PolicyPage({ me }: { me: Me }) {
  const [reload, setReload] = useState(0);
  const [published, setPublished] = useState<string | null>(null);
  const policy = useLoad<PolicyState>('/v1/policy', reload);
  const reviewer = canReview(me);
  const versions = useLoad<PolicyVersions>(reviewer ? '/v1/admin/policy/versions' : null, reload);
  const pending = useLoad<PolicyPending>(reviewer ? '/v1/admin/policy/pending' : null, reload);

  const current = policy.kind === 'ok' ? policy.value.current : null;
  const names = useNames([
    current?.published_by,
    ...(versions.kind === 'ok' ? versions.value.versions.map((version) => version.published_by) : []),
  ]);

  return (
    <>
      <h1>Policy</h1>
      <p>
        The organisation’s messaging policy: what may be discussed in Curbside, and how patient information is handled.
        Everyone must accept the current version before using threads.
      </p>
      {published !== null && <p role="status">{published}</p>}
      <section aria-labelledby="policy-current">
        <h2 id="policy-current">Current policy</h2>
        {policy.kind === 'loading' && <Loading what="the policy" />}
        {policy.kind === 'error' && <ErrorText error={policy.message} />}
        {policy.kind === 'ok' &&
          (current === null ? (
            <p>No policy has been published yet.</p>
          ) : (
            <>
              <p class="muted">
                Version {current.version}, published <Time ms={current.published_at_ms} /> by{' '}
                <NameAndId name={names(current.published_by)} id={current.published_by} />.
              </p>
              <blockquote class="policy-text">{current.text}</blockquote>
              {me.role === 'clinician' && (
                <Accept
                  version={current.version}
                  accepted={policy.value.accepted_version}
                  onAccepted={() => setReload((n) => n + 1)}
                />
              )}
            </>
          ))}
      </section>
      {canWrite(me) && (
        <Publish
          current={current}
          onPublished={(version) => {
            setPublished(`Published version ${version.version}.`);
            setReload((n) => n + 1);
          }}
        />
      )}
      {pending.kind !== 'hidden' && (
        <section aria-labelledby="policy-pending">
          <h2 id="policy-pending">Not yet accepted</h2>
          {pending.kind === 'loading' && <Loading what="who has not accepted" />}
          {pending.kind === 'error' && <ErrorText error={pending.message} />}
          {pending.kind === 'ok' && <Pending pending={pending.value} />}
        </section>
      )}
      {versions.kind !== 'hidden' && (
        <section aria-labelledby="policy-history">
          <h2 id="policy-history">Version history</h2>
          {versions.kind === 'loading' && <Loading what="the versions" />}
          {versions.kind === 'error' && <ErrorText error={versions.message} />}
          {versions.kind === 'ok' &&
            (versions.value.versions.length === 0 ? (
              <p>No versions yet.</p>
            ) : (
              <div class="table-scroll">
                <table class="striped">
                  <thead>
                    <tr>
                      <th scope="col">Version</th>
                      <th scope="col">Published</th>
                      <th scope="col">By</th>
                      <th scope="col">Text</th>
                    </tr>
                  </thead>
                  <tbody>
                    {versions.value.versions.map((version) => (
                      <tr key={version.version}>
                        <th scope="row" class="num">
                          {version.version}
                        </th>
                        <td>
                          <Time ms={version.published_at_ms} />
                        </td>
                        <td>
                          <NameAndId name={names(version.published_by)} id={version.published_by} />
                        </td>
                        <td>
                          <details>
                            <summary>Read version {version.version}</summary>
                            <div class="policy-text">{version.text}</div>
                          </details>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ))}
        </section>
      )}
    </>
  );
}

function Pending({ pending }: { pending: PolicyPending }) {
  useEffect(() => rememberUsers(pending.users), [pending]);
  if (pending.version === null) {
    return <p>There is no policy to accept yet.</p>;
  }
  if (pending.users.length === 0) {
    return <p>Everyone active has accepted version {pending.version}.</p>;
  }
  return (
    <>
      <p>
        {count(pending.users.length)} active {pending.users.length === 1 ? 'person has' : 'people have'} not
        accepted version {pending.version}; they cannot use threads until they do.
      </p>
      <div class="table-scroll">
        <table class="striped">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Department</th>
            </tr>
          </thead>
          <tbody>
            {pending.users.map((user) => (
              <tr key={user.user_id}>
                <th scope="row">
                  <a href={href('people-detail', user.user_id)}>{user.display_name}</a>
                </th>
                <td>{user.department}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Publish({ current, onPublished }: { current: PolicyVersion | null; onPublished: (version: PolicyVersion) => void }) {
  const [text, setText] = useState('');
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const next = (current?.version ?? 0) + 1;

  return (
    <section aria-labelledby="policy-publish">
      <h2 id="policy-publish">Publish a new version</h2>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (text.trim() === '') {
            setError('Write the policy’s text first.');
            return;
          }
          setError(null);
          setConfirming(true);
        }}
      >
        <label for="policy-text">New policy text</label>
        <textarea
          id="policy-text"
          rows={10}
          value={text}
          aria-describedby="policy-text-help"
          onInput={(event) => setText(event.currentTarget.value)}
        />
        <small id="policy-text-help">
          Publishing makes this the current version: everyone must accept it before their next thread command.
        </small>
        <ErrorText error={error} />
        <button type="submit">Publish new version</button>
      </form>
      {confirming && (
        <Confirm
          title={`Publish version ${next}?`}
          confirmLabel="Publish"
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            const version = await api.sendJson<PolicyVersion>('POST', '/v1/admin/policy', { text });
            setText('');
            onPublished(version);
          }}
        >
          <p>
            Every clinician will have to accept the new version before they can use threads again. Versions cannot be
            edited or withdrawn, only replaced by a newer one.
          </p>
        </Confirm>
      )}
    </section>
  );
}

/** Accepting the current version (a clinician's; the clinician app's gate shows it too). */
export function Accept({ version, accepted, onAccepted }: { version: number; accepted: number | null; onAccepted: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (accepted === version) {
    return <p role="status">You accepted version {version}.</p>;
  }
  return (
    <>
      <p>You have not accepted this version yet.</p>
      <ErrorText error={error} />
      <button
        type="button"
        disabled={busy}
        aria-busy={busy}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await api.send('POST', '/v1/policy/accept', { version });
            onAccepted();
          } catch (caught) {
            setError(api.messageOf(caught));
          } finally {
            setBusy(false);
          }
        }}
      >
        Accept version {version}
      </button>
    </>
  );
}
