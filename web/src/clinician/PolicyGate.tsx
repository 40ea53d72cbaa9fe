// The messaging policy before anything else: the server refuses every
// thread request (403 `policy_not_accepted`) until the user has accepted
// its current version, so the app asks first rather than fail later. The
// same endpoints and accept button as the console's Policy page.

import { useEffect, useState } from 'preact/hooks';

import { ErrorText, Loading, Time } from '../components/Bits';
import { Accept, useLoad } from '../pages/Policy';
import type { PolicyState } from '../types';
import { useTitle } from './bits';

export function PolicyGate({ onReady }: { onReady: () => void }) {
  const [reload, setReload] = useState(0);
  const policy = useLoad<PolicyState>('/v1/policy', reload);
  useTitle('Messaging policy');

  // Nothing published, or the current version accepted: nothing to ask.
  const settled =
    policy.kind === 'ok' &&
    (policy.value.current === null || policy.value.accepted_version === policy.value.current.version);
  useEffect(() => {
    if (settled) {
      onReady();
    }
  }, [settled]);

  return (
    <>
      <h1>Messaging policy</h1>
      {policy.kind === 'loading' && <Loading what="the messaging policy" />}
      {(policy.kind === 'error' || policy.kind === 'hidden') && (
        <>
          <ErrorText
            error={`The messaging policy could not be loaded: ${
              policy.kind === 'error' ? policy.message : 'the server refused.'
            }`}
          />
          <button type="button" class="secondary" onClick={() => setReload((n) => n + 1)}>
            Try again
          </button>
        </>
      )}
      {policy.kind === 'ok' && policy.value.current !== null && !settled && (
        <>
          <p>
            Before you use threads, read your organisation’s messaging policy: what may be discussed in Curbside, and
            how patient information is handled. Threads open once you accept it.
          </p>
          <p class="muted">
            Version {policy.value.current.version}, published <Time ms={policy.value.current.published_at_ms} />.
          </p>
          <blockquote class="policy-text">{policy.value.current.text}</blockquote>
          <Accept
            version={policy.value.current.version}
            accepted={policy.value.accepted_version}
            onAccepted={() => setReload((n) => n + 1)}
          />
        </>
      )}
      {settled && <Loading what="your messages" />}
    </>
  );
}
