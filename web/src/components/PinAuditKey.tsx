// Pinning the audit key, explicitly: the key the server publishes now is
// shown as the server prints it at start, and pinned only when the
// administrator says it matches the one recorded at installation. Shown
// once enrolled, and on the Audit page while no key is pinned.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import * as device from '../device';
import type { StoredDevice } from '../device';
import { ErrorText, Loading } from './Bits';

/** What to compare, and why (the same words at enrollment and on the Audit page). */
export function PinAuditKeyText() {
  return (
    <>
      <p>
        This browser verifies the audit log against a key you pin once. When the server starts it prints its audit key,
        as <code>Audit log key (record it to verify exports): curbside-audit/…</code>; whoever installed the server
        should have recorded that line (and the new key <code>curbside-server audit-rotate-key</code> prints at each key
        rotation).
      </p>
      <p>
        Compare the key below with the recorded one, character for character, and pin it only if they are the same.
        If they differ, do not pin it: the server is not the one installed, or its key was replaced. Ask its
        administrator.
      </p>
    </>
  );
}

interface Props {
  device: StoredDevice;
  /** The heading's level: 1 on its own screen, 3 within the Audit page. */
  level: 1 | 3;
  onPinned: () => void;
  /** Goes on without pinning (the Audit page offers it later). */
  onSkip?: () => void;
  /** Shown under the heading. */
  children?: ComponentChildren;
}

export function PinAuditKey({ device: stored, level, onPinned, onSkip, children }: Props) {
  const [key, setKey] = useState<{ raw: Uint8Array; text: string } | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = () => {
    let cancelled = false;
    setLoading(true);
    setError(null);
    setKey(null);
    device
      .fetchAuditKey(stored.serverId)
      .then(async (raw) => ({ raw, text: await device.auditKeyString(stored.serverId, raw) }))
      .then(
        (found) => {
          if (!cancelled) {
            setKey(found);
            setLoading(false);
          }
        },
        (caught: unknown) => {
          if (!cancelled) {
            setError(`The server’s audit key could not be fetched: ${api.messageOf(caught)}`);
            setLoading(false);
          }
        },
      );
    return () => {
      cancelled = true;
    };
  };
  useEffect(load, [stored]);

  const pin = async () => {
    if (key === null) {
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await device.pinAuditKey(stored, key.raw);
      onPinned();
    } catch (caught) {
      setError(api.messageOf(caught));
      setBusy(false);
    }
  };

  const Heading = level === 1 ? 'h1' : 'h3';
  return (
    <>
      <Heading>Pin the audit key</Heading>
      {children}
      <PinAuditKeyText />
      {loading && <Loading what="the server’s audit key" />}
      {key !== null && (
        <>
          <label for="pin-audit-key">Audit key the server publishes now</label>
          <textarea
            id="pin-audit-key"
            class="key-text"
            readOnly
            rows={3}
            spellcheck={false}
            value={key.text}
            onFocus={(event) => event.currentTarget.select()}
          />
        </>
      )}
      <ErrorText error={error} />
      <div class="buttons">
        {key !== null && (
          <button type="button" onClick={() => void pin()} disabled={busy} aria-busy={busy}>
            Pin this audit key
          </button>
        )}
        {key === null && !loading && (
          <button type="button" class="secondary" onClick={load}>
            Fetch the key again
          </button>
        )}
        {onSkip !== undefined && (
          <button type="button" class="secondary outline" onClick={onSkip} disabled={busy}>
            Not now (pin it later on the Audit page)
          </button>
        )}
      </div>
    </>
  );
}
