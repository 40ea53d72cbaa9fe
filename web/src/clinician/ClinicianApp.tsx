// The clinicians' web app: end-to-end encrypted threads in the browser.
// Loaded only for a clinician (app.tsx imports it dynamically, so the MLS
// code is a chunk of its own that the console never loads). Three gates
// before the threads:
//
//   1. the messaging policy, accepted (the server refuses thread requests
//      until it is);
//   2. the vault, the encrypted store of this browser's MLS state and
//      messages, created with a passphrase or unlocked with it;
//   3. the messenger, opened on that vault: it catches up and goes live.
//
// Whatever ends this component (locking, signing out, the idle logoff in
// app.tsx, which signs out and so unmounts it) closes the messenger and
// locks the vault first: no decrypted message is left in memory.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { Confirm } from '../components/Confirm';
import { ErrorText, Loading } from '../components/Bits';
import { ForgetDialog } from '../components/ForgetBrowser';
import type { StoredDevice } from '../device';
import type { Me } from '../state';
import { focusHeading, useTitle } from './bits';
import { openMessenger } from './engine';
import { Frame } from './Frame';
import { MessengerShell } from './MessengerShell';
import type { Messenger } from './model';
import { PolicyGate } from './PolicyGate';
import { vaultOwner, type Vault, wipeVault } from './vault';
import { ProtectScreen, UnlockScreen } from './VaultScreens';

type Stage =
  | { kind: 'policy' }
  /** Finding out whose vault this browser holds, if any. */
  | { kind: 'vault'; error: string | null }
  | { kind: 'protect'; replacing: boolean }
  | { kind: 'unlock'; notice: string | null }
  | { kind: 'opening'; vault: Vault; error: string | null }
  | { kind: 'open'; messenger: Messenger };

interface Props {
  me: Me;
  device: StoredDevice;
  onForgotten: () => void;
}

export function ClinicianApp({ me, device, onForgotten }: Props) {
  const [stage, setStage] = useState<Stage>({ kind: 'policy' });
  const [dialog, setDialog] = useState<'erase' | 'forget' | null>(null);
  /** What must be closed and locked when the app stops, whatever the stage shows. */
  const held = useRef<{ vault: Vault | null; messenger: Messenger | null }>({ vault: null, messenger: null });
  /** Bumped by each open and each release: an open overtaken meanwhile closes what it opened. */
  const generation = useRef(0);
  const mounted = useRef(true);

  const release = () => {
    generation.current += 1;
    held.current.messenger?.close();
    held.current.vault?.lock();
    held.current = { vault: null, messenger: null };
  };

  useEffect(
    () => () => {
      mounted.current = false;
      release();
    },
    [],
  );

  // A new screen: focus its heading (not on the first, as in the console).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    focusHeading();
  }, [stage.kind]);

  const checkVault = async () => {
    setStage({ kind: 'vault', error: null });
    try {
      const owner = await vaultOwner();
      const ours = owner !== null && owner.userId === me.userId && owner.deviceId === me.deviceId;
      setStage(ours ? { kind: 'unlock', notice: null } : { kind: 'protect', replacing: owner !== null });
    } catch (caught) {
      setStage({ kind: 'vault', error: `This browser’s stored messages could not be read: ${api.messageOf(caught)}` });
    }
  };

  const open = async (vault: Vault) => {
    if (!mounted.current) {
      // Unlocked after the app was left (signed out meanwhile).
      vault.lock();
      return;
    }
    held.current.vault = vault;
    generation.current += 1;
    const mine = generation.current;
    setStage({ kind: 'opening', vault, error: null });
    try {
      const messenger = await openMessenger(me, device, vault);
      if (generation.current !== mine) {
        messenger.close();
        return;
      }
      held.current.messenger = messenger;
      setStage({ kind: 'open', messenger });
    } catch (caught) {
      if (generation.current === mine) {
        setStage({ kind: 'opening', vault, error: `Your threads could not be opened: ${api.messageOf(caught)}` });
      }
    }
  };

  const lock = (notice: string | null) => {
    release();
    setStage({ kind: 'unlock', notice });
  };

  /** Locks, then erases the vault; if erasing fails it stays locked, and the unlock screen is right. */
  const erase = async () => {
    lock(null);
    await wipeVault();
  };

  const signOut = (
    <button type="button" class="secondary outline small" onClick={() => void api.signOut(null)}>
      Sign out
    </button>
  );
  const lockButton = (
    <button type="button" class="secondary outline small" onClick={() => lock('Your messages are locked.')}>
      Lock
    </button>
  );
  const footer = (
    <button type="button" class="secondary outline small" onClick={() => setDialog('forget')}>
      Forget this browser
    </button>
  );
  // Beside the screens, not in them: a dialog stays open (and shows its
  // error) while the stage behind it changes.
  const dialogs = (
    <>
      {dialog === 'erase' && (
        <Confirm
          title="Sign out and erase this browser’s messages?"
          confirmLabel="Erase and sign out"
          onClose={() => setDialog(null)}
          onConfirm={async () => {
            await erase();
            await api.signOut(null);
          }}
        >
          <p>
            Every message stored in this browser is deleted, then you are signed out. Your colleagues and your other
            devices keep theirs; this browser cannot show them again. Use it when you leave this workstation for good.
          </p>
        </Confirm>
      )}
      {dialog === 'forget' && (
        <ForgetDialog onClose={() => setDialog(null)} onForgotten={onForgotten} eraseMessages={erase} />
      )}
    </>
  );

  if (stage.kind === 'open') {
    return (
      <>
        <MessengerShell
          messenger={stage.messenger}
          footer={footer}
          actions={
            <>
              {lockButton}
              {signOut}
              <button type="button" class="secondary outline small" onClick={() => setDialog('erase')}>
                Sign out and erase this browser’s messages
              </button>
            </>
          }
        />
        {dialogs}
      </>
    );
  }

  return (
    <>
      <Frame
        me={me}
        actions={
          <>
            {stage.kind === 'opening' && lockButton}
            {signOut}
          </>
        }
        footer={footer}
      >
        <div class="gate">
          {stage.kind === 'policy' && <PolicyGate onReady={() => void checkVault()} />}
          {stage.kind === 'vault' && (
            <Waiting title="Your messages" what="this browser’s stored messages" error={stage.error}>
              <button type="button" class="secondary" onClick={() => void checkVault()}>
                Try again
              </button>
            </Waiting>
          )}
          {stage.kind === 'protect' && (
            <ProtectScreen me={me} replacing={stage.replacing} onVault={(vault) => void open(vault)} />
          )}
          {stage.kind === 'unlock' && (
            <UnlockScreen
              me={me}
              notice={stage.notice}
              onVault={(vault) => void open(vault)}
              onErased={() => setStage({ kind: 'protect', replacing: false })}
            />
          )}
          {stage.kind === 'opening' && (
            <Waiting title="Opening your threads" what="your threads" error={stage.error}>
              <button type="button" class="secondary" onClick={() => void open(stage.vault)}>
                Try again
              </button>
            </Waiting>
          )}
        </div>
      </Frame>
      {dialogs}
    </>
  );
}

/** A gate at work: loading, or why it failed and a way to try again. */
function Waiting({
  title,
  what,
  error,
  children,
}: {
  title: string;
  what: string;
  error: string | null;
  children: ComponentChildren;
}) {
  useTitle(title);
  return (
    <>
      <h1>{title}</h1>
      {error === null ? (
        <Loading what={what} />
      ) : (
        <>
          <ErrorText error={error} />
          {children}
        </>
      )}
    </>
  );
}
