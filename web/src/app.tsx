// The web app's shell: enrollment and sign-in, then for the signed-in
// user's role either the clinicians' threads (loaded on demand) or the
// administrators' console: its navigation and the page the route names.

import type { ComponentType } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

import * as api from './api';
import { ErrorText, Loading } from './components/Bits';
import { ForgetDialog } from './components/ForgetBrowser';
import { PinAuditKey } from './components/PinAuditKey';
import * as device from './device';
import type { StoredDevice } from './device';
import { roleName } from './format';
import { watchIdle } from './idle';
import { AuditPage } from './pages/Audit';
import { OverviewPage } from './pages/Overview';
import { PeoplePage } from './pages/People';
import { PersonPage } from './pages/Person';
import { PolicyPage } from './pages/Policy';
import { RetentionPage } from './pages/Retention';
import { RolesPage } from './pages/Roles';
import { href, type PageName, type Route, useRoute } from './route';
import type { Me } from './state';
import type { Whoami } from './types';

type Phase =
  | { kind: 'starting' }
  | { kind: 'enroll'; notice: string | null }
  | { kind: 'sign-in'; device: StoredDevice; notice: string | null }
  | { kind: 'signed-in'; device: StoredDevice; me: Me };

const NAV: { page: PageName; label: string }[] = [
  { page: 'overview', label: 'Overview' },
  { page: 'people', label: 'People' },
  { page: 'audit', label: 'Audit' },
  { page: 'policy', label: 'Policy' },
  { page: 'roles', label: 'Roles & escalation' },
  { page: 'retention', label: 'Retention & holds' },
];

const TITLES: Record<PageName, string> = {
  overview: 'Overview',
  people: 'People',
  'people-detail': 'Person',
  audit: 'Audit',
  policy: 'Policy',
  roles: 'Roles & escalation',
  retention: 'Retention & holds',
};

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: 'starting' });
  const [startError, setStartError] = useState<string | null>(null);

  useEffect(() => {
    if (!device.cryptoAvailable()) {
      setStartError('Curbside needs a secure (HTTPS) page and WebCrypto; open it over HTTPS in a current browser.');
      return;
    }
    device.loadDevice().then(
      (stored) => setPhase(stored ? { kind: 'sign-in', device: stored, notice: null } : { kind: 'enroll', notice: null }),
      (error: unknown) => setStartError(`This browser's storage could not be read: ${api.messageOf(error)}`),
    );
  }, []);

  // Whenever the session is dropped (idle, 401, sign-out) show sign-in.
  useEffect(
    () =>
      api.onSignedOut((why) => {
        setPhase((current) =>
          current.kind === 'signed-in' ? { kind: 'sign-in', device: current.device, notice: why } : current,
        );
      }),
    [],
  );

  const signedIn = phase.kind === 'signed-in';
  useEffect(() => {
    if (!signedIn) {
      return undefined;
    }
    return watchIdle(() => {
      void api.signOut('You were signed out after 15 minutes without activity. Sign in again to continue.');
    });
  }, [signedIn]);

  const onSignedIn = useCallback((stored: StoredDevice, whoami: Whoami) => {
    setPhase({
      kind: 'signed-in',
      device: stored,
      me: {
        userId: whoami.user.user_id,
        displayName: whoami.user.display_name,
        role: whoami.user.role,
        deviceId: whoami.device.device_id,
      },
    });
  }, []);

  const forgotten = useCallback(() => setPhase({ kind: 'enroll', notice: 'This browser’s key was deleted.' }), []);

  if (startError !== null) {
    return (
      <main id="main" class="container narrow">
        <h1>Curbside</h1>
        <ErrorText error={startError} />
      </main>
    );
  }
  switch (phase.kind) {
    case 'starting':
      return (
        <main id="main" class="container narrow">
          <h1>Curbside</h1>
          <Loading what="this browser’s enrollment" />
        </main>
      );
    case 'enroll':
      return (
        <EnrollScreen
          notice={phase.notice}
          onSignedIn={onSignedIn}
          onNotSignedIn={(stored, why) => setPhase({ kind: 'sign-in', device: stored, notice: why })}
        />
      );
    case 'sign-in':
      return <SignInScreen device={phase.device} notice={phase.notice} onSignedIn={onSignedIn} onForgotten={forgotten} />;
    case 'signed-in':
      // Clinicians get their threads; the console is for administrators
      // and auditors. Keyed by the session's user and device: a new
      // sign-in starts the app afresh.
      return phase.me.role === 'clinician' ? (
        <ClinicianLoader
          key={`${phase.me.userId}/${phase.me.deviceId}`}
          me={phase.me}
          device={phase.device}
          onForgotten={forgotten}
        />
      ) : (
        <Shell me={phase.me} onForgotten={forgotten} />
      );
  }
}

interface ClinicianProps {
  me: Me;
  device: StoredDevice;
  onForgotten: () => void;
}

/**
 * The clinicians' app, loaded when first needed: a chunk of its own
 * (with the MLS library), so administrators' browsers never load it.
 * Signing out (or the idle logoff) unmounts it, which locks it.
 */
function ClinicianLoader(props: ClinicianProps) {
  const [loaded, setLoaded] = useState<ComponentType<ClinicianProps> | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    import('./clinician/ClinicianApp').then(
      (module) => !cancelled && setLoaded(() => module.ClinicianApp),
      (caught: unknown) =>
        !cancelled && setError(`The messaging screens could not be loaded: ${api.messageOf(caught)} Reload the page.`),
    );
    return () => {
      cancelled = true;
    };
  }, []);

  if (loaded === null) {
    return (
      <main id="main" class="container narrow">
        <h1>Curbside</h1>
        {error === null ? <Loading what="the messaging screens" /> : <ErrorText error={error} />}
      </main>
    );
  }
  const ClinicianApp = loaded;
  return <ClinicianApp {...props} />;
}

type SignedIn = (stored: StoredDevice, whoami: Whoami) => void;

function EnrollScreen({
  notice,
  onSignedIn,
  onNotSignedIn,
}: {
  notice: string | null;
  onSignedIn: SignedIn;
  /** Enrolled, but signing in failed: the sign-in screen, saying why. */
  onNotSignedIn: (stored: StoredDevice, why: string) => void;
}) {
  const [code, setCode] = useState('');
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  /** Enrolled: the audit key to compare and pin, then sign-in. */
  const [enrolled, setEnrolled] = useState<StoredDevice | null>(null);
  const [signingIn, setSigningIn] = useState(false);
  useEffect(() => {
    document.title =
      enrolled === null ? 'Enroll this browser — Curbside' : 'Pin the audit key — Curbside';
  }, [enrolled]);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setEnrolled(await device.enroll(code, name));
    } catch (caught) {
      setError(api.messageOf(caught));
      setBusy(false);
    }
  };

  const signIn = async () => {
    if (enrolled === null || signingIn) {
      return;
    }
    setSigningIn(true);
    try {
      onSignedIn(enrolled, await device.signIn(enrolled));
    } catch (caught) {
      // A session opened before the failure is ended on the server too.
      await api.signOut(null);
      onNotSignedIn(enrolled, `This browser is enrolled, but signing in failed: ${api.messageOf(caught)}`);
    }
  };

  if (enrolled !== null) {
    return (
      <main id="main" class="container narrow" aria-busy={signingIn}>
        <PinAuditKey device={enrolled} level={1} onPinned={() => void signIn()} onSkip={() => void signIn()}>
          <p role="status">
            This browser is enrolled as a device of {enrolled.displayName}. One more step before signing in.
          </p>
        </PinAuditKey>
      </main>
    );
  }

  return (
    <main id="main" class="container narrow">
      <h1>Enroll this browser</h1>
      {notice !== null && <p role="status">{notice}</p>}
      <p>
        Curbside has no passwords. This browser becomes one of your devices, as the command line does: it makes a key
        that never leaves it, and signs in with that key. Enroll it once with a one-time enrollment code from an
        administrator (or the first administrator’s code the server printed when it was installed).
      </p>
      <form onSubmit={submit}>
        <label for="enroll-code">Enrollment code</label>
        <input
          id="enroll-code"
          name="code"
          required
          autocomplete="off"
          spellcheck={false}
          autocapitalize="characters"
          placeholder="ABCD-EFGH-JKMN-PQRS-TVWX"
          value={code}
          onInput={(event) => setCode(event.currentTarget.value)}
        />
        <label for="enroll-name">Your name (first administrator only)</label>
        <input
          id="enroll-name"
          name="display_name"
          autocomplete="name"
          aria-describedby="enroll-name-help"
          value={name}
          onInput={(event) => setName(event.currentTarget.value)}
        />
        <small id="enroll-name-help">
          Only with the first administrator’s code: the name colleagues will see. Other codes already name you.
        </small>
        <ErrorText error={error} />
        <button type="submit" disabled={busy} aria-busy={busy}>
          Enroll this browser
        </button>
      </form>
    </main>
  );
}

function SignInScreen({
  device: stored,
  notice,
  onSignedIn,
  onForgotten,
}: {
  device: StoredDevice;
  notice: string | null;
  onSignedIn: SignedIn;
  onForgotten: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [forgetting, setForgetting] = useState(false);
  useEffect(() => {
    document.title = 'Sign in — Curbside';
  }, []);

  const signIn = async () => {
    setBusy(true);
    setError(null);
    try {
      onSignedIn(stored, await device.signIn(stored));
    } catch (caught) {
      // Signed in, then something failed: end that session on the server too.
      await api.signOut(null);
      setError(api.messageOf(caught));
      setBusy(false);
    }
  };

  return (
    <main id="main" class="container narrow">
      <h1>Sign in to Curbside</h1>
      {notice !== null && <p role="status">{notice}</p>}
      <p>
        This browser is enrolled as a device of <strong>{stored.displayName}</strong>. Signing in answers the server’s
        challenge with this browser’s key; no password is needed.
      </p>
      <ErrorText error={error} />
      <button type="button" onClick={signIn} disabled={busy} aria-busy={busy}>
        Sign in
      </button>
      <hr />
      <p>
        Not yours, or leaving this computer for good? Forgetting this browser deletes its key; an administrator should
        also remove the device.
      </p>
      <button type="button" class="secondary outline" onClick={() => setForgetting(true)}>
        Forget this browser
      </button>
      {forgetting && (
        <ForgetDialog
          onClose={() => setForgetting(false)}
          onForgotten={onForgotten}
        />
      )}
    </main>
  );
}

/** The administrators' and auditors' console. */
function Shell({ me, onForgotten }: { me: Me; onForgotten: () => void }) {
  const shown = useRoute();
  const main = useRef<HTMLElement>(null);
  const [forgetting, setForgetting] = useState(false);
  const first = useRef(true);

  useEffect(() => {
    document.title = `${TITLES[shown.page]} — Curbside console`;
    if (first.current) {
      first.current = false;
      return;
    }
    // A new page: move focus to its heading, as a page load would.
    const heading = main.current?.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  }, [shown.page, shown.userId]);

  const skip = (event: Event) => {
    event.preventDefault();
    main.current?.focus();
  };

  const current = shown.page === 'people-detail' ? 'people' : shown.page;

  return (
    <>
      <a class="skip-link" href="#main" onClick={skip}>
        Skip to main content
      </a>
      <header class="site-header">
        <div class="container header-row">
          <a href={href('overview')} class="brand">
            Curbside console
          </a>
          <div class="who">
            <span>
              {me.displayName} <span class="muted">({roleName(me.role)})</span>
            </span>
            <button type="button" class="secondary outline small" onClick={() => void api.signOut(null)}>
              Sign out
            </button>
          </div>
        </div>
        <nav aria-label="Main" class="container">
          <ul class="nav-pages">
            {NAV.map((item) => (
              <li key={item.page}>
                <a href={href(item.page)} aria-current={current === item.page ? 'page' : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" class="container" ref={main} tabIndex={-1}>
        <Page route={shown} me={me} />
      </main>
      <footer class="container site-footer">
        <button type="button" class="secondary outline small" onClick={() => setForgetting(true)}>
          Forget this browser
        </button>
        {forgetting && <ForgetDialog onClose={() => setForgetting(false)} onForgotten={onForgotten} />}
      </footer>
    </>
  );
}

function Page({ route, me }: { route: Route; me: Me }) {
  switch (route.page) {
    case 'overview':
      return <OverviewPage />;
    case 'people':
      return <PeoplePage me={me} />;
    case 'people-detail':
      return <PersonPage me={me} userId={route.userId ?? ''} key={route.userId} />;
    case 'audit':
      return <AuditPage />;
    case 'policy':
      return <PolicyPage me={me} />;
    case 'roles':
      return <RolesPage me={me} />;
    case 'retention':
      return <RetentionPage me={me} />;
  }
}
