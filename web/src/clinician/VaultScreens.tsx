// The passphrase that protects the messages this browser keeps: chosen
// once ("Protect this browser's messages"), then asked for at each sign-in
// and after each lock ("Unlock your messages"). The passphrase never
// leaves the page; the vault derives its key from it (vault.ts).

import { useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { Confirm } from '../components/Confirm';
import type { Me } from '../state';
import { useTitle } from './bits';
import { createVault, MIN_PASSPHRASE, unlockVault, type Vault, VaultError, wipeVault } from './vault';

/** What the vault says went wrong, or the failure as it came. */
function vaultMessage(caught: unknown, doing: string): string {
  return caught instanceof VaultError ? caught.message : `${doing}: ${api.messageOf(caught)}`;
}

export function ProtectScreen({
  me,
  replacing,
  onVault,
}: {
  me: Me;
  /** A vault of another user or an earlier enrollment is in this browser. */
  replacing: boolean;
  onVault: (vault: Vault) => void;
}) {
  const [passphrase, setPassphrase] = useState('');
  const [repeat, setRepeat] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [mismatch, setMismatch] = useState(false);
  useTitle('Protect this browser’s messages');

  const submit = async (event: Event) => {
    event.preventDefault();
    // Counted as the vault counts: characters, not UTF-16 units.
    if ([...passphrase].length < MIN_PASSPHRASE) {
      setError(`Choose a passphrase of at least ${MIN_PASSPHRASE} characters.`);
      return;
    }
    if (passphrase !== repeat) {
      setMismatch(true);
      setError('The two passphrases differ; type the same one twice.');
      return;
    }
    setMismatch(false);
    setError(null);
    setBusy(true);
    try {
      // Replaces (and erases) a vault of another enrollment, if any.
      onVault(await createVault(passphrase, { userId: me.userId, deviceId: me.deviceId }));
    } catch (caught) {
      setError(vaultMessage(caught, 'The messages could not be protected'));
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Protect this browser’s messages</h1>
      <p>
        This browser keeps your threads so that you can read them here. Choose a passphrase to encrypt the messages it
        stores: the passphrase is never sent to the server, and you type it each time you sign in here or unlock your
        messages.
      </p>
      <p>
        <strong>Keep it safe.</strong> No one can recover a forgotten passphrase, not even an administrator: without it
        this browser cannot show your earlier messages again.
      </p>
      {replacing && (
        <p role="note" class="notice">
          This browser holds messages of another account or of an earlier enrollment; they will be erased.
        </p>
      )}
      <form onSubmit={submit}>
        <label for="vault-new-passphrase">Passphrase</label>
        <input
          id="vault-new-passphrase"
          type="password"
          required
          autocomplete="new-password"
          aria-describedby="vault-new-passphrase-help"
          value={passphrase}
          onInput={(event) => setPassphrase(event.currentTarget.value)}
        />
        <small id="vault-new-passphrase-help">
          At least {MIN_PASSPHRASE} characters. A few unrelated words are easy to type and hard to guess.
        </small>
        <label for="vault-repeat-passphrase">Repeat the passphrase</label>
        <input
          id="vault-repeat-passphrase"
          type="password"
          required
          autocomplete="new-password"
          aria-invalid={mismatch ? 'true' : undefined}
          value={repeat}
          onInput={(event) => setRepeat(event.currentTarget.value)}
        />
        <ErrorText error={error} />
        <button type="submit" disabled={busy} aria-busy={busy}>
          Protect my messages
        </button>
      </form>
    </>
  );
}

export function UnlockScreen({
  me,
  notice,
  onVault,
  onErased,
}: {
  me: Me;
  notice: string | null;
  onVault: (vault: Vault) => void;
  /** The stored messages were erased: a new passphrase is to be chosen. */
  onErased: () => void;
}) {
  const [passphrase, setPassphrase] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [erasing, setErasing] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useTitle('Unlock your messages');

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onVault(await unlockVault(passphrase, { userId: me.userId, deviceId: me.deviceId }));
    } catch (caught) {
      setError(vaultMessage(caught, 'Your messages could not be unlocked'));
      setBusy(false);
      // Most likely mistyped: ready to type it again.
      input.current?.select();
    }
  };

  return (
    <>
      <h1>Unlock your messages</h1>
      {notice !== null && <p role="status">{notice}</p>}
      <p>The messages this browser keeps are encrypted with your passphrase. Type it to open your threads.</p>
      <form onSubmit={submit}>
        <label for="vault-passphrase">Passphrase</label>
        <input
          id="vault-passphrase"
          ref={input}
          type="password"
          required
          autocomplete="current-password"
          aria-invalid={error === null ? undefined : 'true'}
          value={passphrase}
          onInput={(event) => setPassphrase(event.currentTarget.value)}
        />
        <ErrorText error={error} />
        <button type="submit" disabled={busy} aria-busy={busy}>
          Unlock
        </button>
      </form>
      <hr />
      <p>
        Forgot the passphrase? Erase the messages stored in this browser, then choose a new one. The earlier messages
        cannot be shown here again; your colleagues and your other devices keep theirs.
      </p>
      <button type="button" class="secondary outline" disabled={busy} onClick={() => setErasing(true)}>
        Erase this browser’s messages
      </button>
      {erasing && (
        <Confirm
          title="Erase this browser’s messages?"
          confirmLabel="Erase"
          onClose={() => setErasing(false)}
          onConfirm={async () => {
            await wipeVault();
            onErased();
          }}
        >
          <p>Every message stored in this browser is deleted and cannot be brought back here.</p>
        </Confirm>
      )}
    </>
  );
}
