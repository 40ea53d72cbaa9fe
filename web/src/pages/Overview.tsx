// Overview: people and sessions, activity per day, the audit log's state,
// and the server itself.

import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading, Time } from '../components/Bits';
import { loadDevice, type StoredHead } from '../device';
import { ago, count } from '../format';
import { rootText } from '../logcheck';
import { href } from '../route';
import { lastVerification } from '../state';
import type { Overview } from '../types';

export function OverviewPage() {
  const [overview, setOverview] = useState<Overview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [loadedAt, setLoadedAt] = useState(Date.now());

  const load = () => {
    setLoading(true);
    setError(null);
    api.getJson<Overview>('/v1/admin/overview').then(
      (value) => {
        setOverview(value);
        setLoadedAt(Date.now());
        setLoading(false);
      },
      (caught: unknown) => {
        setError(api.messageOf(caught));
        setLoading(false);
      },
    );
  };
  useEffect(load, []);

  // The tree head this browser verified last, kept between sessions.
  const [kept, setKept] = useState<StoredHead | null>(null);
  useEffect(() => {
    let cancelled = false;
    loadDevice().then(
      (stored) => {
        if (!cancelled) {
          setKept(stored?.verifiedHead ?? null);
        }
      },
      () => undefined,
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const verified = lastVerification();

  return (
    <>
      <div class="page-head">
        <h1>Overview</h1>
        <button type="button" class="secondary outline" onClick={load} disabled={loading}>
          Refresh
        </button>
      </div>
      <ErrorText error={error} />
      {overview === null ? (
        loading && <Loading what="the overview" />
      ) : (
        <>
          <div class="grid cards">
            <section aria-labelledby="ov-people">
              <h2 id="ov-people">People and sessions</h2>
              <table>
                <tbody>
                  <tr>
                    <th scope="row">Active users</th>
                    <td class="num">{count(overview.users_active)}</td>
                  </tr>
                  <tr>
                    <th scope="row">Deactivated users</th>
                    <td class="num">{count(overview.users_deactivated)}</td>
                  </tr>
                  <tr>
                    <th scope="row">Active devices</th>
                    <td class="num">{count(overview.devices_active)}</td>
                  </tr>
                  <tr>
                    <th scope="row">Sessions now</th>
                    <td class="num">{count(overview.sessions_active)}</td>
                  </tr>
                </tbody>
              </table>
            </section>
            <section aria-labelledby="ov-audit">
              <h2 id="ov-audit">Audit log</h2>
              <table>
                <tbody>
                  <tr>
                    <th scope="row">Entries in the log</th>
                    <td class="num">{count(overview.audit_size)}</td>
                  </tr>
                  <tr>
                    <th scope="row">Last signed checkpoint</th>
                    <td>
                      {overview.checkpoint_size === null ? (
                        'none yet'
                      ) : (
                        <>
                          covers {count(overview.checkpoint_size)} entries
                          {overview.checkpoint_time_ms !== null && (
                            <>
                              , signed {ago(overview.checkpoint_time_ms, loadedAt)} (
                              <Time ms={overview.checkpoint_time_ms} />)
                            </>
                          )}
                        </>
                      )}
                    </td>
                  </tr>
                  <tr>
                    <th scope="row">Verified in this browser</th>
                    <td>
                      {verified === null ? (
                        kept === null ? (
                          <>
                            not yet — <a href={href('audit')}>verify the log on the Audit page</a>
                          </>
                        ) : (
                          <>
                            not in this session — <a href={href('audit')}>verify the log again on the Audit page</a>
                          </>
                        )
                      ) : !verified.ok ? (
                        <strong class="broken">
                          {verified.brokenSeq !== null
                            ? `entry ${verified.brokenSeq} is broken`
                            : 'the log is broken'}{' '}
                          ({ago(verified.atMs)})
                        </strong>
                      ) : verified.lastSeq === null ? (
                        <>the log was empty ({ago(verified.atMs)})</>
                      ) : (
                        <>
                          intact up to sequence {count(verified.lastSeq)} ({ago(verified.atMs)})
                        </>
                      )}
                      {kept !== null && (
                        <>
                          <br />
                          <small>
                            Last verified here: {count(kept.size)} entries, Merkle root{' '}
                            <code class="id">{rootText(kept.root)}</code> (<Time ms={kept.atMs} relative />); the log
                            must extend it.
                          </small>
                        </>
                      )}
                    </td>
                  </tr>
                </tbody>
              </table>
            </section>
            <section aria-labelledby="ov-server">
              <h2 id="ov-server">Server</h2>
              <table>
                <tbody>
                  <tr>
                    <th scope="row">Version</th>
                    <td>{overview.version}</td>
                  </tr>
                  <tr>
                    <th scope="row">Certificate fingerprint (SHA-256)</th>
                    <td>
                      <code class="fingerprint">{overview.certificate_fingerprint}</code>
                    </td>
                  </tr>
                </tbody>
              </table>
            </section>
          </div>
          <section aria-labelledby="ov-days">
            <h2 id="ov-days">The last {overview.days.length} days</h2>
            <div class="table-scroll">
              <table class="striped">
                <thead>
                  <tr>
                    <th scope="col">Day</th>
                    <th scope="col" class="num">
                      Messages
                    </th>
                    <th scope="col" class="num">
                      Audit entries
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {overview.days.map((day) => (
                    <tr key={day.day}>
                      <th scope="row">
                        <time dateTime={day.day}>{day.day}</time>
                      </th>
                      <td class="num">{count(day.messages)}</td>
                      <td class="num">{count(day.audit_entries)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        </>
      )}
    </>
  );
}
